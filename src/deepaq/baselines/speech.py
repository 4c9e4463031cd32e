"""Speech metrics: PESQ (P.862.2 wide band, P.862 + P.862.1 narrow band), STOI, ESTOI,
ViSQOL v3 speech mode and SI-SDR, each as `score(*, reference, degraded) -> float`.

    from deepaq.baselines.speech import Pesq, Stoi, VisqolSpeech, SiSdr
    Pesq("wb").score(reference="clean.wav", degraded="enhanced.wav")   # MOS-LQO, 1.04..4.64

PESQ and STOI come from their PyPI packages (`pesq`, `pystoi`; `pip install 'deepaq[baselines]'`),
ViSQOL from visqol-python; SI-SDR (Le Roux et al., 2019) is computed here. Inputs are paths or
`(array, sample_rate)` pairs, downmixed to mono and resampled to the metric's rate. PESQ and
ViSQOL align the pair themselves; STOI and SI-SDR compare sample by sample, so the pair is
aligned first with `deepaq.audio.align_pair` (within `max_delay_s`).
"""

from __future__ import annotations

import math
import warnings
from importlib import metadata

import numpy as np

from deepaq.audio import AudioSource, align_pair, load_audio
from deepaq.errors import AudioError, DeepaqError, require

SISDR_CAP_DB = 100.0  # SI-SDR of (nearly) identical signals, instead of +inf


def _name(source: AudioSource) -> str:
    return "<array>" if isinstance(source, tuple) else str(source)


def _mono(source: AudioSource, sample_rate: int | None, min_seconds: float = 0.0) -> tuple[np.ndarray, int]:
    x, sr = load_audio(source, sample_rate=sample_rate, mono=True, min_seconds=min_seconds)
    return np.asarray(x[0], dtype=np.float64), sr


def _aligned(reference: AudioSource, degraded: AudioSource, sample_rate: int | None,
             max_delay_s: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Mono pair at `sample_rate` (None: the reference's rate), delay removed, common length."""
    ref, sr = _mono(reference, sample_rate, min_seconds=0.1)
    deg, _ = _mono(degraded, sr, min_seconds=0.1)
    pair = align_pair(ref[None], deg[None], sr, max_delay_s=max_delay_s,
                      names=(_name(reference), _name(degraded)))
    return pair.reference[0], pair.degraded[0], sr


class Pesq:
    """PESQ MOS-LQO: `mode="wb"` (P.862.2, 16 kHz) or `"nb"` (P.862 mapped by P.862.1, 8 kHz)."""

    higher_is_better = True

    def __init__(self, mode: str = "wb"):
        if mode not in ("wb", "nb"):
            raise DeepaqError(f"PESQ mode must be 'wb' or 'nb', got {mode!r}")
        self._pesq = require("pesq", "PESQ", "baselines")
        self.mode = mode
        self.sample_rate = 16_000 if mode == "wb" else 8_000
        self.score_range = (1.04, 4.64) if mode == "wb" else (1.02, 4.55)
        band = "wide band P.862.2" if mode == "wb" else "narrow band P.862 + P.862.1"
        self.version = f"pesq {metadata.version('pesq')} ({band}, {self.sample_rate // 1000} kHz)"

    def score(self, *, reference: AudioSource, degraded: AudioSource) -> float:
        ref, _ = _mono(reference, self.sample_rate, min_seconds=0.25)
        deg, _ = _mono(degraded, self.sample_rate, min_seconds=0.25)
        try:
            value = self._pesq.pesq(self.sample_rate, ref, deg, self.mode)
        except (self._pesq.PesqError, ValueError) as exc:
            raise AudioError(_name(degraded), f"PESQ cannot score it against {_name(reference)}: "
                                              f"{type(exc).__name__} {exc}".strip()) from exc
        return float(value)


class Stoi:
    """STOI (Taal et al., 2011) or, with `extended=True`, ESTOI (Jensen & Taal, 2016); 10 kHz inside."""

    higher_is_better = True
    sample_rate = 16_000  # what the pair is brought to; pystoi resamples to 10 kHz itself

    def __init__(self, extended: bool = False, max_delay_s: float = 1.0):
        self._stoi = require("pystoi", "STOI", "baselines")
        self.extended = bool(extended)
        self.max_delay_s = float(max_delay_s)
        self.score_range = (-1.0, 1.0) if self.extended else (0.0, 1.0)
        name = "ESTOI" if self.extended else "STOI"
        self.version = f"pystoi {metadata.version('pystoi')} ({name}), aligned within {self.max_delay_s:g} s"

    def score(self, *, reference: AudioSource, degraded: AudioSource) -> float:
        ref, deg, sr = _aligned(reference, degraded, self.sample_rate, self.max_delay_s)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = float(self._stoi.stoi(ref, deg, sr, extended=self.extended))
        if not math.isfinite(value) or any("Not enough STFT frames" in str(w.message) for w in caught):
            raise AudioError(_name(degraded), f"too short or silent for STOI against {_name(reference)} "
                                              "(it needs 30 STFT frames, about 384 ms, of non-silent speech)")
        return value


class VisqolSpeech:
    """ViSQOL v3 speech mode (16 kHz, voice-activity patches): MOS-LQO in [1, 5].

    `mapper="polynomial"` is the exponential fit of C++ ViSQOL with `--use_lattice_model=false`
    (no extra package); `"lattice"` the deep-lattice network of C++'s default, which needs
    `pip install visqol-python[lattice]`. `sample_rate=None` scores at the reference's own
    rate, as C++ ViSQOL does with any input (its speech conformance value for a 48 kHz
    sentence was measured so; visqol-python then logs a warning).
    """

    higher_is_better = True
    score_range = (1.0, 5.0)

    def __init__(self, mapper: str = "polynomial", sample_rate: int | None = 16_000):
        if mapper not in ("polynomial", "lattice"):
            raise DeepaqError(f"ViSQOL speech mapper must be 'polynomial' or 'lattice', got {mapper!r}")
        visqol = require("visqol", "ViSQOL speech mode", "baselines")
        self._api = visqol.VisqolApi()
        self._api.create(mode="speech", use_lattice_model=mapper == "lattice")
        self.sample_rate = sample_rate
        rate = "the input's rate" if sample_rate is None else f"{sample_rate / 1000:g} kHz"
        self.version = f"visqol-python {visqol.__version__} (ViSQOL v3 speech mode, {mapper} mapping, {rate})"

    def score(self, *, reference: AudioSource, degraded: AudioSource) -> float:
        ref, sr = _mono(reference, self.sample_rate, min_seconds=1.0)
        deg, _ = _mono(degraded, sr, min_seconds=1.0)
        try:
            mos = float(self._api.measure_from_arrays(ref, deg, sr).moslqo)
        except ValueError as exc:
            raise AudioError(_name(degraded), f"ViSQOL speech mode cannot score it against {_name(reference)}: {exc}") from exc
        if not math.isfinite(mos):
            raise AudioError(_name(degraded), f"ViSQOL speech mode returned {mos} against {_name(reference)}")
        return mos


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB of `estimate` against `reference` (equal-length 1-D arrays).

    Both are made zero-mean; the target is the projection of the estimate on the reference,
    alpha * reference with alpha = <estimate, reference> / |reference|^2, and the rest is
    distortion (Le Roux, Wisdom, Erdogan, Hershey, "SDR - half-baked or well done?", ICASSP
    2019). Capped at `SISDR_CAP_DB` for (nearly) identical signals.
    """
    s = np.asarray(reference, np.float64)
    e = np.asarray(estimate, np.float64)
    if s.shape != e.shape or s.ndim != 1:
        raise ValueError(f"SI-SDR needs two equally long 1-D signals, got {s.shape} and {e.shape}")
    s = s - s.mean()
    e = e - e.mean()
    energy = float(s @ s)
    if energy == 0.0:
        raise ValueError("SI-SDR is undefined for a silent (constant) reference")
    target = (float(e @ s) / energy) * s
    noise = e - target
    t, n = float(target @ target), float(noise @ noise)
    if n <= t * 10 ** (-SISDR_CAP_DB / 10):
        return SISDR_CAP_DB
    return 10 * math.log10(t / n) if t > 0 else -SISDR_CAP_DB


class SiSdr:
    """SI-SDR (dB, higher is better) at the reference's own rate, after alignment."""

    higher_is_better = True
    sample_rate = None
    score_range = (-SISDR_CAP_DB, SISDR_CAP_DB)

    def __init__(self, max_delay_s: float = 1.0):
        from deepaq import __version__

        self.max_delay_s = float(max_delay_s)
        self.version = f"deepaq {__version__} SI-SDR (Le Roux et al. 2019), aligned within {self.max_delay_s:g} s"

    def score(self, *, reference: AudioSource, degraded: AudioSource) -> float:
        ref, deg, _ = _aligned(reference, degraded, None, self.max_delay_s)
        try:
            return si_sdr(ref, deg)
        except ValueError as exc:
            raise AudioError(_name(reference), str(exc)) from exc
