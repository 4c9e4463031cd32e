"""What the Markdown and the HTML report share about figures: whether they can be drawn, and
the file-name slug of a scope (a test, item or condition)."""

from __future__ import annotations

import importlib.util
import re

NO_FIGURES = "No figures: matplotlib is not installed (pip install 'deepaq[plots]'); the tables hold every number."


def figures_available() -> bool:
    """Whether matplotlib is installed; a core install writes its reports without figures."""
    return importlib.util.find_spec("matplotlib") is not None


def slug(text: str) -> str:
    """`text` as a safe file-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "scope"
