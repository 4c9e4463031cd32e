"""Speech metrics (deepaq.baselines.speech) against published or hand-checked values.

- PESQ: identical signals give the raw P.862 maximum 4.5, which P.862.2 (wide band) maps to
  0.999 + 4 / (1 + exp(-1.3669 * 4.5 + 3.8224)) = 4.6439 and P.862.1 (narrow band) to
  0.999 + 4 / (1 + exp(-1.4945 * 4.5 + 4.6607)) = 4.5486 (worked out by hand below).
- STOI / ESTOI: identical signals correlate perfectly (1.0); both normalise the degraded
  signal's level, so a scaled copy scores the same.
- ViSQOL speech mode: the 48 kHz sentence CA01_01 against its transcoded copy, polynomial
  mapping; C++ ViSQOL 3.3.3 gives 3.3745 (visqol-python's published conformance table).
- SI-SDR: analytic cases with an orthogonal distortion.
- DNSMOS (no reference): more noise scores lower, and the reference it is given changes nothing.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from deepaq.errors import AudioError
from deepaq.evaluation.metrics import MetricSpec, MetricUnavailable, build_metric

DATA = Path(__file__).resolve().parent / "data" / "visqol"
REF, DEG = DATA / "CA01_01.flac", DATA / "transcoded_CA01_01.flac"


def _speech_metric(name: str):
    try:
        return build_metric(MetricSpec(name))
    except MetricUnavailable as exc:
        pytest.skip(str(exc))


def _p862_mapping(raw: float, a: float, b: float) -> float:
    return 0.999 + 4.0 / (1 + math.exp(-a * raw + b))


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """The clean sentence with white noise at 20 and 5 dB SNR (48 kHz files)."""
    from deepaq.audio import read_audio, write_audio

    x, sr = read_audio(REF)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    folder = tmp_path_factory.mktemp("noisy")
    out = {}
    for snr in (20, 5):
        gain = math.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr / 10))
        out[snr] = write_audio(folder / f"snr{snr}.flac", x + gain * noise, sr)
    return out


@pytest.mark.parametrize("name,a,b", [("pesq_wb", 1.3669, 3.8224), ("pesq_nb", 1.4945, 4.6607)])
def test_pesq_identity_is_the_mapped_maximum(name, a, b):
    metric = _speech_metric(name)
    assert metric.score(reference=REF, degraded=REF) == pytest.approx(_p862_mapping(4.5, a, b), abs=2e-4)
    assert metric.sample_rate == (16_000 if name == "pesq_wb" else 8_000)
    assert metric.version.startswith("pesq ")


@pytest.mark.parametrize("name", ["pesq_wb", "pesq_nb", "stoi", "estoi", "visqol_speech", "sisdr", "dnsmos"])
def test_more_noise_scores_lower(name, noisy):
    metric = _speech_metric(name)
    clean = metric.score(reference=REF, degraded=REF)
    mild = metric.score(reference=REF, degraded=noisy[20])
    strong = metric.score(reference=REF, degraded=noisy[5])
    assert clean > mild > strong, (clean, mild, strong)
    assert metric.direction == "higher"


@pytest.mark.parametrize("name", ["stoi", "estoi"])
def test_stoi_identity_and_level_invariance(name):
    from deepaq.audio import read_audio

    metric = _speech_metric(name)
    assert metric.score(reference=REF, degraded=REF) == pytest.approx(1.0, abs=1e-9)
    x, sr = read_audio(REF)
    y, _ = read_audio(DEG)
    plain = metric.score(reference=(x, sr), degraded=(y, sr))
    assert 0.5 < plain < 1.0
    assert metric.score(reference=(x, sr), degraded=(0.25 * y, sr)) == pytest.approx(plain, abs=1e-9)


def test_stoi_delay_is_removed_before_scoring():
    from deepaq.audio import read_audio

    metric = _speech_metric("stoi")
    x, sr = read_audio(REF)
    late = np.concatenate([np.zeros((1, 480), np.float32), x], axis=1)  # 10 ms later
    assert metric.score(reference=(x, sr), degraded=(late, sr)) == pytest.approx(1.0, abs=1e-6)


def test_visqol_speech_matches_published_conformance():
    pytest.importorskip("visqol")
    from deepaq.baselines.speech import VisqolSpeech

    native = VisqolSpeech(sample_rate=None).score(reference=REF, degraded=DEG)
    assert native == pytest.approx(3.3745, abs=2e-3)  # C++ 3.3745, the port 3.3756
    at16k = _speech_metric("visqol_speech")
    assert at16k.score(reference=REF, degraded=DEG) == pytest.approx(native, abs=0.02)
    assert "speech mode, polynomial" in at16k.version


def test_si_sdr_analytic_cases():
    from deepaq.baselines.speech import SISDR_CAP_DB, si_sdr

    t = np.arange(48_000) / 48_000
    s = np.sin(2 * np.pi * 100 * t)  # whole periods: zero mean, orthogonal to the cosine
    n = np.cos(2 * np.pi * 100 * t)
    # estimate = a*s + b*n: target a*s, distortion b*n, SI-SDR = 20 log10(|a| / |b|) (equal energies)
    for a, b in [(1.0, 0.1), (3.0, 0.3), (0.5, 1.0), (-2.0, 0.02)]:
        assert si_sdr(s, a * s + b * n) == pytest.approx(20 * math.log10(abs(a) / b), abs=1e-9)
    assert si_sdr(s, s + 0.1 * n + 5.0) == pytest.approx(20.0, abs=1e-9)  # a DC offset is removed
    assert si_sdr(s, 7 * s) == SISDR_CAP_DB
    with pytest.raises(ValueError, match="silent"):
        si_sdr(np.ones(100), np.arange(100.0))
    with pytest.raises(ValueError, match="equally long"):
        si_sdr(s, s[:-1])


def test_sisdr_metric_on_files_and_clear_errors(tmp_path):
    metric = _speech_metric("sisdr")
    assert metric.score(reference=REF, degraded=REF) == 100.0
    assert metric.sample_rate is None and "SI-SDR" in metric.version
    with pytest.raises(AudioError, match="missing.flac"):
        metric.score(reference=REF, degraded=tmp_path / "missing.flac")


def test_pesq_and_stoi_errors_name_the_file(tmp_path):
    from deepaq.audio import read_audio, write_audio

    noise = np.random.default_rng(0).standard_normal((1, 3200)).astype(np.float32) * 0.1
    short = write_audio(tmp_path / "short.flac", noise, 16_000)  # 0.2 s
    with pytest.raises(AudioError, match="short.flac.*at least 0.25 s"):
        _speech_metric("pesq_wb").score(reference=REF, degraded=short)
    with pytest.raises(AudioError, match="short.flac.*cannot be aligned"):
        _speech_metric("stoi").score(reference=REF, degraded=short)
    x, sr = read_audio(REF)
    start = int(0.5 * sr)
    piece = write_audio(tmp_path / "piece.flac", x[:, start:start + int(0.3 * sr)], sr)
    with pytest.raises(AudioError, match="piece.flac: too short or silent for STOI"):
        _speech_metric("stoi").score(reference=piece, degraded=piece)


def test_a_missing_package_makes_the_metric_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # `import pesq` raises ModuleNotFoundError
    with pytest.raises(MetricUnavailable, match="pip install 'deepaq\\[baselines\\]'"):
        build_metric(MetricSpec("pesq_wb"))


def test_dnsmos_reads_the_degraded_file_alone(noisy):
    metric = _speech_metric("dnsmos")
    alone = metric.score(reference=REF, degraded=noisy[20])
    assert metric.score(reference=noisy[5], degraded=noisy[20]) == alone
    assert 1.0 <= alone <= 5.0 and "no reference" in metric.version
