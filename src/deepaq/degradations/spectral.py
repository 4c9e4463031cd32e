"""A plain STFT pair (numpy): Hann windows at 75 % overlap, centred frames, and an inverse by
weighted overlap-add that reconstructs the input exactly; several times faster than
scipy.signal.stft/istft for the repeated transforms of Griffin-Lim."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

OVERLAP = 4  # frames per window length


def _window(n_fft: int, dtype: np.dtype) -> np.ndarray:
    """A Hann window without its zero end points, in the signal's precision."""
    return np.hanning(n_fft + 2)[1:-1].astype(dtype if np.issubdtype(dtype, np.floating) else np.float64)


def stft(x: np.ndarray, n_fft: int) -> np.ndarray:
    """[channels, samples] -> [channels, n_fft // 2 + 1, frames] complex, hop n_fft // 4 (n_fft a multiple of 4)."""
    hop = n_fft // OVERLAP
    padded = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2 + hop)))
    frames = sliding_window_view(padded, n_fft, axis=-1)[:, ::hop]
    return np.fft.rfft(frames * _window(n_fft, x.dtype), axis=-1).transpose(0, 2, 1)


def istft(spectrum: np.ndarray, n_fft: int, length: int) -> np.ndarray:
    """The inverse of `stft`: [channels, bins, frames] -> [channels, length]."""
    hop = n_fft // OVERLAP
    frames = np.fft.irfft(spectrum.transpose(0, 2, 1), n=n_fft, axis=-1)
    window = _window(n_fft, frames.dtype)
    frames *= window
    channels, count = frames.shape[:2]
    blocks = frames.reshape(channels, count, OVERLAP, hop)
    out = np.zeros((channels, count + OVERLAP - 1, hop), dtype=frames.dtype)
    weight = np.zeros((count + OVERLAP - 1, hop), dtype=frames.dtype)
    squared = (window**2).reshape(OVERLAP, hop)
    for r in range(OVERLAP):
        out[:, r : r + count] += blocks[:, :, r]
        weight[r : r + count] += squared[r]
    out = out.reshape(channels, -1) / np.maximum(weight.reshape(-1), 1e-8)
    start = n_fft // 2
    y = out[:, start : start + length]
    return np.pad(y, ((0, 0), (0, length - y.shape[1]))) if y.shape[1] < length else y
