"""The FFT ear model of PEAQ Basic (ITU-R BS.1387-1 section 2.1, as interpreted by Kabal 2002).

Every function works on whole signals at once: arrays are `[..., frames, bands]` (or
`[..., frames, bins]`), so the per-frame loops of the standard become array operations over
the frame axis; the three loops that numpy cannot express well (recursions over frames,
grouping into bands, spreading over bands) run as compiled kernels (`kernels`).

Signals are on the 16-bit sample scale (full scale = 32768), which is where the standard's
listening level (full-scale sine = 92 dB SPL) and its energy thresholds are defined.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

from deepaq.baselines.peaq import kernels
from deepaq.baselines.peaq import tables as T

NUM_BINS = T.FRAME // 2 + 1


def hann(n: int) -> np.ndarray:
    """Symmetric Hann window (denominator n - 1), as the standard and PQevalAudio use it."""
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * np.arange(n) / (n - 1)))


def time_constants(t100: float, tmin: float, fc: np.ndarray = T.BAND_CENTRE) -> np.ndarray:
    """Per-band smoothing coefficient `a` of y[n] = a y[n-1] + (1 - a) x[n] at the frame rate."""
    tau = tmin + (100.0 / fc) * (t100 - tmin)
    return np.exp(-1.0 / (T.FRAME_RATE * tau))


def smooth(x: np.ndarray, a: np.ndarray, b: np.ndarray | float | None = None) -> np.ndarray:
    """First-order recursion y[n] = a y[n-1] + b x[n] along the frame axis (-2), zero start.

    `a` and `b` hold one coefficient per band (last axis); `b` defaults to 1 - a.
    """
    b = 1.0 - a if b is None else np.broadcast_to(np.asarray(b, dtype=float), a.shape)
    rows = np.ascontiguousarray(x, dtype=float).reshape(-1, *x.shape[-2:])
    return kernels.smooth(rows, np.ascontiguousarray(a), np.ascontiguousarray(b)).reshape(x.shape)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """Hann window times the gain that puts a full-scale 1019.5 Hz sine at 92 dB SPL."""
    n = T.FRAME
    # Peak factor of the Hann window for a sine that falls between DFT bins (Kabal 2002).
    fcn = T.TEST_SINE_HZ / T.SAMPLE_RATE
    k = int(fcn * n)
    dfw = min((k + 1) / n - fcn, fcn - k / n) * (n - 1)
    gp = np.sin(np.pi * dfw) / (np.pi * dfw * (1.0 - dfw * dfw))
    gain = 10.0 ** (T.LISTENING_LEVEL_DB / 20.0) / (gp * (T.AMAX / 4.0) * (n - 1))
    return gain * hann(n)


@lru_cache(maxsize=1)
def _ear_weight() -> np.ndarray:
    """Outer and middle ear weighting |W(f)|^2 on the DFT bins (0 at DC)."""
    f_khz = np.arange(NUM_BINS) * (T.SAMPLE_RATE / T.FRAME) / 1000.0
    w2 = np.zeros(NUM_BINS)
    f = f_khz[1:]
    a_db = -2.184 * f**-0.8 + 6.5 * np.exp(-0.6 * (f - 3.3) ** 2) - 0.001 * f**3.6
    w2[1:] = 10.0 ** (a_db / 10.0)
    return w2


@lru_cache(maxsize=1)
def _band_map() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """DFT bins -> bands `(first bin, last bin, first-bin weight, last-bin weight)`.

    Bin k covers [(k - 0.5) df, (k + 0.5) df]; the first and last bin of a band count by the
    fraction of their width inside the band, the bins between fully (PQevalAudio's mapping;
    a one-bin band counts its bin once).
    """
    df = T.SAMPLE_RATE / T.FRAME
    kl = np.empty(T.NUM_BANDS, dtype=np.int64)
    ku = np.empty(T.NUM_BANDS, dtype=np.int64)
    ul = np.empty(T.NUM_BANDS)
    uu = np.empty(T.NUM_BANDS)
    for i, (fl, fu) in enumerate(zip(T.BAND_LOW, T.BAND_HIGH)):
        kl[i] = next(k for k in range(T.FRAME // 2) if (k + 0.5) * df > fl)
        ku[i] = next(k for k in range(T.FRAME // 2, -1, -1) if (k - 0.5) * df < fu)
        ul[i] = (min(fu, (kl[i] + 0.5) * df) - max(fl, (kl[i] - 0.5) * df)) / df
        uu[i] = 0.0 if ku[i] == kl[i] else (min(fu, (ku[i] + 0.5) * df) - max(fl, (ku[i] - 0.5) * df)) / df
    return kl, ku, ul, uu


def internal_noise(fc: np.ndarray = T.BAND_CENTRE) -> np.ndarray:
    """Energy of the ear's internal noise per band."""
    return 10.0 ** (0.4 * 0.364 * (fc / 1000.0) ** -0.8)


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """|DFT|^2 of Hann-windowed, level-scaled frames `[..., frames, 2048]` -> `[..., frames, 1025]`."""
    spec = scipy.fft.rfft(frames * _window(), axis=-1, overwrite_x=True)
    return kernels.abs2(spec.reshape(-1, NUM_BINS)).reshape(spec.shape)


def group_bands(x2: np.ndarray) -> np.ndarray:
    """DFT energies `[..., bins]` -> band energies `[..., 109]` (floor 1e-12)."""
    rows = np.ascontiguousarray(x2).reshape(-1, NUM_BINS)
    return kernels.group(rows, *_band_map()).reshape(*x2.shape[:-1], T.NUM_BANDS)


def _spread_raw(e: np.ndarray) -> np.ndarray:
    """Level-dependent spreading over bands, before normalisation (Kabal eqs. 23-28)."""
    dz = T.BAND_DZ
    a_low = 10.0 ** (-2.7 * dz)
    a_up = 10.0 ** ((-2.4 - 23.0 / T.BAND_CENTRE) * dz)
    g_low = (1.0 - a_low ** (np.arange(T.NUM_BANDS) + 1)) / (1.0 - a_low)
    rows = np.ascontiguousarray(e, dtype=float).reshape(-1, T.NUM_BANDS)
    return kernels.spread(rows, a_up, g_low, a_low, dz).reshape(e.shape)


@lru_cache(maxsize=1)
def _spread_norm() -> np.ndarray:
    """Normalisation that makes unit energy in every band spread to unit energy."""
    return _spread_raw(np.ones(T.NUM_BANDS))


def spread(e: np.ndarray) -> np.ndarray:
    """Pitch patterns `[..., 109]` -> unsmeared excitation patterns (frequency spreading)."""
    return _spread_raw(e) / _spread_norm()


def time_spread(es: np.ndarray) -> np.ndarray:
    """Unsmeared excitation `[..., frames, 109]` -> excitation patterns (forward masking)."""
    ef = smooth(es, time_constants(0.030, 0.008))
    return np.maximum(ef, es)


def ear_weighted(x2: np.ndarray) -> np.ndarray:
    """Apply the outer and middle ear weighting to DFT energies `[..., 1025]`."""
    return _ear_weight() * x2


def excitation(xw2: np.ndarray) -> np.ndarray:
    """Ear-weighted DFT energies -> unsmeared excitation patterns (grouping, internal noise, spreading)."""
    return spread(group_bands(xw2) + internal_noise())


def noise_bands(xw2_ref: np.ndarray, xw2_test: np.ndarray) -> np.ndarray:
    """Band energies of the magnitude difference |Xw_ref| - |Xw_test| of ear-weighted spectra (noise patterns)."""
    r = np.ascontiguousarray(xw2_ref).reshape(-1, NUM_BINS)
    t = np.ascontiguousarray(xw2_test).reshape(-1, NUM_BINS)
    return kernels.group_noise(r, t, *_band_map()).reshape(*xw2_ref.shape[:-1], T.NUM_BANDS)
