"""Shared fixtures: the real audio under ../shared, read at run time and never copied."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VISQOL_TESTDATA = SHARED / "data" / "visqol_testdata"
PEAQ_REFERENCE = SHARED / "reference" / "peaq"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: this test reads the shared real-audio set beside the checkout")
    return path


@pytest.fixture(scope="session")
def visqol_testdata() -> Path:
    """../shared/data/visqol_testdata: 10 clean 48 kHz music excerpts and degraded copies."""
    return _require(VISQOL_TESTDATA)


@pytest.fixture(scope="session")
def peaq_reference() -> Path:
    """../shared/reference/peaq: aligned pairs and PQevalAudio's MOVs, DI and ODG."""
    return _require(PEAQ_REFERENCE)
