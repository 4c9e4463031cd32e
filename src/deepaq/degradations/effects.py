"""Signal-level effects: clipping, echo, dropouts, band limits, spectral tilt and EQ.

Filters are zero-phase (forward-backward, or a real gain applied to the spectrum), so every
effect keeps its output sample-aligned with the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal

from deepaq.degradations.registry import Param, family, log_uniform
from deepaq.errors import ConfigError


# ---------------------------------------------------------------- clipping


@family(
    "clipping", "effect", "hard or soft (tanh) clipping at a level below the clip's peak",
    "overdriven recordings, loudness-war mastering, saturated microphone preamps",
    {
        "mode": Param("hard", choices=("hard", "soft"), doc="equal chance"),
        "clip_db": Param(6.0, 0.1, 40.0, doc="threshold in dB below the peak; sampled 0.5-20, log-uniform"),
    },
    lambda rng: {"mode": str(rng.choice(("hard", "soft"))), "clip_db": round(log_uniform(rng, 0.5, 20.0), 2)},
)
def _clipping(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    peak = float(np.abs(x).max())
    if peak == 0:
        raise ConfigError("clipping: the input is silent, so there is no peak to clip below")
    threshold = peak * 10 ** (-p["clip_db"] / 20)
    if p["mode"] == "hard":
        return np.clip(x, -threshold, threshold)
    return threshold * np.tanh(x / threshold)


# ---------------------------------------------------------------- echo and dropouts


@family(
    "echo", "effect", "delayed, attenuated copies of the signal (a feedback echo)",
    "acoustic echo in calls without cancellation, slap-back from walls",
    {
        "delay_ms": Param(150.0, 1.0, 2000.0, doc="sampled 30-400, log-uniform"),
        "gain_db": Param(-10.0, -60.0, -0.5, doc="each repeat's level against the last; sampled -25 to -3"),
        "repeats": Param(2, 1, 10, doc="uniform 1-4"),
    },
    lambda rng: {"delay_ms": round(log_uniform(rng, 30, 400), 1), "gain_db": round(float(rng.uniform(-25, -3)), 1),
                 "repeats": int(rng.integers(1, 5))},
)
def _echo(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    delay = max(1, int(round(p["delay_ms"] * sr / 1000)))
    gain = 10 ** (p["gain_db"] / 20)
    y = x.astype(np.float64)
    for k in range(1, int(p["repeats"]) + 1):
        if k * delay >= x.shape[1]:
            break
        y[:, k * delay :] += gain**k * x[:, : x.shape[1] - k * delay]
    return y


@family(
    "dropouts", "effect", "segments set to zero in every channel, at random times",
    "buffer underruns, lost network packets without concealment, dying cables",
    {
        "per_second": Param(1.0, 0.05, 50.0, doc="mean dropouts per second; sampled 0.3-5, log-uniform"),
        "length_ms": Param(40.0, 1.0, 1000.0, doc="each dropout's length; sampled 10-200, log-uniform"),
    },
    lambda rng: {"per_second": round(log_uniform(rng, 0.3, 5), 2), "length_ms": round(log_uniform(rng, 10, 200), 1)},
)
def _dropouts(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    n, length = x.shape[1], max(1, int(round(p["length_ms"] * sr / 1000)))
    count = max(1, int(rng.poisson(p["per_second"] * n / sr)))  # at least one, or nothing would change
    y = x.copy()
    for start in rng.integers(0, max(1, n - length), size=count):
        y[:, start : start + length] = 0
    return y


# ---------------------------------------------------------------- band limits, tilt, EQ


def _sample_band(rng: np.random.Generator) -> dict[str, Any]:
    kind = str(rng.choice(("lowpass", "highpass", "bandpass")))
    low = round(log_uniform(rng, 80, 1000)) if kind != "lowpass" else 100
    high = round(log_uniform(rng, 2500, 16000)) if kind != "highpass" else 8000
    return {"kind": kind, "low_hz": float(low), "high_hz": float(high), "order": int(rng.choice((2, 4, 8)))}


@family(
    "bandlimit", "effect", "zero-phase Butterworth low-, high- or band-pass",
    "telephone bands, cheap loudspeakers and microphones, band-limited streams",
    {
        "kind": Param("bandpass", choices=("lowpass", "highpass", "bandpass"), doc="equal chance"),
        "low_hz": Param(300.0, 10.0, 20000.0, doc="high-pass corner; sampled 80-1000, log-uniform"),
        "high_hz": Param(3400.0, 100.0, 96000.0, doc="low-pass corner; sampled 2500-16000, log-uniform"),
        "order": Param(4, 1, 12, doc="per pass (applied forward and backward); 2, 4 or 8"),
    },
    _sample_band,
)
def _bandlimit(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    kind, low, high = p["kind"], p["low_hz"], p["high_hz"]
    if kind != "highpass" and not high < sr / 2:
        raise ConfigError(f"bandlimit: parameter high_hz={high:g} must lie below half the sample rate ({sr / 2:g} Hz)")
    if kind == "bandpass" and not low < high:
        raise ConfigError(f"bandlimit: parameter low_hz={low:g} must lie below high_hz={high:g}")
    corners = {"lowpass": high, "highpass": low, "bandpass": [low, high]}[kind]
    sos = signal.butter(int(p["order"]), corners, btype=kind.replace("pass", ""), fs=sr, output="sos")
    return signal.sosfiltfilt(sos, x.astype(np.float64), axis=-1)


def spectral_gain(x: np.ndarray, sample_rate: int, gain_db: np.ndarray) -> np.ndarray:
    """Multiply x's spectrum by a real gain (dB per rfft bin of the whole clip): zero phase."""
    spectrum = np.fft.rfft(x.astype(np.float64), axis=-1)
    spectrum *= 10 ** (gain_db / 20)
    return np.fft.irfft(spectrum, n=x.shape[1], axis=-1)


def _octaves(n: int, sample_rate: int, pivot_hz: float) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    return np.log2(np.maximum(f, 20.0) / pivot_hz)


@family(
    "tilt", "effect", "spectral tilt: a constant dB-per-octave slope around 1 kHz, within +-20 dB",
    "dull or bright playback chains, off-axis microphones, worn tape",
    {
        "db_per_octave": Param(-3.0, -12.0, 12.0, doc="sampled uniform -4 to 4"),
        "pivot_hz": Param(1000.0, 50.0, 10000.0, doc="unchanged frequency"),
    },
    lambda rng: {"db_per_octave": round(float(rng.uniform(-4, 4)), 2), "pivot_hz": 1000.0},
)
def _tilt(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    gain = np.clip(p["db_per_octave"] * _octaves(x.shape[1], sr, p["pivot_hz"]), -20, 20)
    return spectral_gain(x, sr, gain)


def _sample_eq(rng: np.random.Generator) -> dict[str, Any]:
    bands = [
        [round(log_uniform(rng, 60, 12000)), round(float(rng.uniform(-15, 15)), 1), round(log_uniform(rng, 0.3, 3), 2)]
        for _ in range(int(rng.integers(1, 6)))
    ]
    return {"bands": bands}


@family(
    "eq", "effect", "a parametric EQ: bell-shaped boosts and cuts in log frequency (zero phase)",
    "room and loudspeaker colouration, careless mastering EQ",
    {"bands": Param([[1000.0, 6.0, 1.0]], doc="[centre Hz, gain dB, width in octaves] each; 1-5 bands, "
                    "centre 60-12000 Hz log-uniform, gain -15 to 15 dB, width 0.3-3 octaves")},
    _sample_eq,
)
def _eq(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    bands = p["bands"]
    if not isinstance(bands, (list, tuple)) or not bands or any(not isinstance(b, (list, tuple)) or len(b) != 3 for b in bands):
        raise ConfigError("eq: parameter bands must be a non-empty list of [centre_hz, gain_db, width_octaves]")
    gain = np.zeros(x.shape[1] // 2 + 1)
    for centre, gain_db, width in bands:
        if not (10 <= centre < sr / 2 and -40 <= gain_db <= 40 and 0.05 <= width <= 10):
            raise ConfigError(f"eq: parameter bands has [{centre}, {gain_db}, {width}]: centre must lie in 10 Hz to "
                              f"{sr / 2:g} Hz, gain in -40 to 40 dB, width in 0.05 to 10 octaves")
        gain += gain_db * np.exp(-0.5 * (_octaves(x.shape[1], sr, centre) / (width / 2)) ** 2)
    return spectral_gain(x, sr, gain)
