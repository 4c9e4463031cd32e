"""One exception family for every problem a user can cause.

Every message names the file (or "<array>" for in-memory input) and the problem, so a
batch job can write it into an error row as it is.
"""

from __future__ import annotations

from pathlib import Path


class DeepaqError(Exception):
    """Base class of every error deepaq raises on purpose."""


class AudioError(DeepaqError):
    """Audio that cannot be read or used: missing, not audio, empty, silent, NaN, too short."""

    def __init__(self, source: str | Path | None, problem: str):
        self.source = str(source) if source is not None else "<array>"
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class AlignmentError(AudioError):
    """Reference and degraded signals that cannot be aligned within the search range."""


class CodecError(DeepaqError):
    """A codec that is missing from the bundled FFmpeg or rejects the requested settings."""


class ModelError(DeepaqError):
    """A model that cannot be found or loaded, or a checkpoint in the wrong format."""


class ConfigError(DeepaqError):
    """A configuration file or option with a missing or invalid value."""


class MissingExtraError(DeepaqError):
    """A feature whose optional dependencies are not installed: names the extra to install."""

    def __init__(self, feature: str, extra: str, module: str | None = None):
        self.feature, self.extra, self.module = feature, extra, module
        missing = f" (no module {module!r})" if module else ""
        super().__init__(f"{feature} needs the optional dependencies of deepaq[{extra}]{missing}: "
                         f"pip install 'deepaq[{extra}]'")


def require(module: str, feature: str, extra: str = "train"):
    """Import and return `module`, or raise MissingExtraError naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "deepaq":
            raise
        raise MissingExtraError(feature, extra, exc.name) from exc
