"""Separation-like artefacts: the target recovered from a mixture by an imperfect
time-frequency mask, as mask-based source separation and speech enhancement do.

The mixture is the signal plus an interferer (a given one, else pink noise) at `mix_snr_db`.
The mask starts as the ideal ratio mask of the two, then is spoiled the way real estimators
spoil it: a floor (`leakage_db`) lets the interferer through, random log-gain errors
(`mask_error_db`) and holes punched into target bins (`holes`) make musical noise, and
smoothing over neighbouring bins (`smoothing_bins`) blurs transients and harmonics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from deepaq.degradations.noise import pink
from deepaq.degradations.registry import Param, family, looped, rms, signal_param
from deepaq.degradations.spectral import istft, stft
from deepaq.errors import ConfigError

STFT_SECONDS = 2048 / 48000  # about 43 ms windows, 75 % overlap


def _interferer(source: Any, x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The interferer as [channels, samples] like x: a path or array (looped, from a random
    offset; a channel count other than x's is downmixed and spread), or pink noise."""
    if source is None:
        return pink(rng, x.shape, sample_rate)
    s = signal_param(source, sample_rate, "separation: parameter interferer")
    if s.shape[0] != x.shape[0]:
        s = np.repeat(s.mean(axis=0, keepdims=True), x.shape[0], axis=0)
    return looped(s, x.shape[1], rng)


@family(
    "separation", "separation", "an imperfect ratio mask on a mixture with an interferer: leakage, musical noise, smearing",
    "source separation (vocals from music, speaker from speaker) and mask-based speech enhancement",
    {
        "mix_snr_db": Param(0.0, -20.0, 30.0, doc="signal to interferer in the mixture; sampled -5 to 10"),
        "leakage_db": Param(-20.0, -80.0, 0.0, doc="mask floor; sampled -40 to -6"),
        "mask_error_db": Param(3.0, 0.0, 20.0, doc="std of random mask log-gain errors; sampled 0-8"),
        "holes": Param(0.05, 0.0, 0.9, doc="fraction of target bins dropped; sampled 0-0.3"),
        "smoothing_bins": Param(1, 0, 16, doc="mask smoothing width in bins (time and frequency); 0-4"),
        "interferer": Param(None, doc="optional path or [channels, samples] array at the input rate"),
    },
    lambda rng: {
        "mix_snr_db": round(float(rng.uniform(-5, 10)), 1), "leakage_db": round(float(rng.uniform(-40, -6)), 1),
        "mask_error_db": round(float(rng.uniform(0, 8)), 1), "holes": round(float(rng.uniform(0, 0.3)), 3),
        "smoothing_bins": int(rng.integers(0, 5)),
    },
)
def _separation(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    if rms(x) == 0:
        raise ConfigError("separation: the input is silent, so no mixture level follows from mix_snr_db")
    interferer = _interferer(p["interferer"], x, sr, rng)
    interferer = interferer * (rms(x) / rms(interferer) * 10 ** (-p["mix_snr_db"] / 20))
    n_fft = 2 ** int(round(np.log2(STFT_SECONDS * sr)))
    target, other = stft(x, n_fft), stft(interferer.astype(np.float32), n_fft)
    power_t, power_o = np.abs(target) ** 2, np.abs(other) ** 2
    mask = power_t / np.maximum(power_t + power_o, 1e-20)
    if p["mask_error_db"] > 0:
        mask = mask * 10 ** (rng.normal(0, p["mask_error_db"], mask.shape) / 20)
    if p["holes"] > 0:
        mask = np.where((rng.random(mask.shape) < p["holes"]) & (mask > 0.5), 0.0, mask)
    if p["smoothing_bins"] > 0:
        size = (1,) * (mask.ndim - 2) + (int(p["smoothing_bins"]) + 1,) * 2
        mask = ndimage.uniform_filter(mask, size=size, mode="nearest")
    mask = np.clip(mask, 10 ** (p["leakage_db"] / 20), 1.0)
    return istft(mask * (target + other), n_fft, x.shape[1])
