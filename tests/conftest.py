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
    """A tiny random compact DeePAQ model saved in the real checkpoint format (save_model;
    without torch, a core install, the same format written from numpy)."""
    try:
        import torch
    except ImportError:
        return _save_tiny_model_numpy(Path(folder), seed, {"model_id": model_id, "version": version,
                                                          "window_seconds": window_s, **info})
    from deepaq.models import DeepaqNet, build_backbone, save_model

    torch.manual_seed(seed)
    net = DeepaqNet(build_backbone("compact", TINY_COMPACT), embed_dim=16, finetune="full",
                    info={"model_id": model_id, "version": version, "window_seconds": window_s, **info})
    return save_model(net, folder)


def _save_tiny_model_numpy(folder: Path, seed: int, info: dict) -> Path:
    """save_tiny_model without torch: torch's default initialisation drawn with numpy, and the
    config.json `deepaq.models.checkpoint.model_config` writes."""
    import json
    import math

    import numpy as np
    from safetensors.numpy import save_file

    from deepaq.models.compact_numpy import full_config, parameter_shapes

    config = full_config(TINY_COMPACT)
    shapes = {f"backbone.{k}": v for k, v in parameter_shapes(config).items()}
    width = (1 + config["blocks"]) * config["hidden"]
    shapes.update({"head.1.weight": (16, width), "head.1.bias": (16,)})
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in shapes.items():
        if ".norm." in name:  # LayerNorm: ones and zeros
            state[name] = np.full(shape, 1.0 if name.endswith("weight") else 0.0, np.float32)
        else:  # Linear / Conv1d: uniform within 1 / sqrt(fan_in)
            fan_in = math.prod(shapes[name.rsplit(".", 1)[0] + ".weight"][1:])
            state[name] = rng.uniform(-1, 1, shape).astype(np.float32) / np.float32(math.sqrt(fan_in))
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    meta = {"format": "deepaq-model", "format_version": 1, "model_id": info["model_id"], "version": info["version"],
            "sample_rate": config["sample_rate"], "window_seconds": info["window_seconds"],
            "backbone": {"name": "compact", "config": config, "weights": None, "stored": True},
            "head": {"input_dim": width, "embed_dim": 16}, "finetune": "full", "lora": None, "info": info}
    (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder
