"""The FFT ear model of PEAQ Basic (ITU-R BS.1387-1 section 2.1, as interpreted by Kabal 2002).

Every function works on whole signals at once: arrays are `[..., frames, bands]` (or
`[..., frames, bins]`), so the per-frame loops of the standard become numpy operations over
the frame axis. The only recursions over time are first-order smoothers (`smooth`).

Signals are on the 16-bit sample scale (full scale = 32768), which is where the standard's
listening level (full-scale sine = 92 dB SPL) and its energy thresholds are defined.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.signal
import scipy.sparse

from deepaq.baselines.peaq import tables as T

NUM_BINS = T.FRAME // 2 + 1
SPREAD_POWER = 0.4  # power law of the addition of spread energies


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
    b = 1.0 - a if b is None else np.broadcast_to(b, a.shape)
    y = np.empty_like(x)
    for m in range(x.shape[-1]):
        y[..., m] = scipy.signal.lfilter([b[m]], [1.0, -a[m]], x[..., m], axis=-1)
    return y


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
def _band_matrix() -> scipy.sparse.csr_matrix:
    """DFT bins -> bands: each bin counts by the fraction of its width inside the band.

    Bin k covers [(k - 0.5) df, (k + 0.5) df]; the first and last bin of a band count
    partly, the bins between fully (PQevalAudio's mapping; a one-bin band counts once).
    """
    df = T.SAMPLE_RATE / T.FRAME
    rows, cols, vals = [], [], []
    for i, (fl, fu) in enumerate(zip(T.BAND_LOW, T.BAND_HIGH)):
        kl = next(k for k in range(T.FRAME // 2) if (k + 0.5) * df > fl)
        ku = next(k for k in range(T.FRAME // 2, -1, -1) if (k - 0.5) * df < fu)
        weights = {kl: (min(fu, (kl + 0.5) * df) - max(fl, (kl - 0.5) * df)) / df}
        for k in range(kl + 1, ku):
            weights[k] = 1.0
        if ku != kl:
            weights[ku] = (min(fu, (ku + 0.5) * df) - max(fl, (ku - 0.5) * df)) / df
        for k, w in weights.items():
            rows.append(k)
            cols.append(i)
            vals.append(w)
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(NUM_BINS, T.NUM_BANDS))


def internal_noise(fc: np.ndarray = T.BAND_CENTRE) -> np.ndarray:
    """Energy of the ear's internal noise per band."""
    return 10.0 ** (0.4 * 0.364 * (fc / 1000.0) ** -0.8)


def power_spectrum(frames: np.ndarray) -> np.ndarray:
    """|DFT|^2 of Hann-windowed, level-scaled frames `[..., frames, 2048]` -> `[..., frames, 1025]`."""
    spec = np.fft.rfft(frames * _window(), axis=-1)
    return spec.real**2 + spec.imag**2


def group_bands(x2: np.ndarray) -> np.ndarray:
    """Ear-weighted DFT energies `[..., bins]` -> band energies `[..., 109]` (floor 1e-12)."""
    flat = x2.reshape(-1, NUM_BINS)
    bands = np.asarray((_band_matrix().T @ flat.T).T)
    return np.maximum(bands.reshape(*x2.shape[:-1], T.NUM_BANDS), 1e-12)


def _spread_raw(e: np.ndarray) -> np.ndarray:
    """Level-dependent spreading over bands, before normalisation (Kabal eqs. 23-28)."""
    nc, dz = T.NUM_BANDS, T.BAND_DZ
    m = np.arange(nc)
    a_low = 10.0 ** (-2.7 * dz)
    a_up = 10.0 ** ((-2.4 - 23.0 / T.BAND_CENTRE) * dz) * e ** (0.2 * dz)
    g_low = (1.0 - a_low ** (m + 1)) / (1.0 - a_low)
    g_up = (1.0 - a_up ** (nc - m)) / (1.0 - a_up)
    ene = (e / (g_low + g_up - 1.0)) ** SPREAD_POWER
    a_up_e = a_up**SPREAD_POWER
    # Downward spreading: band m receives a_low^(0.4 (i - m)) Ene[i] from every band i >= m.
    total = ene @ _lower_spread_matrix()
    # Upward spreading: band m + d receives Ene[m] a_up[m]^(0.4 d) from band m, d >= 1.
    r = ene
    for d in range(1, nc):
        r = r[..., : nc - d] * a_up_e[..., : nc - d]
        total[..., d:] += r
    return total ** (1.0 / SPREAD_POWER)


@lru_cache(maxsize=1)
def _lower_spread_matrix() -> np.ndarray:
    nc = T.NUM_BANDS
    ale = (10.0 ** (-2.7 * T.BAND_DZ)) ** SPREAD_POWER
    i, m = np.meshgrid(np.arange(nc), np.arange(nc), indexing="ij")
    return np.where(i >= m, ale ** np.clip(i - m, 0, None), 0.0)


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


def excitation(x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ear-weight, group, add internal noise and spread: `(band energies, unsmeared excitation)`."""
    eb = group_bands(_ear_weight() * x2)
    return eb, spread(eb + internal_noise())


def noise_bands(x2_ref: np.ndarray, x2_test: np.ndarray) -> np.ndarray:
    """Band energies of the ear-weighted magnitude difference |X_ref| - |X_test| (noise patterns)."""
    w = _ear_weight()
    r, t = w * x2_ref, w * x2_test
    return group_bands(r - 2.0 * np.sqrt(r * t) + t)
