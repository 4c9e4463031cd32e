"""Model output variables of PEAQ Basic: per-frame precursors and their time averages.

Per-frame functions take one channel's patterns `[frames, 109]` (or spectra `[frames, 1025]`)
and return one value per frame. The `average_*` functions reduce those to the MOVs, following
BS.1387-1 section 4 with the interpretations of Kabal (2002) as PQevalAudio implements them.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from deepaq.baselines.peaq import tables as T
from deepaq.baselines.peaq.earmodel import hann, internal_noise, smooth, time_constants

# ---------------------------------------------------------------- patterns


def adapt(ehs_ref: np.ndarray, ehs_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level and pattern adaptation -> spectrally adapted patterns `(EP_ref, EP_test)`."""
    a = time_constants(0.050, 0.008)
    p_ref, p_test = smooth(ehs_ref, a), smooth(ehs_test, a)
    level = (np.sqrt(p_ref * p_test).sum(-1) / p_test.sum(-1)) ** 2  # C_L per frame
    louder_test = (level > 1.0)[..., None]
    ep_ref = np.where(louder_test, ehs_ref / level[..., None], ehs_ref)
    ep_test = np.where(louder_test, ehs_test, ehs_test * level[..., None])
    rn = smooth(ep_test * ep_ref, a, 1.0)
    rd = smooth(ep_ref * ep_ref, a, 1.0)
    r_ref = np.where(rn >= rd, 1.0, rn / rd)
    r_test = np.where(rn >= rd, rd / rn, 1.0)
    avg = _band_average_matrix()
    pc_ref = smooth(r_ref @ avg, a)
    pc_test = smooth(r_test @ avg, a)
    return ep_ref * pc_ref, ep_test * pc_test


def _band_average_matrix(lower: int = 3, upper: int = 4) -> np.ndarray:
    """Averages each band with `lower` bands below and `upper` above (fewer at the edges)."""
    nc = T.NUM_BANDS
    i, m = np.meshgrid(np.arange(nc), np.arange(nc), indexing="ij")
    inside = (i >= m - lower) & (i <= m + upper)
    return inside / inside.sum(axis=0, keepdims=True)


def modulation(es: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Modulation pattern and average loudness `(M, E_avg)` from unsmeared excitation."""
    a = time_constants(0.050, 0.008)
    ee = es**0.3
    previous = np.concatenate([np.zeros_like(ee[..., :1, :]), ee[..., :-1, :]], axis=-2)
    de = smooth(T.FRAME_RATE * np.abs(ee - previous), a)
    eavg = smooth(ee, a)
    return de / (1.0 + eavg / 0.3), eavg


def loudness(ehs: np.ndarray) -> np.ndarray:
    """Total loudness in sone per frame (used for the loudness threshold of RmsNoiseLoudB)."""
    fc = T.BAND_CENTRE
    s = 10.0 ** ((-2.0 - 2.05 * np.arctan(fc / 4000.0) - 0.75 * np.arctan((fc / 1600.0) ** 2)) / 10.0)
    et = 10.0 ** (3.64 * (fc / 1000.0) ** -0.8 / 10.0)
    scale = 1.07664 * (et / (s * 1e4)) ** 0.23
    n = scale * ((1.0 - s + s * ehs / et) ** 0.23 - 1.0)
    return (24.0 / T.NUM_BANDS) * np.maximum(n, 0.0).sum(-1)


# ---------------------------------------------------------------- per-frame precursors


def modulation_difference(
    m_ref: np.ndarray, m_test: np.ndarray, eavg_ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame `(ModDiff1, ModDiff2, weight)` of the modulation patterns."""
    diff = np.abs(m_test - m_ref)
    num2 = np.where(m_ref > m_test, 0.1 * diff, diff)
    md1 = (100.0 / T.NUM_BANDS) * (diff / (1.0 + m_ref)).sum(-1)
    md2 = (100.0 / T.NUM_BANDS) * (num2 / (0.01 + m_ref)).sum(-1)
    ete = internal_noise() ** 0.3
    weight = (eavg_ref / (eavg_ref + 100.0 * ete)).sum(-1)
    return md1, md2, weight


def noise_loudness(m_ref: np.ndarray, m_test: np.ndarray, ep_ref: np.ndarray, ep_test: np.ndarray) -> np.ndarray:
    """Per-frame partial loudness of additive distortions in the presence of the reference."""
    et = internal_noise()
    s_ref = 0.15 * m_ref + 0.5
    s_test = 0.15 * m_test + 0.5
    beta = np.exp(-1.5 * (ep_test - ep_ref) / ep_ref)
    num = np.maximum(s_test * ep_test - s_ref * ep_ref, 0.0)
    den = et + s_ref * ep_ref * beta
    nl = (24.0 / T.NUM_BANDS) * ((et / s_test) ** 0.23 * ((1.0 + num / den) ** 0.23 - 1.0)).sum(-1)
    return np.maximum(nl, 0.0)


# DFT bins of 21586 Hz (search for the noise floor above it) and 8109 Hz (lowest bandwidth).
BW_TOP_BIN = int(21586.0 / T.SAMPLE_RATE * T.FRAME + 0.5)  # 921
BW_LOW_BIN = int(8109.0 / T.SAMPLE_RATE * T.FRAME + 0.5)  # 346


def bandwidth(x2_ref: np.ndarray, x2_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame bandwidths in DFT bins of reference and test; -1 where not measurable.

    The threshold is the largest test component above 21.6 kHz; the reference bandwidth is
    the highest bin (above 8.1 kHz) 10 dB over it, the test bandwidth the highest bin below
    that 5 dB over it.
    """
    top, low, n = BW_TOP_BIN, BW_LOW_BIN, T.FRAME // 2
    floor = x2_test[..., top:n].max(-1, keepdims=True)
    bw_ref = _last_true(x2_ref[..., low + 1 : top] >= 10.0 * floor, offset=low + 1)
    bins = np.arange(top)
    above = (x2_test[..., :top] >= 10.0**0.5 * floor) & (bins < bw_ref[..., None])
    bw_test = np.where(bw_ref >= 0, _last_true(above, offset=0), -1)
    return bw_ref.astype(float), bw_test.astype(float)


def _last_true(mask: np.ndarray, offset: int) -> np.ndarray:
    """1 + index (plus offset) of the last True along the last axis, or -1 when none."""
    last = mask.shape[-1] - 1 - np.argmax(mask[..., ::-1], axis=-1)
    return np.where(mask.any(-1), last + offset + 1, -1)


def noise_to_mask(eb_noise: np.ndarray, ehs_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mean and maximum over bands of noise-to-mask ratios (linear)."""
    k = np.arange(T.NUM_BANDS)
    offset_db = np.where(k <= 12.0 / T.BAND_DZ, 3.0, 0.25 * k * T.BAND_DZ)
    nmr = eb_noise / (10.0 ** (-offset_db / 10.0) * ehs_ref)
    return nmr.mean(-1), nmr.max(-1)


def detection(ehs_ref: np.ndarray, ehs_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band detection probability and number of steps above threshold `(p, q)`."""
    e_ref = 10.0 * np.log10(ehs_ref)
    e_test = 10.0 * np.log10(ehs_test)
    e = e_ref - e_test
    louder_ref = e > 0
    level = np.where(louder_ref, 0.3 * e_ref + 0.7 * e_test, e_test)
    slope = np.where(louder_ref, 4.0, 6.0)
    c = (-0.198719, 0.0550197, -0.00102438, 5.05622e-6, 9.01033e-11)
    with np.errstate(divide="ignore", invalid="ignore"):
        poly = c[0] + level * (c[1] + level * (c[2] + level * (c[3] + level * c[4])))
        step = np.where(level > 0, 5.95072 * (6.39468 / level) ** 1.71332 + poly, 1e30)
    p = 1.0 - 0.5 ** ((e / step) ** slope)
    q = np.abs(np.trunc(e)) / step  # PQevalAudio truncates the dB difference to an integer
    return p, q


EHS_LAGS = 256  # correlation lags (covers harmonics up to 9 kHz)
EHS_ENERGY_THRESHOLD = 8000.0  # on the 16-bit scale, over the second half of a frame


def harmonic_structure(
    frames_ref: np.ndarray, frames_test: np.ndarray, x2_ref: np.ndarray, x2_test: np.ndarray
) -> np.ndarray:
    """Per-frame error harmonic structure; -1 for frames too quiet to measure.

    D = ln(|X_test|^2 / |X_ref|^2) over the first 511 bins; its normalised autocorrelation
    at lags 0..255 is windowed with the decaying half of a Hann window, transformed, and the
    largest rising value of the power spectrum after its first valley is the frame's EHS
    (DC excluded). This follows PQevalAudio 2009 (AFsp v9). A frame is skipped when both
    signals stay below the energy threshold in the half frame after the hop.
    """
    lags = m = EHS_LAGS
    n = lags + m - 1
    # A bin where a spectrum is exactly 0 (digital silence) makes D infinite or NaN; as in
    # PQevalAudio the frame's value then comes out 0 (no valley is found).
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        d = np.log(x2_test[..., :n] / x2_ref[..., :n])
        nfft = 512
        corr = scipy.fft.irfft(np.conj(scipy.fft.rfft(d[..., :m], nfft)) * scipy.fft.rfft(d, nfft), nfft)[..., :lags]
        # Normalise lag i by the energies of D[0:m] and D[i:i+m].
        cum = np.concatenate([np.zeros_like(d[..., :1]), np.cumsum(d * d, axis=-1)], axis=-1)
        i = np.arange(lags)
        energy = corr[..., :1] * (cum[..., i + m] - cum[..., i])
        norm = np.where(energy <= 0, 1.0, corr / np.sqrt(energy))
    norm[..., 0] = 1.0
    window = hann(2 * lags - 1)[lags - 1 :] * np.sqrt(8.0 / 3.0) / lags
    with np.errstate(invalid="ignore"):
        spec = scipy.fft.rfft(norm * window, axis=-1)
        c2 = spec.real**2 + spec.imag**2
    c2[..., 0] = 0.0  # remove the mean of the windowed correlation
    value = _peak_after_valley(c2)
    half = T.FRAME - T.HOP
    quiet = ((frames_ref[..., half:] ** 2).sum(-1) < EHS_ENERGY_THRESHOLD) & (
        (frames_test[..., half:] ** 2).sum(-1) < EHS_ENERGY_THRESHOLD
    )
    return np.where(quiet, -1.0, value)


def _peak_after_valley(c2: np.ndarray) -> np.ndarray:
    """Largest value that rises above its predecessor after the spectrum first falls; 0 if none."""
    falling = c2[..., 1:] < c2[..., :-1]
    rising = c2[..., 1:] > c2[..., :-1]
    first_fall = np.where(falling.any(-1), np.argmax(falling, axis=-1), falling.shape[-1])
    after = np.arange(falling.shape[-1]) > first_fall[..., None]
    return np.where(rising & after, c2[..., 1:], 0.0).max(-1)


# ---------------------------------------------------------------- time averages


def mean_nonnegative(x: np.ndarray) -> float:
    """Mean of the values >= 0 (negative values flag frames without a measurement); 0 if none."""
    keep = x[x >= 0]
    return float(keep.mean()) if keep.size else 0.0


def windowed_average(x: np.ndarray, length: int) -> float:
    """Sliding-window average: sqrt(mean over windows of (mean of sqrt(x) in the window)^4)."""
    if x.size < length:
        return 0.0
    win = np.lib.stride_tricks.sliding_window_view(np.sqrt(x), length).mean(-1)
    return float(np.sqrt(np.mean(win**4)))


def weighted_average(x: np.ndarray, w: np.ndarray) -> float:
    """Weighted linear average; 0 for no frames."""
    return float((w * x).sum() / w.sum()) if x.size else 0.0


def rms(x: np.ndarray) -> float:
    """Root mean square; 0 for no frames."""
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def average_detection(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    """ADBB and MFPDB from per-band `p`, `q` `[channels, frames, bands]`.

    Channels are combined per band by their maximum (the louder error counts), then per frame
    into the probability that any band is detected and the total number of steps.
    """
    p_frame = 1.0 - np.prod(1.0 - p.max(0), axis=-1)
    q_frame = q.max(0).sum(-1)
    # Filtered probability: y[n] = 0.9 y[n-1] + 0.1 p[n]; MFPD is its maximum (forgetting factor 1).
    filtered = smooth(p_frame[:, None], np.array([0.9]))[:, 0]
    mfpd = float(max(filtered.max(initial=0.0), 0.0))
    distorted = p_frame > 0.5
    if not distorted.any():
        adb = 0.0
    else:
        total = q_frame[distorted].sum()
        adb = float(np.log10(total / distorted.sum())) if total > 0 else -0.5
    return adb, mfpd
