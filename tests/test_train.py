"""End-to-end training of a tiny random HuBERT-shaped backbone on real FLAC files: the loss
falls, validation rises above the untrained model, checkpoints reproduce what was validated,
and --resume continues exactly as an uninterrupted run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepaq.cli import main
from deepaq.errors import ConfigError
from deepaq.train import load_config, merge_config, train, validate
from test_dataset import make_tiny_dataset

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-test.toml"


@pytest.fixture(autouse=True)
def one_thread():
    """Two busy threads on a shared 2-core machine are much slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("data"), {"train": 8, "validation": 4})


def _config(data: Path, **train_overrides) -> dict:
    config = load_config(CONFIG)
    config["data"]["root"] = str(data)
    config["train"].update(train_overrides)
    return config


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_training_learns_and_checkpoints_reproduce(data, tmp_path):
    from torch.utils.data import DataLoader

    from deepaq.data.dataset import ManifestDataset, collate
    from deepaq.models import load_model

    state = train(_config(data, quality_scale="visqol"), tmp_path / "run")
    assert state["epoch"] == 6 and state["step"] == 24  # 8 clips x 5 degraded / 5 per group / 2 per batch
    losses = [float(r["loss"]) for r in _rows(tmp_path / "run" / "train_log.csv")]
    assert sum(losses[-8:]) / 8 < sum(losses[:4]) / 4 - 0.05
    overall = {int(r["epoch"]): float(r["spearman"]) for r in _rows(tmp_path / "run" / "validation.csv")
               if r["codec"] == "overall"}
    assert set(overall) == set(range(-1, 6))
    assert state["best"] == max(overall[e] for e in range(6))
    assert state["best"] > overall[-1] + 0.1, overall  # untrained = epoch -1
    # the run records what it trained on, to tell a moved dataset from a moved run
    recorded = json.loads((tmp_path / "run" / "data.json").read_text())
    assert recorded["train"] == {"items": 48, "fingerprint": ManifestDataset(data, "train", 48000).fingerprint()}
    assert recorded["libraries"]["torch"] == torch.__version__ and set(recorded["libraries"]) >= {"av", "numpy"}
    # the best checkpoint reproduces exactly the validation it was chosen for
    model = load_model(tmp_path / "run" / "checkpoints" / "best")
    assert model.info["window_seconds"] == 0.5 and model.info["window_overlap"] == 0.5 and model.finetune == "full"
    val = ManifestDataset(data, "validation", model.sample_rate, 0.5)
    metrics, records = validate(model, DataLoader(val, batch_size=24, collate_fn=collate), torch.device("cpu"),
                                torch.autograd.grad_mode.no_grad)
    assert metrics["overall"][0] == pytest.approx(state["best"], abs=1e-9)
    assert {"lowpass", "opus"} <= set(metrics)
    # the quality mapping shipped beside the best weights: fitted on these records, decreasing in distance
    from deepaq.mapping import Mapping

    mapping = Mapping.load(tmp_path / "run" / "checkpoints" / "best" / "mapping.json")
    distances = sorted(r["distance"] for r in records)
    assert mapping(distances[0]) > mapping(distances[-1])
    assert min(r["visqol"] for r in records) - 0.5 < mapping(distances[-1]) < mapping(distances[0]) < 5.5


def test_an_l1_model_validates_and_scores_with_l1(data, tmp_path, monkeypatch):
    """`[model] distance = "l1"` reaches the checkpoint; validation and Scorer measure the same L1
    distance, while the ranking terms rank `[loss] distance` (here L2)."""
    from torch.utils.data import DataLoader

    import deepaq.losses
    from deepaq.data.dataset import ManifestDataset, collate
    from deepaq.models import load_model
    from deepaq.scoring import Scorer

    ranked, loss = [], deepaq.losses.deepaq_loss
    monkeypatch.setattr(deepaq.losses, "deepaq_loss", lambda *a, **k: ranked.append(a[15].name) or loss(*a, **k))
    config = _config(data, max_steps=2)
    config["model"]["distance"] = "l1"
    config["loss"]["distance"] = "l2"
    train(config, tmp_path / "run")
    assert ranked and set(ranked) == {"l2"}
    folder = tmp_path / "run" / "checkpoints" / "last"
    model = load_model(folder)
    assert model.info["distance"] == "l1"
    val = ManifestDataset(data, "validation", model.sample_rate, 0.5)
    _, records = validate(model, DataLoader(val, batch_size=24, collate_fn=collate), torch.device("cpu"),
                          torch.autograd.grad_mode.no_grad)
    row = next(r for r in records if r["codec"] != "clean")
    clean = next(r for r in records if r["codec"] == "clean" and r["clip_id"] == row["clip_id"])
    assert row["distance"] == pytest.approx(float((row["embedding"] - clean["embedding"]).abs().sum()), rel=1e-5)
    assert Scorer(folder, cache_dir=False).distance.name == "l1"
    with pytest.raises(ConfigError, match="distance must be one of l2, l1, regions"):
        merge_config({"model": {"distance": "cosine"}})
    with pytest.raises(ConfigError, match=r"\[model\] distance \"regions\" needs backbone_config region_edges_hz"):
        merge_config({"model": {"distance": "regions"}})
    with pytest.raises(ConfigError, match=r"\[loss\] distance \"regions\" needs"):
        merge_config({"loss": {"distance": "regions"}})
    with pytest.raises(ConfigError, match="loss.*distance must be empty or one of"):
        merge_config({"loss": {"distance": "cosine"}})
    with pytest.raises(ConfigError, match=r"\[loss\] committee must be a list of teacher label names"):
        merge_config({"loss": {"committee": "mms_2f"}})


def test_a_model_with_time_parts_trains_and_scores_part_by_part(data, tmp_path):
    """`[model] segments` reaches the checkpoint; its embedding holds one embedding per part."""
    from deepaq.models import load_model
    from deepaq.scoring import Scorer

    config = _config(data, max_steps=2)
    config["model"]["segments"] = 3
    train(config, tmp_path / "run")
    folder = tmp_path / "run" / "checkpoints" / "last"
    model = load_model(folder)
    assert model.info["segments"] == 3
    with torch.no_grad():
        assert model.embed(torch.zeros(2, model.sample_rate)).shape == (2, 3 * model.embed_dim)
    assert Scorer(folder, cache_dir=False).model.segments == 3
    with pytest.raises(ConfigError, match="segments must be an integer >= 1"):
        merge_config({"model": {"segments": 0}})
    with pytest.raises(ConfigError, match="train_segments must be an integer >= 0"):
        merge_config({"model": {"train_segments": -1}})
    with pytest.raises(ConfigError, match="ladder_segments must be an integer >= 0"):
        merge_config({"model": {"ladder_segments": 1.5}})


def test_training_on_whole_windows_gives_the_same_weights_whatever_the_scoring_parts(data, tmp_path):
    """`train_segments = 1`: the losses see whole windows, so the weights do not depend on
    `segments`, which only the validation, the mapping and the scorer use."""
    from safetensors.numpy import load_file

    from deepaq.models import load_model

    runs = {}
    for segments in (1, 4):
        config = _config(data, max_steps=3)
        config["model"].update(segments=segments, train_segments=1)
        train(config, tmp_path / str(segments))
        runs[segments] = load_file(str(tmp_path / str(segments) / "checkpoints" / "last" / "model.safetensors"))
        assert load_model(tmp_path / str(segments) / "checkpoints" / "last").info["segments"] == segments
    assert runs[1].keys() == runs[4].keys()
    for key in runs[1]:
        np.testing.assert_array_equal(runs[1][key], runs[4][key])


def test_the_ladder_term_can_rank_time_parts_while_the_other_terms_see_whole_windows(data, tmp_path):
    """`ladder_segments`: the ladder term ranks distances of K parts from the same backbone pass;
    equal to `train_segments` it is the default (the same weights), otherwise it trains others."""
    from safetensors.numpy import load_file

    from deepaq.data.manifest import read_manifest, write_manifest

    ladders = tmp_path / "ladders"
    ladders.mkdir()
    frame = read_manifest(data)
    cutoffs = {"lowpass_1000": 0, "lowpass_3000": 1, "lowpass_6000": 2}  # worst to best
    suffix = frame["item_id"].str.split("__").str[1]
    frame["ladder"] = [("lowpass" if s in cutoffs else "") for s in suffix]
    frame["ladder_step"] = [cutoffs.get(s, -1) for s in suffix]
    write_manifest(frame.to_dict("records"), ladders)
    (ladders / "audio").symlink_to(data / "audio")

    def weights(name: str, ladder_segments: int) -> dict:
        config = _config(ladders, max_steps=2, validate_at_start=False)
        config["model"].update(segments=4, train_segments=1, ladder_segments=ladder_segments)
        config["data"]["ladders_per_batch"] = 1
        config["loss"]["ladder_weight"] = 1.0
        train(config, tmp_path / name)
        return load_file(str(tmp_path / name / "checkpoints" / "last" / "model.safetensors"))

    default, same, parts = weights("default", 0), weights("same", 1), weights("parts", 4)
    assert all(np.array_equal(default[k], same[k]) for k in default)
    assert not all(np.array_equal(default[k], parts[k]) for k in default)
    log = _rows(tmp_path / "parts" / "train_log.csv")
    assert all(float(r["loss_ladder"]) > 0 for r in log)


def test_resume_continues_exactly(data, tmp_path):
    def lora_config(max_steps: int) -> dict:
        config = _config(data, max_steps=max_steps, validate_at_start=False)
        config["model"]["finetune"] = "lora"  # LoRA dropout draws random numbers: RNG state must resume
        return config

    train(lora_config(6), tmp_path / "straight")
    train(lora_config(3), tmp_path / "split")  # stops inside epoch 0 (4 batches per epoch)
    assert (tmp_path / "split" / "checkpoints" / "last" / "training_state.safetensors").is_file()
    with pytest.raises(ConfigError, match="--resume"):
        train(lora_config(6), tmp_path / "split")
    train(lora_config(5), tmp_path / "split", resume=True)  # crosses an epoch end and validation
    train(lora_config(6), tmp_path / "split", resume=True)
    straight = _rows(tmp_path / "straight" / "train_log.csv")
    split = _rows(tmp_path / "split" / "train_log.csv")
    assert [r["step"] for r in split] == [str(s) for s in range(1, 7)]
    for a, b in zip(straight, split):
        assert (a["loss"], a["lr"], a["epoch"]) == (b["loss"], b["lr"], b["epoch"])


def test_cli_train_and_config_errors(data, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(CONFIG.read_text().replace("[optim]", "[optim]\ngrad_accum = 2"))
    code = main(["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "cli"),
                 "--max-steps", "1"])
    assert code == 0
    assert "1 steps" in capsys.readouterr().out
    assert len(_rows(tmp_path / "cli" / "train_log.csv")) == 1
    with pytest.raises(ConfigError, match="unknown key 'lr_max'"):
        merge_config({"optim": {"lr_max": 1.0}})
    with pytest.raises(ConfigError, match="unknown section"):
        merge_config({"trainer": {}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) == 1
    assert "not valid TOML" in capsys.readouterr().err


def test_ddp_with_torchrun_on_cpu(data, tmp_path):
    """Two gloo processes, the same command line as one: batches split across ranks."""
    import os
    import subprocess
    import sys

    from deepaq.models import load_model

    config = tmp_path / "ddp.toml"
    config.write_text(CONFIG.read_text().replace("[train]", "[train]\nvalidate_at_start = false"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "deepaq", "train",
           "--config", str(config), "--data", str(data), "--out", str(tmp_path / "ddp"), "--max-steps", "3"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("deepaq train: 3 steps, 1 epochs") == 1  # rank 0 reports
    # 4 batches per epoch on one process -> 2 per rank: step 3 lies in epoch 1
    assert [r["epoch"] for r in _rows(tmp_path / "ddp" / "train_log.csv")] == ["0", "0", "1"]
    assert load_model(tmp_path / "ddp" / "checkpoints" / "last").embed(torch.zeros(1, 12000)).shape == (1, 16)


def test_validation_metrics_rank_within_each_clip_and_skip_missing_visqol():
    from deepaq.train import validation_metrics

    def item(clip: str, kbps: float, distance: float, visqol: float = math.nan) -> dict:
        return {"clip_id": clip, "codec": "opus", "bitrate": kbps, "distance": distance, "visqol": visqol}

    records = [item("a", math.inf, 0.0), item("b", math.inf, 0.0)]
    records += [item("a", kbps, 10 - i, visqol=1 + i) for i, kbps in enumerate((8, 16, 32, 64))]  # a: perfect
    records += [item("b", kbps, 1 + i) for i, kbps in enumerate((8, 16, 32, 64))]  # b: reversed, no ViSQOL
    metrics = validation_metrics(records)
    assert metrics["bitrate"] == (pytest.approx(0.0), 2)  # mean of +1 and -1 over 2 groups
    assert metrics["overall"] == (pytest.approx(1.0), 4)  # only clip a's items carry ViSQOL
