"""HAAQI through pyclarity (installed with --no-deps), normal hearing, on real music excerpts."""

from __future__ import annotations

import numpy as np
import pytest

from deepaq.audio import load_audio
from deepaq.errors import AudioError

pytest.importorskip("clarity.evaluator.haaqi", reason="pyclarity is an optional extra (see docs/evaluation.md)")

from deepaq.baselines.haaqi import Haaqi  # noqa: E402


@pytest.fixture(scope="module")
def excerpts(visqol_testdata):
    """1.5 s of the strauss reference and of its 3.5 kHz low-pass copy (short: HAAQI is slow)."""
    def cut(name, start=2.0):
        x, sr = load_audio(visqol_testdata / name, mono=True)
        return (x[:, int(start * sr):int((start + 1.5) * sr)], sr)
    return {"ref": cut("strauss48_stereo.wav"), "lp": cut("strauss48_stereo_lp35.wav")}


def test_haaqi_orders_identity_above_lowpass_and_depends_on_level(excerpts):
    h = Haaqi()
    same = h.score(reference=excerpts["ref"], degraded=excerpts["ref"])
    low = h.score(reference=excerpts["ref"], degraded=excerpts["lp"])
    assert same > 0.9
    assert 0.0 <= low < same - 0.2
    assert "level 65 dB SPL" in h.version
    # the presentation level is a real choice: 20 dB louder changes the score clearly
    louder = Haaqi(level_db_spl=85.0)
    assert "level 85 dB SPL" in louder.version
    assert abs(louder.score(reference=excerpts["ref"], degraded=excerpts["lp"]) - low) > 0.02


def test_haaqi_rejects_unusable_audio(tmp_path):
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is text")
    with pytest.raises(AudioError, match="not_audio.wav"):
        Haaqi().score(reference=bad, degraded=(np.zeros((1, 48000), np.float32) + 0.1, 48000))
