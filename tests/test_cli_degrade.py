"""`deepaq degrade` through the real entry point, on a real file, with awkward paths."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from deepaq.audio import estimate_delay, read_audio


def _deepaq(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepaq", *args], capture_output=True, text=True, timeout=300)


def test_degrade_codec_and_lowpass(visqol_testdata, tmp_path):
    src = visqol_testdata / "guitar48_stereo.wav"
    coded = tmp_path / "sub dir ü" / "guitar opus 32.flac"
    result = _deepaq("degrade", str(src), "--codec", "opus", "--bitrate", "32", "-o", str(coded))
    assert result.returncode == 0, result.stderr
    assert "opus at 32 kbps" in result.stdout
    x, sr = read_audio(src)
    y, sr_y = read_audio(coded)
    assert sr_y == sr and y.shape == x.shape

    anchor = tmp_path / "lp.wav"
    assert _deepaq("degrade", str(coded), "--lowpass", "3500", "-o", str(anchor)).returncode == 0
    z, _ = read_audio(anchor)
    assert z.shape == y.shape and estimate_delay(y, z, 1000)[0] == 0
    assert np.abs(z).max() > 0.01


def test_degrade_errors_are_one_clear_line(tmp_path):
    missing = _deepaq("degrade", str(tmp_path / "none.wav"), "--codec", "mp3", "--bitrate", "64", "-o", "x.wav")
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith("none.wav: file not found")
    assert "Traceback" not in missing.stderr
    no_rate = _deepaq("degrade", str(tmp_path / "none.wav"), "--codec", "mp3", "-o", "x.wav")
    assert no_rate.returncode == 1 and "Traceback" not in no_rate.stderr


def test_help_lists_verbs_and_examples():
    top = _deepaq("--help")
    assert top.returncode == 0 and "degrade" in top.stdout
    verb = _deepaq("degrade", "--help")
    assert verb.returncode == 0 and "example:" in verb.stdout
