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
