"""Compiled inner loops of the PEAQ ear model (numba, cached on disk after the first call).

Three loops do not vectorise well in numpy: first-order recursions over frames with one
coefficient per band, the grouping of DFT bins into bands with fractional edge bins, and
the level-dependent spreading over bands (quadratic in the number of bands). Each kernel
takes 2-D arrays `[rows, ...]`; the callers reshape.
"""

from __future__ import annotations

import numpy as np

from deepaq.errors import DeepaqError

try:
    from numba import njit
except ImportError as exc:
    raise DeepaqError("PEAQ needs numba (a dependency of deepaq): pip install numba") from exc


@njit(cache=True)
def smooth(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """y[:, t, m] = a[m] y[:, t-1, m] + b[m] x[:, t, m] with y[:, -1] = 0; `x` is `[rows, frames, bands]`."""
    rows, frames, bands = x.shape
    y = np.empty_like(x)
    for r in range(rows):
        for m in range(bands):
            acc = 0.0
            for t in range(frames):
                acc = a[m] * acc + b[m] * x[r, t, m]
                y[r, t, m] = acc
    return y


@njit(cache=True)
def group(x2: np.ndarray, kl: np.ndarray, ku: np.ndarray, ul: np.ndarray, uu: np.ndarray) -> np.ndarray:
    """Band energies `[rows, bands]` from DFT energies `[rows, bins]`: partial edge bins, full
    middle bins, floor 1e-12."""
    rows, bands = x2.shape[0], kl.shape[0]
    out = np.empty((rows, bands))
    for r in range(rows):
        for i in range(bands):
            s = ul[i] * x2[r, kl[i]]
            for k in range(kl[i] + 1, ku[i]):
                s += x2[r, k]
            s += uu[i] * x2[r, ku[i]]
            out[r, i] = max(s, 1e-12)
    return out


@njit(cache=True)
def group_noise(
    xr: np.ndarray, xt: np.ndarray, kl: np.ndarray, ku: np.ndarray, ul: np.ndarray, uu: np.ndarray
) -> np.ndarray:
    """Band energies of the magnitude difference (|Xr| - |Xt|)^2, from the energies `xr`, `xt`."""
    rows, bins = xr.shape
    noise = np.empty((rows, bins))
    for r in range(rows):
        for k in range(bins):
            noise[r, k] = xr[r, k] - 2.0 * np.sqrt(xr[r, k] * xt[r, k]) + xt[r, k]
    return group(noise, kl, ku, ul, uu)


@njit(cache=True, fastmath={"reassoc"})
def spread(e: np.ndarray, a_upper: np.ndarray, g_lower: np.ndarray, a_lower: float, dz: float) -> np.ndarray:
    """Level-dependent spreading of band energies `[rows, bands]`, before normalisation.

    Each band spreads towards lower bands with slope a_lower and towards higher bands with
    slope a_upper[m] * E[m]^(0.2 dz); contributions add with the power law 0.4. Powers are
    written as exp/log to save work; sums may be reassociated (rounding-level differences).
    """
    rows, nc = e.shape
    out = np.empty_like(e)
    ene = np.empty(nc)
    aue = np.empty(nc)
    term = np.empty(nc)
    total = np.empty(nc)
    ale = a_lower**0.4
    log_a_upper = np.log(a_upper)
    for r in range(rows):
        for m in range(nc):
            log_e = np.log(e[r, m])
            log_au = log_a_upper[m] + 0.2 * dz * log_e
            au = np.exp(log_au)
            g_upper = (1.0 - np.exp((nc - m) * log_au)) / (1.0 - au)
            ene[m] = np.exp(0.4 * (log_e - np.log(g_lower[m] + g_upper - 1.0)))
            aue[m] = np.exp(0.4 * log_au)
        acc = 0.0
        for m in range(nc - 1, -1, -1):  # towards lower bands: sum over i >= m of ale^(i-m) ene[i]
            acc = ale * acc + ene[m]
            total[m] = acc
        for m in range(nc):
            term[m] = ene[m]
        for i in range(1, nc):  # towards higher bands: sum over m < i of ene[m] aue[m]^(i-m)
            s = 0.0
            for m in range(i):
                term[m] *= aue[m]
                s += term[m]
            total[i] += s
        for i in range(nc):
            out[r, i] = total[i] * total[i] * np.sqrt(total[i])  # total^(1/0.4)
    return out


@njit(cache=True)
def abs2(spec: np.ndarray) -> np.ndarray:
    """|z|^2 of a complex array `[rows, bins]`."""
    rows, bins = spec.shape
    out = np.empty((rows, bins))
    for r in range(rows):
        for k in range(bins):
            z = spec[r, k]
            out[r, k] = z.real * z.real + z.imag * z.imag
    return out
