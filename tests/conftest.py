"""Shared fixtures: the compact real-audio set in tests/data (shipped, see tests/data/README.md)
and the larger sets under ../shared (read at run time, never copied; tests that need them skip)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VISQOL_TESTDATA = SHARED / "data" / "visqol_testdata"
PEAQ_REFERENCE = SHARED / "reference" / "peaq"
TEST_DATA = Path(__file__).resolve().parent / "data"


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


TINY_COMPACT = {"hidden": 16, "blocks": 2, "dilations": [1, 2], "downsample_after": [1], "n_bands": 32}


def save_tiny_model(folder, seed: int = 0, version: str = "1", window_s: float = 1.0, model_id: str = "tiny-test",
                    **info):
    """A tiny random compact DeePAQ model saved in the real checkpoint format (save_model)."""
    import torch

    from deepaq.models import DeepaqNet, build_backbone, save_model

    torch.manual_seed(seed)
    net = DeepaqNet(build_backbone("compact", TINY_COMPACT), embed_dim=16, finetune="full",
                    info={"model_id": model_id, "version": version, "window_seconds": window_s, **info})
    return save_model(net, folder)
