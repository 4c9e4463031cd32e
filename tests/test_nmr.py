"""NMR scoring with a head (deepaq.models.nmr_head): the fit recovers a known linear target,
the file round-trips, the Scorer pools the head's window predictions, and the shipped model
scores with its shipped bank and head from a core install."""

from __future__ import annotations

import numpy as np
import pytest

from deepaq.audio import read_audio
from deepaq.errors import ModelError
from deepaq.models.nmr_head import FILE_NAME, NmrHead, fit_nmr_head
from deepaq.scoring import Scorer

from conftest import save_tiny_model

PARTS, REGIONS, DIM = 4, 2, 3


def excerpt(path, seconds: float):
    x, sr = read_audio(path)
    return x[:, : int(seconds * sr)], sr


def _windows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, PARTS * REGIONS * DIM)).astype(np.float32)


def test_head_recovers_a_linear_target_and_round_trips(tmp_path):
    x, bank = _windows(400, 0), _windows(10, 1)
    truth = x.reshape(400, PARTS, REGIONS * DIM).mean(1) @ np.arange(1, REGIONS * DIM + 1) + 5.0
    head = fit_nmr_head(x, truth, regions=REGIONS, region_dim=DIM, groups=("part_mean", "bank"), bank=bank,
                        ridge=1e-6)
    test = _windows(50, 2)
    expected = test.reshape(50, PARTS, REGIONS * DIM).mean(1) @ np.arange(1, REGIONS * DIM + 1) + 5.0
    np.testing.assert_allclose(head.predict(test, bank), np.maximum(expected, 0), atol=1e-2)
    assert head.features(test, bank).shape == (50, REGIONS * DIM + 4 * REGIONS)
    loaded = NmrHead.load(head.save(tmp_path / FILE_NAME))
    assert loaded.groups == ("part_mean", "bank")
    np.testing.assert_allclose(loaded.predict(test, bank), head.predict(test, bank), rtol=1e-5, atol=1e-5)


def test_bank_weight_adds_the_centred_mean_bank_distance():
    x, bank = _windows(300, 3), _windows(8, 4)
    y = np.random.default_rng(5).random(300)
    plain = fit_nmr_head(x, y, regions=REGIONS, region_dim=DIM, groups=("bank",), bank=bank)
    weighted = fit_nmr_head(x, y, regions=REGIONS, region_dim=DIM, groups=("bank",), bank=bank, bank_weight=1.0)
    features = plain.features(x, bank)
    mean_distance = features[:, 0::4].sum(1)  # whole-window mean distance of each region, summed
    extra = weighted.predict(x, bank) - plain.predict(x, bank)
    assert abs(np.corrcoef(extra, mean_distance)[0, 1]) > 0.999 and abs(extra.mean()) < 1e-6 + 0.05 * extra.std()


def test_head_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="unknown NMR head feature groups"):
        fit_nmr_head(_windows(20, 0), np.zeros(20), regions=REGIONS, region_dim=DIM, groups=("spectrum",))
    head = fit_nmr_head(_windows(20, 0), np.zeros(20), regions=REGIONS, region_dim=DIM, groups=("bank",),
                        bank=_windows(3, 1))
    with pytest.raises(ModelError, match="needs|none was given"):
        head.predict(_windows(2, 0))
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ModelError, match="unreadable NMR head"):
        NmrHead.load(tmp_path / "bad.safetensors")


def test_scorer_pools_the_heads_window_predictions(tmp_path, visqol_testdata):
    """A model folder with nmr_head.safetensors: the NMR distance is the weighted mean of the
    head's predictions over the degraded windows; the per-reference distances stay as before."""
    folder = save_tiny_model(tmp_path / "m")
    ref, sr = excerpt(visqol_testdata / "guitar48_stereo.wav", 3.0)
    deg, _ = excerpt(visqol_testdata / "guitar48_stereo_64kbps_aac.wav", 3.0)
    plain = Scorer(folder, cache_dir=False)
    bank = plain.make_bank([(ref, sr)], names=["ref"])
    windows = plain.embed((deg, sr)).windows[:, 0]
    train = np.vstack([windows, bank.window_embeddings])
    targets = np.r_[np.ones(len(windows)), np.zeros(len(bank.window_embeddings))]
    head = fit_nmr_head(train, targets, regions=1, region_dim=16, groups=("part_mean", "bank"),
                        bank=bank.window_embeddings)
    head.save(folder / FILE_NAME)
    with_head = Scorer(folder, cache_dir=False)
    result = with_head.score(degraded=(deg, sr), nmr_bank=bank)
    w = np.array([x.weight_s for x in result.windows])
    expected = head.predict(windows, bank.window_embeddings)
    assert result.mode == "nmr" and result.distance == pytest.approx(float(w @ expected / w.sum()), rel=1e-5)
    assert result.reference_distances == pytest.approx(plain.score(degraded=(deg, sr), nmr_bank=bank).reference_distances)


def test_shipped_model_scores_nmr_with_its_default_bank(visqol_testdata):
    """The built-in model ships bank.safetensors and nmr_head.safetensors: NMR works from a core
    install, lands on the quality scale, and a low-passed version scores below the original."""
    scorer = Scorer(cache_dir=False)
    clean, sr = excerpt(visqol_testdata / "steely48_stereo.wav", 6.0)
    low = excerpt(visqol_testdata / "steely48_stereo_lp7.wav", 6.0)[0]
    a = scorer.score(degraded=(clean, sr), nmr_bank="default")
    b = scorer.score(degraded=(low, sr), nmr_bank="default")
    assert a.mode == b.mode == "nmr" and a.quality is not None and 0 <= b.quality < a.quality <= 100


def test_deepaq_nmr_metric_reads_the_degraded_file_alone(tmp_path, visqol_testdata):
    """`deepaq_nmr` in the evaluation: the stimulus' reference is not read, the bank is named in
    the version (the cache key), and the score is the Scorer's NMR distance."""
    from deepaq.evaluation.metrics import MetricSpec, build_metric

    folder = save_tiny_model(tmp_path / "m")
    ref, sr = excerpt(visqol_testdata / "guitar48_stereo.wav", 2.0)
    bank_file = Scorer(folder, cache_dir=False).make_bank([(ref, sr)], names=["ref"]).save(tmp_path / "bank.safetensors")
    metric = build_metric(MetricSpec("deepaq_nmr", {"model": str(folder), "nmr_bank": str(bank_file)}))
    deg = visqol_testdata / "guitar48_stereo_64kbps_aac.wav"
    a = metric.score(reference=visqol_testdata / "guitar48_stereo.wav", degraded=deg)
    b = metric.score(reference=visqol_testdata / "sopr48_stereo.wav", degraded=deg)
    assert a == b > 0 and metric.direction == "lower" and "NMR against bank" in metric.version


def test_fit_nmr_draws_its_bank_across_kinds():
    """A bank smaller than the clean items on offer is a seeded draw over all of them (item ids
    begin with their kind, so the first ones by name would be one or two kinds only); a bank
    as large as the offer takes every item, in order."""
    from pathlib import Path

    from deepaq.data.nmr_fit import _sample

    items = [(f"{kind}-{i:03d}", Path("c"), Path("c")) for kind in ("drums", "music", "speech", "voices")
             for i in range(30)]
    drawn = _sample(items, 20, np.random.default_rng([0, 1]))
    assert len(drawn) == 20 and drawn == _sample(items, 20, np.random.default_rng([0, 1]))
    assert {d[0].split("-")[0] for d in drawn} == {"drums", "music", "speech", "voices"}
    assert _sample(items, 500, np.random.default_rng(0)) == items
