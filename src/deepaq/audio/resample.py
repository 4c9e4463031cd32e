"""Channel policy and sample-rate conversion (soxr)."""

from __future__ import annotations

import numpy as np
import soxr


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average the channels of `[channels, samples]` into `[1, samples]`."""
    return x.mean(axis=0, keepdims=True, dtype=np.float32) if x.shape[0] > 1 else x


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample `[channels, samples]` with soxr's high-quality, linear-phase filter.

    soxr compensates its own filter delay, so output sample n lines up with input time
    n / sr_out: resampling keeps pairs aligned.
    """
    if sr_in == sr_out:
        return x
    y = soxr.resample(np.ascontiguousarray(x.T), sr_in, sr_out, quality="HQ")
    return np.ascontiguousarray(y.T, dtype=np.float32)
