"""From scores to report numbers, on a synthetic listening test with known structure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from deepaq.evaluation.analysis import AnalysisConfig, analyse
from deepaq.evaluation.manifest import Stimulus
from deepaq.evaluation.metrics import MetricSpec
from deepaq.evaluation.report import write_report
from deepaq.evaluation.runner import MetricScores


@pytest.fixture(scope="module")
def listening_test():
    """2 tests x 8 items x 5 conditions; a good distance metric and a noisy higher-is-better one."""
    rng = np.random.default_rng(7)
    stimuli, quality = [], []
    for test in ("T1", "T2"):
        for item in range(8):
            for c, level in enumerate((95, 80, 60, 40, 20)):
                q = level + rng.normal(0, 6)
                quality.append(q)
                stimuli.append(Stimulus(test, f"item{item}", f"sys{c}", Path("r.wav"), Path(f"d{item}{c}.wav"), q))
    quality = np.array(quality)
    distance = np.exp(-(quality - 10) / 30) + rng.normal(0, 0.05, quality.size)  # monotone, non-linear
    noisy = quality + rng.normal(0, 25, quality.size)
    noisy[3] = np.nan  # a stimulus this metric failed on
    good = MetricScores(MetricSpec("good"), "good", "lower", "1", stimulus_scores=distance)
    bad = MetricScores(MetricSpec("noisy"), "noisy", "higher", "1", stimulus_scores=noisy,
                       errors={"T1/item0/sys3": "could not read"})
    return stimuli, [good, bad], quality, distance


def test_analysis_numbers_match_direct_computation(listening_test):
    stimuli, scores, quality, distance = listening_test
    results, series = analyse(stimuli, scores, AnalysisConfig(n_boot=300, folds=4))
    rows = {(r["metric"], r["scope"], r["level"], r["mapping"]): r for r in results["agreement"]}
    raw = rows[("good", "overall", "stimulus", "raw")]
    # a lower-is-better distance is negated: a good metric correlates positively
    assert raw["pcc"]["value"] == pytest.approx(sps.pearsonr(-distance, quality).statistic)
    assert raw["srcc"]["value"] == pytest.approx(sps.spearmanr(-distance, quality).statistic)
    assert raw["kendall"]["value"] == pytest.approx(sps.kendalltau(-distance, quality).statistic)
    assert raw["n"] == 80 and raw["n_groups"] == 16
    t1 = rows[("good", "T1", "stimulus", "raw")]
    assert t1["pcc"]["value"] == pytest.approx(sps.pearsonr(-distance[:40], quality[:40]).statistic)
    # mapping: in-sample beats raw PCC on a curved relation; cross-validation is not better than in-sample
    ins, cv = rows[("good", "overall", "stimulus", "in-sample")], rows[("good", "overall", "stimulus", "cv")]
    assert ins["pcc"]["value"] > raw["pcc"]["value"]
    assert cv["pcc"]["value"] <= ins["pcc"]["value"] + 1e-9
    assert cv["rmse"]["value"] >= ins["rmse"]["value"] - 1e-9
    assert ins["srcc"]["value"] == pytest.approx(raw["srcc"]["value"], abs=0.01)  # monotone mapping
    assert "4-fold by item" in cv["note"]
    # system level: one point per (test, condition) with mean scores
    cond = rows[("good", "overall", "condition", "raw")]
    keys = sorted({(s.test, s.condition) for s in stimuli})
    mx = [np.mean([-d for s, d in zip(stimuli, distance) if (s.test, s.condition) == k]) for k in keys]
    my = [np.mean([s.score for s in stimuli if (s.test, s.condition) == k]) for k in keys]
    assert cond["n"] == 10 and cond["pcc"]["value"] == pytest.approx(sps.pearsonr(mx, my).statistic)
    # the failed stimulus is left out of that metric only
    assert rows[("noisy", "overall", "stimulus", "raw")]["n"] == 79
    # every estimate lies in its interval
    for r in results["agreement"]:
        for k in ("pcc", "srcc", "kendall", "rmse"):
            e = r[k]
            if np.isfinite(e["value"]):
                assert e["low"] - 1e-9 <= e["value"] <= e["high"] + 1e-9, (r["metric"], r["scope"], k)
    # Williams/Steiger: the good metric is significantly better than the noisy one on 79 shared stimuli
    sig = {(r["scope"], r["statistic"]): r for r in results["significance"]}
    overall = sig[("overall", "pcc_cv")]
    assert overall["n"] == 79 and overall["metric_a"] == "good"
    assert overall["williams_t"] > 0 and overall["williams_p"] < 0.001 and overall["steiger_p"] < 0.001
    fisher = {(r["metric"], r["level"], r["mapping"]): r for r in results["fisher_mean"]}
    per_test = [rows[("good", t, "stimulus", "raw")]["pcc"]["value"] for t in ("T1", "T2")]
    assert fisher[("good", "stimulus", "raw")]["pcc"] == pytest.approx(np.tanh(np.mean(np.arctanh(per_test))))
    assert {s.scope for s in series} == {"T1", "T2", "overall"}


def test_mlp_mapping_and_report_files(listening_test, tmp_path):
    stimuli, scores, _, _ = listening_test
    results, series = analyse(stimuli, scores, AnalysisConfig(mapping="mlp", n_boot=100, folds=3))
    results["skipped"] = {"haaqi": "pyclarity is not installed"}
    report = write_report(tmp_path, results, stimuli, scores, series)
    text = report.read_text()
    assert "monotone mlp mapping" in text and "**haaqi**: pyclarity is not installed" in text
    assert "T1/item0/sys3" in text  # failed stimuli are listed
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["stimuli"][3]["scores"]["noisy"] is None  # NaN written as null
    assert data["mappings"]["good/overall/stimulus"]["kind"] == "mlp"
    assert sorted(data["plots"]) == ["scatter_T1.png", "scatter_T2.png", "scatter_overall.png"]
    assert (tmp_path / "scatter_overall.png").read_bytes()[:4] == b"\x89PNG"
