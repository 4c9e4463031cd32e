"""ViSQOL v3 wrapper against upstream conformance values (tests/data/README.md).

The pairs are in tests/data/visqol (FLAC copies of the Apache-2.0 ViSQOL test files, same
samples). Four of the eleven pairs run here (each costs 1-10 s on this machine); all eleven were checked
by hand, see docs/data.md. One shared scorer: numba compiles on the first call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepaq.baselines.visqol import VisqolV3
from deepaq.errors import AudioError

DATA = Path(__file__).resolve().parent / "data" / "visqol"

# (degraded, reference, MOS-LQO expected by Google's C++ ViSQOL v3.3.3 conformance tests)
EXPECTED = [
    ("castanets48_stereo", "castanets48_stereo", 4.732101253042348),  # identity
    ("steely48_stereo_lp7", "steely48_stereo", 2.2501683734385183),  # low-pass 7 kHz
    ("sopr48_stereo_256kbps_aac", "sopr48_stereo", 4.68228969737946),
]


@pytest.fixture(scope="module")
def scorer() -> VisqolV3:
    return VisqolV3()


@pytest.mark.parametrize("degraded,reference,expected", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_matches_upstream_conformance(scorer, degraded, reference, expected):
    mos = scorer.score(reference=DATA / f"{reference}.flac", degraded=DATA / f"{degraded}.flac")
    assert mos == pytest.approx(expected, abs=1e-3)


def test_speech_pair_and_array_input(scorer):
    """The speech sentence in audio mode: the port itself lands 3.1e-3 from the C++ value
    (1.76898 vs 1.76584, the same through visqol-python's own file API), so 5e-3 here.
    Arrays give exactly what files give."""
    import visqol

    ref, deg = DATA / "CA01_01.flac", DATA / "transcoded_CA01_01.flac"
    mos = scorer.score(reference=ref, degraded=deg)
    assert mos == pytest.approx(1.7658378752958486, abs=5e-3)
    api = visqol.VisqolApi()
    api.create(mode="audio")
    assert mos == pytest.approx(api.measure(str(ref), str(deg)).moslqo, abs=1e-9)
    x, sr = sf.read(ref, dtype="float32", always_2d=True)
    y, _ = sf.read(deg, dtype="float32", always_2d=True)
    assert scorer.score(reference=(x.T, sr), degraded=(y.T, sr)) == pytest.approx(mos, abs=1e-9)


def test_resamples_to_48k_and_reports_version(scorer):
    """A degraded copy given at 44.1 kHz is brought to 48 kHz (with a warning) and scored as near-identical."""
    from deepaq.audio import read_audio, resample

    x, sr = read_audio(DATA / "CA01_01.flac")
    with pytest.warns(UserWarning, match="upsampling from 44100 Hz to 48000 Hz"):
        mos = scorer.score(reference=(x, sr), degraded=(resample(x, sr, 44100), 44100))
    assert 4.5 < mos <= 4.7322
    assert scorer.version.startswith("visqol-python 3.")
    assert scorer.sample_rate == 48000 and scorer.higher_is_better


def test_bad_input_names_the_file(scorer, tmp_path):
    rng = np.random.default_rng(0)
    ok = (rng.standard_normal((1, 48000 * 2)).astype(np.float32) * 0.1, 48000)
    with pytest.raises(AudioError, match="missing.wav"):
        scorer.score(reference=ok, degraded=tmp_path / "missing.wav")
    short = tmp_path / "short.wav"
    sf.write(short, ok[0][0, :24000], 48000)
    with pytest.raises(AudioError, match="short.wav.*at least 1 s"):
        scorer.score(reference=ok, degraded=short)
    with pytest.raises(TypeError):
        scorer.score(ok, ok)  # keyword-only: never rely on argument order
