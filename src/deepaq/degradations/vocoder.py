"""Vocoder-like resynthesis: the signal rebuilt from a coarse parametric description, the way
low-rate neural and parametric codecs rebuild it (plausible timbre, wrong fine structure).

- `world`: the WORLD vocoder (pyworld, in the [train] extra) with its f0 quantised in cents,
  its spectral envelope reduced to a few mel-cepstral coefficients and quantised, its
  aperiodicity quantised in dB; at a lower internal rate, like a wide-band speech codec.
- `griffinlim`: magnitudes from a coarse, dB-quantised mel spectrogram, phase rebuilt by a
  few Griffin-Lim iterations from a random start (numpy and scipy only).

Each channel is resynthesised on its own; the result comes back at the input rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from deepaq.audio.resample import resample
from deepaq.codecs import fit_length
from deepaq.degradations.registry import Param, family, log_uniform
from deepaq.degradations.spectral import istft, stft
from deepaq.errors import require

VOCODER_RATES = (16000, 24000)


def _quantise(v: np.ndarray, step: float) -> np.ndarray:
    return np.round(v / step) * step if step > 0 else v


def _world_channel(x: np.ndarray, rate: int, p: dict[str, Any]) -> np.ndarray:
    pyworld = require("pyworld", "the world degradation", "train")
    x = np.ascontiguousarray(x, dtype=np.float64)
    f0, t = pyworld.dio(x, rate, frame_period=p["frame_ms"])
    f0 = pyworld.stonemask(x, f0, t, rate)
    sp = pyworld.cheaptrick(x, f0, t, rate)
    ap = pyworld.d4c(x, f0, t, rate)
    voiced = f0 > 0
    f0[voiced] = 440 * 2 ** (_quantise(1200 * np.log2(f0[voiced] / 440), p["f0_step_cents"]) / 1200)
    fft_size = (sp.shape[1] - 1) * 2
    coded = _quantise(pyworld.code_spectral_envelope(sp, rate, int(p["sp_dims"])), p["sp_step"])
    sp = pyworld.decode_spectral_envelope(np.ascontiguousarray(coded), rate, fft_size)
    coded_ap = np.minimum(_quantise(pyworld.code_aperiodicity(ap, rate), p["ap_step_db"]), 0.0)
    ap = pyworld.decode_aperiodicity(np.ascontiguousarray(coded_ap), rate, fft_size)
    return pyworld.synthesize(f0, sp, ap, rate, frame_period=p["frame_ms"])


@family(
    "world", "vocoder", "WORLD analysis-synthesis with coarsely quantised f0, envelope and aperiodicity",
    "parametric and neural speech codecs at 1-6 kbps (LPCNet, Lyra, EnCodec at low rates), TTS vocoders",
    {
        "rate": Param(16000, choices=VOCODER_RATES, doc="internal rate, Hz; 16000 or 24000"),
        "frame_ms": Param(10.0, 2.0, 40.0, doc="analysis frame period; sampled 5-20"),
        "f0_step_cents": Param(50.0, 0.0, 600.0, doc="f0 quantisation step; sampled 10-200, log-uniform"),
        "sp_dims": Param(24, 4, 120, doc="mel-cepstral coefficients kept; sampled 10-40"),
        "sp_step": Param(0.05, 0.0, 2.0, doc="envelope quantisation step (coded log units); sampled 0-0.3"),
        "ap_step_db": Param(3.0, 0.0, 30.0, doc="aperiodicity quantisation step; sampled 0-12"),
    },
    lambda rng: {
        "rate": int(rng.choice(VOCODER_RATES)), "frame_ms": round(float(rng.uniform(5, 20)), 1),
        "f0_step_cents": round(log_uniform(rng, 10, 200), 1), "sp_dims": int(rng.integers(10, 41)),
        "sp_step": round(float(rng.uniform(0, 0.3)), 3), "ap_step_db": round(float(rng.uniform(0, 12)), 1),
    },
)
def _world(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    rate = int(p["rate"])
    z = resample(x, sr, rate)
    y = np.stack([fit_length(_world_channel(c, rate, p)[None, :], z.shape[1])[0] for c in z])
    return fit_length(resample(y.astype(np.float32), rate, sr), x.shape[1])


def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters equally spaced on the HTK mel scale, 0 Hz to Nyquist."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(0, mel(sample_rate / 2), n_mels + 2) / 2595) - 1)
    f = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))


MOMENTUM = 0.99  # fast Griffin-Lim (Perraudin et al. 2013), as librosa and torchaudio use by default


@family(
    "griffinlim", "vocoder", "fast Griffin-Lim phase reconstruction from a coarse, dB-quantised mel spectrogram",
    "spectrogram-domain neural codecs and vocoders: phasey, smeared, metallic artefacts",
    {
        "n_mels": Param(40, 8, 256, doc="mel bands; sampled 20-80, log-uniform"),
        "iterations": Param(16, 0, 200, doc="Griffin-Lim iterations; sampled 4-32, log-uniform"),
        "step_db": Param(1.0, 0.0, 12.0, doc="mel magnitude quantisation; sampled 0-3"),
        "rate": Param(24000, choices=VOCODER_RATES + (48000,), doc="internal rate, Hz; 16000, 24000 or 48000"),
    },
    lambda rng: {"n_mels": int(round(log_uniform(rng, 20, 80))), "iterations": int(round(log_uniform(rng, 4, 32))),
                 "step_db": round(float(rng.uniform(0, 3)), 2), "rate": int(rng.choice(VOCODER_RATES + (48000,)))},
)
def _griffinlim(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    rate = int(p["rate"])
    n_fft = 2 ** int(round(np.log2(0.043 * rate)))  # 32-43 ms windows
    z = resample(x, sr, rate)
    fb = mel_filters(rate, n_fft, int(p["n_mels"])).astype(np.float32)
    power = np.abs(stft(z, n_fft)) ** 2
    mel_db = _quantise(10 * np.log10(np.maximum(np.einsum("mf,cft->cmt", fb, power), 1e-12)), p["step_db"])
    power = np.einsum("fm,cmt->cft", np.linalg.pinv(fb), 10 ** (mel_db / 10))
    magnitude = np.sqrt(np.maximum(power, 0)).astype(np.float32)
    phase = np.exp(2j * np.pi * rng.random(magnitude.shape, dtype=np.float32))
    previous = 0
    for _ in range(int(p["iterations"])):
        rebuilt = stft(istft(magnitude * phase, n_fft, z.shape[1]), n_fft)
        accelerated = rebuilt + MOMENTUM * (rebuilt - previous)
        previous = rebuilt
        phase = accelerated / np.maximum(np.abs(accelerated), 1e-12)
    y = istft(magnitude * phase, n_fft, z.shape[1])
    return fit_length(resample(y.astype(np.float32), rate, sr), x.shape[1])
