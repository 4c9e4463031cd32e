"""Reverberation through a synthetic room impulse response.

The response is a unit direct path at lag 0 (so the output stays aligned with the input)
followed, after a pre-delay, by exponentially decaying Gaussian noise: the statistical model
of a diffuse late field (Schroeder). Frequencies above 4 kHz decay twice as fast, as air and
wall absorption make them do. Each channel gets its own noise, so a stereo tail is diffuse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal

from deepaq.degradations.registry import Param, family, log_uniform

HF_SPLIT_HZ = 4000.0
HF_DECAY_RATIO = 0.5  # RT60 above HF_SPLIT_HZ, as a fraction of the broadband RT60


def impulse_response(rng: np.random.Generator, sample_rate: int, channels: int, rt60_s: float,
                     drr_db: float, predelay_ms: float) -> np.ndarray:
    """[channels, taps]: direct path 1 at tap 0, then the decaying tail at `drr_db` below it."""
    start = int(round(predelay_ms * sample_rate / 1000)) + 1
    taps = start + int(1.2 * rt60_s * sample_rate)
    t = np.arange(taps - start) / sample_rate
    noise = rng.standard_normal((channels, taps - start))
    cut = min(HF_SPLIT_HZ, 0.45 * sample_rate)
    low = signal.sosfilt(signal.butter(2, cut, "low", fs=sample_rate, output="sos"), noise, axis=-1)
    high = noise - low
    tail = low * np.exp(-6.908 * t / rt60_s) + high * np.exp(-6.908 * t / (HF_DECAY_RATIO * rt60_s))
    tail *= np.minimum(1.0, t / 0.005)  # a 5 ms onset: no click where the tail starts
    energy = np.sum(tail**2, axis=-1, keepdims=True)
    h = np.zeros((channels, taps))
    h[:, 0] = 1.0
    h[:, start:] = tail * np.sqrt(10 ** (-drr_db / 10) / energy)
    return h


@family(
    "reverb", "room", "convolution with a synthetic room response (direct path + exponential noise tail)",
    "rooms, halls and far-field microphones: lecture halls, phone calls on speaker, live recordings",
    {
        "rt60_s": Param(0.6, 0.05, 5.0, doc="reverberation time; sampled 0.2-2.0, log-uniform"),
        "drr_db": Param(6.0, -20.0, 40.0, doc="direct-to-reverberant ratio; sampled -6 to 15"),
        "predelay_ms": Param(10.0, 0.0, 100.0, doc="gap before the tail; sampled 0-30"),
    },
    lambda rng: {"rt60_s": round(log_uniform(rng, 0.2, 2.0), 3), "drr_db": round(float(rng.uniform(-6, 15)), 1),
                 "predelay_ms": round(float(rng.uniform(0, 30)), 1)},
)
def _reverb(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    h = impulse_response(rng, sr, x.shape[0], p["rt60_s"], p["drr_db"], p["predelay_ms"])
    return signal.fftconvolve(x.astype(np.float64), h, axes=-1)[:, : x.shape[1]]
