"""Additive noise at a signal-to-noise ratio: white, pink, babble (several talkers), and noise
shaped like the signal itself (the in-band noise of a codec's quantiser).

SNR is the ratio of the signal's to the noise's energy over the whole clip and all channels
(no weighting, no voice-activity detection), so the result's SNR is exactly the requested one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import signal

from deepaq.degradations.registry import Param, family, looped, rms, signal_param
from deepaq.errors import ConfigError

SNR = Param(20.0, -20.0, 80.0, doc="dB; sampled uniform 0-40")


def add_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float, what: str) -> np.ndarray:
    """x + noise scaled so that energy(x) / energy(noise) is snr_db."""
    level, noise_level = rms(x), rms(noise)
    if level == 0:
        raise ConfigError(f"{what}: the input is silent, so no noise level follows from snr_db")
    return (x + noise * (level / noise_level * 10 ** (-snr_db / 20))).astype(np.float32)


def pink(rng: np.random.Generator, shape: tuple[int, int], sample_rate: int) -> np.ndarray:
    """Noise with a 1/f power spectrum (-3 dB per octave) above 20 Hz."""
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    f = np.fft.rfftfreq(shape[1], 1 / sample_rate)
    spectrum /= np.sqrt(np.maximum(f, 20.0))
    return np.fft.irfft(spectrum, n=shape[1], axis=-1)


def speech_shaped(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """One stand-in talker: noise with a long-term speech spectrum (flat 150-500 Hz, about
    -9 dB per octave above), modulated at syllable rates (3-6 Hz)."""
    sos = signal.butter(2, [150, min(500, sample_rate / 2 - 1)], btype="band", fs=sample_rate, output="sos")
    talker = signal.sosfilt(sos, pink(rng, (1, n), sample_rate)[0])
    t = np.arange(n) / sample_rate
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 2 * np.pi)), 0, None) ** 2
    return talker * (0.2 + envelope)


def _talker(source: Any, sample_rate: int, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """n samples of one talker (path or array), mono, looped, from a random offset, at unit RMS."""
    x = signal_param(source, sample_rate, f"{what}: parameter babble_sources").mean(axis=0, keepdims=True)
    return looped(x, n, rng)[0] / rms(x)


@family(
    "noise_white", "noise", "white Gaussian noise at an SNR, independent per channel",
    "electronic and quantisation noise, hiss",
    {"snr_db": SNR}, lambda rng: {"snr_db": round(float(rng.uniform(0, 40)), 1)},
)
def _white(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return add_at_snr(x, rng.standard_normal(x.shape), p["snr_db"], "noise_white")


@family(
    "noise_pink", "noise", "pink (1/f) noise at an SNR, independent per channel",
    "ambient and background rumble, fans, traffic",
    {"snr_db": SNR}, lambda rng: {"snr_db": round(float(rng.uniform(0, 40)), 1)},
)
def _pink(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return add_at_snr(x, pink(rng, x.shape, sr), p["snr_db"], "noise_pink")


@family(
    "noise_babble", "noise", "babble: several talkers summed, at an SNR (speech-shaped noise without sources)",
    "cafeteria, crowd and open-office background",
    {
        "snr_db": Param(10.0, -20.0, 80.0, doc="dB; sampled uniform -5-30"),
        "talkers": Param(6, 1, 32, doc="uniform 3-10"),
        "babble_sources": Param(None, doc="optional list of speech paths or arrays (at the input rate)"),
    },
    lambda rng: {"snr_db": round(float(rng.uniform(-5, 30)), 1), "talkers": int(rng.integers(3, 11))},
)
def _babble(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return _talkers(x, sr, p["snr_db"], int(p["talkers"]), p["babble_sources"], rng, "noise_babble")


@family(
    "competing_talker", "noise", "one other talker at an SNR (a speech-shaped stand-in without sources)",
    "crosstalk, a second voice on the line or in the room",
    {
        "snr_db": Param(10.0, -20.0, 80.0, doc="dB; sampled uniform 0-30"),
        "babble_sources": Param(None, doc="optional list of speech paths or arrays (at the input rate), one drawn"),
    },
    lambda rng: {"snr_db": round(float(rng.uniform(0, 30)), 1)},
)
def _competing(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return _talkers(x, sr, p["snr_db"], 1, p["babble_sources"], rng, "competing_talker")


def _talkers(x: np.ndarray, sr: int, snr_db: float, talkers: int, sources: Any, rng: np.random.Generator,
             what: str) -> np.ndarray:
    """x plus `talkers` voices drawn from `sources` (speech-shaped noise without), at snr_db."""
    n = x.shape[1]
    if sources is not None and (isinstance(sources, (str, Path)) or not isinstance(sources, Sequence) or not sources):
        raise ConfigError(f"{what}: parameter babble_sources must be a non-empty list of paths or arrays")
    babble = np.zeros(x.shape)
    for _ in range(talkers):
        if sources:
            voice = _talker(sources[int(rng.integers(0, len(sources)))], sr, n, rng, what)
        else:
            voice = speech_shaped(rng, n, sr)
            voice = voice / rms(voice)
        pan = rng.uniform(0.5, 1.0, size=(x.shape[0], 1))  # talkers spread across a stereo image
        babble += pan * voice
    return add_at_snr(x, babble, snr_db, what)


@family(
    "noise_shaped", "noise",
    "noise with the signal's own short-time spectrum (every STFT bin gets complex Gaussian noise "
    "in proportion to its magnitude), at an SNR",
    "a codec's quantisation noise at a fixed audio bandwidth: in-band, following the signal",
    {"snr_db": Param(20.0, -20.0, 80.0, doc="dB; sampled uniform 5-40")},
    lambda rng: {"snr_db": round(float(rng.uniform(5, 40)), 1)},
)
def _shaped(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    # 1024-point Hann frames at 50 % overlap sum to a constant, so the inverse STFT of the noisy
    # spectrum is the signal plus noise whose level in each bin and frame follows the signal's
    _, _, spec = signal.stft(x, nperseg=1024, axis=-1)
    noise_spec = spec * (rng.standard_normal(spec.shape) + 1j * rng.standard_normal(spec.shape)) / np.sqrt(2)
    _, noise = signal.istft(noise_spec, nperseg=1024, time_axis=-1, freq_axis=-2)
    noise = np.pad(noise, ((0, 0), (0, max(0, x.shape[1] - noise.shape[1]))))[:, : x.shape[1]]
    return add_at_snr(x, noise, p["snr_db"], "noise_shaped")
