"""2f-model (Kastner & Herre 2019): formula values worked out by hand, clipping, inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from deepaq.baselines.twof import mms_2f

# (AvgModDiff1B, ADBB) -> MMS, computed with 30-digit decimal arithmetic from the published formula.
CASES = [
    (20.0, 2.0, 50.5523969722015808),
    (15.6623, 1.76764, 59.1465174400885844),  # castanets Opus 32 kbps MOVs from PQevalAudio
    (43.6479, 2.24697, 35.7844957688391005),  # harpsichord MP3 64 kbps
    (2.59236, 1.46024, 76.6368991886040822),  # moonlight low-pass 7 kHz
    (0.0, 1.5, 77.8132428246245477),
]


@pytest.mark.parametrize("amd1, adb, expected", CASES)
def test_formula_values(amd1, adb, expected):
    assert mms_2f(amd1, adb) == pytest.approx(expected, abs=1e-9)


def test_clipped_to_0_100():
    assert mms_2f(0.0, 0.0) == 100.0  # 118.53 before clipping
    assert mms_2f(100.0, 3.5) == 0.0  # -4.80 before clipping


def test_more_distortion_scores_lower():
    assert mms_2f(10.0, 1.0) > mms_2f(10.0, 1.5) > mms_2f(30.0, 1.5)


def test_non_finite_movs_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        mms_2f(math.nan, 1.0)
    with pytest.raises(ValueError, match="finite"):
        mms_2f(10.0, math.inf)


def test_peaq_result_carries_the_2f_score():
    from deepaq.baselines.peaq import peaq

    data = Path(__file__).resolve().parent / "data" / "peaq"
    r = peaq(reference=data / "moonlight_ref.flac", degraded=data / "moonlight_lp7k.flac")
    assert r.mms_2f == pytest.approx(mms_2f(r.movs["AvgModDiff1B"], r.movs["ADBB"]), abs=1e-12)
    assert r.mms_2f == pytest.approx(76.637, abs=0.01)  # from PQevalAudio's MOVs for this pair


@pytest.mark.parametrize("channels", [1, 2])
def test_the_2f_only_path_gives_the_same_score(channels):
    """`evaluate_2f` computes only the two MOVs the 2f-model reads: the same MMS as full PEAQ."""
    import soundfile as sf

    from deepaq.baselines.peaq.core import evaluate, evaluate_2f

    data = Path(__file__).resolve().parent / "data" / "peaq"
    ref = sf.read(data / "moonlight_ref.flac", dtype="float32")[0].T[:channels]
    deg = sf.read(data / "moonlight_lp7k.flac", dtype="float32")[0].T[:channels]
    assert evaluate_2f(ref, deg) == evaluate(ref, deg).mms_2f
    assert evaluate_2f(ref, ref) == 100.0
