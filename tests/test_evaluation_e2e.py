"""`deepaq evaluate` end to end on real audio (../shared/data/visqol_testdata).

A plumbing test: the "listening test" score of each stimulus is the ViSQOL v3 MOS-LQO that
upstream's conformance table (the data's README) expects, not a human rating. ViSQOL run
through the harness must therefore agree almost perfectly, which fails if pairs, scores or
orientation get mixed up anywhere between the manifest and the report. NOMAD-style and FAD
run on a tiny randomly initialised wav2vec 2.0 saved in the real on-disk format (their
numbers mean nothing; the plumbing around them is what is checked).
"""

from __future__ import annotations

import csv
import json

import pytest

from deepaq.cli import main
from deepaq.evaluation.metrics import parse_specs
from deepaq.errors import ConfigError

from conftest import save_tiny_model

# degraded file, reference, condition, test, expected ViSQOL v3 MOS-LQO (README of the data)
STIMULI = [
    ("strauss48_stereo_lp35", "strauss48_stereo", "lowpass", "A", 1.3888791489130758),
    ("steely48_stereo_lp7", "steely48_stereo", "lowpass", "A", 2.2501683734385183),
    ("sopr48_stereo_256kbps_aac", "sopr48_stereo", "aac", "A", 4.68228969737946),
    ("castanets48_stereo", "castanets48_stereo", "reference", "A", 4.732101253042348),
    ("glock48_stereo_48kbps_aac", "glock48_stereo", "aac", "B", 4.332452943882108),
    ("guitar48_stereo_64kbps_aac", "guitar48_stereo", "aac", "B", 4.349722308064298),
    ("harpsichord48_stereo_96kbps_mp3", "harpsichord48_stereo", "mp3", "B", 4.22374532766003),
    ("transcoded_CA01_01", "CA01_01", "transcoded", "B", 1.7658378752958486),
]


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    """A randomly initialised, tiny wav2vec 2.0 written as config.json + model.safetensors."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    folder = tmp_path_factory.mktemp("w2v2")
    Wav2Vec2Model(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def manifest(visqol_testdata, tmp_path_factory):
    folder = tmp_path_factory.mktemp("listening test")  # a space in the path on purpose
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test", "item", "condition", "reference", "degraded", "score"])
        for deg, ref, cond, test, mos in STIMULI:
            w.writerow([test, ref.replace("48_stereo", ""), cond, visqol_testdata / f"{ref}.wav",
                        visqol_testdata / f"{deg}.wav", mos])
    return path


def _run(capsys, *argv) -> tuple[int, str]:
    code = main(["evaluate", *map(str, argv)])
    return code, capsys.readouterr().out


def test_evaluate_real_audio_end_to_end_and_resume_from_cache(manifest, tiny_wav2vec2, tmp_path, capsys):
    out, cache = tmp_path / "report", tmp_path / "cache"
    args = [manifest, "--metrics", "visqol,nomad", "--metric-option", f"nomad.weights={tiny_wav2vec2}",
            "--bootstrap", "200", "--folds", "4",
            "--cache-dir", cache, "--out", out]
    code, text = _run(capsys, *args)
    assert code == 0, text
    assert "visqol: 8 computed, 0 from cache, 0 failed" in text
    assert "nomad: 8 computed" in text

    results = json.loads((out / "results.json").read_text())
    rows = {(r["metric"], r["scope"], r["level"], r["mapping"]): r for r in results["agreement"]}
    visqol = rows[("visqol", "overall", "stimulus", "raw")]
    assert visqol["n"] == 8 and visqol["n_groups"] == 8
    assert visqol["pcc"]["value"] > 0.999 and visqol["srcc"]["value"] > 0.99
    scores = {s["degraded"].rsplit("/", 1)[-1]: s["scores"]["visqol"] for s in results["stimuli"]}
    for deg, _, _, _, mos in STIMULI:
        assert scores[f"{deg}.wav"] == pytest.approx(mos, abs=0.02)
    # in-sample and cross-validated mappings, per test and overall, both levels
    for scope in ("A", "B", "overall"):
        for mapping in ("raw", "in-sample", "cv"):
            assert (("nomad", scope, "stimulus", mapping)) in rows
    assert rows[("visqol", "overall", "stimulus", "in-sample")]["rmse"]["value"] < 0.05
    assert rows[("visqol", "overall", "condition", "raw")]["n"] == 6  # (test, condition) pairs
    # significance of the difference between the two pair metrics, and Fisher-z means over tests
    sig = [r for r in results["significance"] if r["scope"] == "overall"]
    assert "pcc_cv" in {r["statistic"] for r in sig}  # srcc_raw is left out: ViSQOL's SRCC is exactly 1 here
    assert all(0 <= r["williams_p"] <= 1 and 0 <= r["steiger_p"] <= 1 for r in sig)
    assert any(r["metric"] == "visqol" and r["tests"] == 2 for r in results["fisher_mean"])
    for name in ("report.md", "scores.csv", "conditions.csv", "agreement.csv", "significance.csv",
                 "scatter_overall.png", "scatter_A.png"):
        assert (out / name).stat().st_size > 0, name
    assert "## Agreement, stimulus level" in (out / "report.md").read_text()

    # a re-run computes nothing: every score comes from the cache
    code, text = _run(capsys, *args)
    assert code == 0
    assert "visqol: 0 computed, 8 from cache" in text and "nomad: 0 computed, 8 from cache" in text
    again = json.loads((out / "results.json").read_text())
    assert again["agreement"] == results["agreement"]


def test_fad_per_condition_in_workers_with_a_bad_item_and_a_skipped_metric(visqol_testdata, tiny_wav2vec2, tmp_path,
                                                                            capsys, monkeypatch):
    monkeypatch.delenv("DEEPAQ_WAV2VEC2_WEIGHTS", raising=False)
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio at all")
    d = visqol_testdata
    rows = [["T", "castanets", "reference", d / "castanets48_stereo.wav", d / "castanets48_stereo.wav", 100],
            ["T", "CA01", "transcoded", d / "CA01_01.wav", d / "transcoded_CA01_01.wav", 30],
            ["T", "glock", "aac", d / "glock48_stereo.wav", d / "glock48_stereo_48kbps_aac.wav", 80],
            ["T", "broken", "broken", d / "glock48_stereo.wav", broken, 50]]
    small = tmp_path / "small.csv"
    with open(small, "w", newline="") as f:
        csv.writer(f).writerows([["test", "item", "condition", "reference", "degraded", "score"], *rows])
    out = tmp_path / "out"
    model = save_tiny_model(tmp_path / "tiny")
    code, text = _run(capsys, small, "--metrics", "fad,nomad,deepaq", "--metric-option", f"fad.weights={tiny_wav2vec2}",
                      "--metric-option", "fad.backbone=wav2vec2", "--metric-option", f"deepaq.model={model}",
                      "--metric-option", "deepaq.cache_dir=false", "--bootstrap", "50", "--jobs", "2",
                      "--cache-dir", tmp_path / "cache", "--out", out)
    assert code == 0, text
    assert "skipped nomad: nomad needs local wav2vec 2.0 weights" in text
    assert "fad: 5 computed, 0 from cache, 1 failed" in text  # 6 distinct files, one of them not audio
    assert "deepaq: 3 computed, 0 from cache, 1 failed" in text
    results = json.loads((out / "results.json").read_text())
    assert results["skipped"]["nomad"].startswith("nomad needs local wav2vec 2.0 weights")
    assert "broken.wav" in results["metrics"]["fad"]["errors"]["T/*/broken"]
    fad = results["condition_scores"]["fad"]
    assert set(fad) == {"T/reference", "T/transcoded", "T/aac"}
    assert fad["T/reference"] == pytest.approx(0.0, abs=1e-6)  # identical sets
    assert fad["T/transcoded"] > 0 and fad["T/aac"] > 0
    (row,) = [r for r in results["agreement"] if r["metric"] == "fad" and r["mapping"] == "raw"]
    assert row["level"] == "condition" and "at least 4 points" in row["note"]
    with open(out / "conditions.csv") as f:
        table = {r["condition"]: r for r in csv.DictReader(f)}
    assert float(table["transcoded"]["fad"]) == pytest.approx(fad["T/transcoded"], rel=1e-5)
    assert table["broken"]["fad"] == ""
    assert "Skipped metrics" in (out / "report.md").read_text()
    # the DeePAQ distance through the Scorer: zero for the identical pair, lower is better
    deepaq = {s["item"]: s["scores"]["deepaq"] for s in results["stimuli"]}
    assert deepaq["castanets"] == pytest.approx(0.0, abs=1e-5)
    assert deepaq["CA01"] > 0 and deepaq["glock"] > 0 and deepaq["broken"] is None
    assert results["metrics"]["deepaq"]["direction"] == "lower"


def test_cli_rejects_bad_metric_requests(manifest, tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown metric"):
        parse_specs("visqol,peaqq")
    with pytest.raises(ConfigError, match="METRIC.KEY=VALUE"):
        parse_specs("haaqi", ["level_db_spl=70"])
    assert parse_specs("haaqi", ["haaqi.level_db_spl=70"])[0].options == {"level_db_spl": 70}
    code = main(["evaluate", str(manifest), "--metrics", "nope", "--out", str(tmp_path)])
    assert code == 1
    assert "unknown metric(s) nope" in capsys.readouterr().err
    code = main(["evaluate", str(tmp_path / "missing.csv"), "--out", str(tmp_path)])
    assert code == 1
    assert "missing.csv: manifest file does not exist" in capsys.readouterr().err
