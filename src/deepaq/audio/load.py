"""One call from "a path or an array" to validated audio at the rate a model needs."""

from __future__ import annotations

import os
import warnings
from typing import Union

import numpy as np

from deepaq.audio.io import read_audio, validate_audio
from deepaq.audio.resample import resample, to_mono
from deepaq.errors import AudioError

AudioSource = Union[str, os.PathLike, tuple[np.ndarray, int]]


def load_audio(
    source: AudioSource,
    *,
    sample_rate: int | None = None,
    mono: bool = True,
    min_seconds: float = 0.0,
    name: str | None = None,
) -> tuple[np.ndarray, int]:
    """Read a file or take an `(array, sample_rate)` pair; validate, downmix, resample.

    Returns float32 `[channels, samples]` (one channel when `mono`) and its rate. Upsampling
    is allowed but warned about: it cannot restore bandwidth the input never had.
    """
    if isinstance(source, tuple):
        if len(source) != 2:
            raise AudioError(name, "an in-memory source must be an (array, sample_rate) pair")
        x = validate_audio(source[0], source[1], source=name)
        sr = int(source[1])
        label = name or "<array>"
    elif isinstance(source, (str, os.PathLike)):
        x, sr = read_audio(source)
        label = str(source)
    else:
        raise AudioError(name, f"expected a path or an (array, sample_rate) pair, got {type(source).__name__}")
    if mono:
        x = to_mono(x)
    if sample_rate is not None and sample_rate != sr:
        if sample_rate > sr:
            warnings.warn(f"{label}: upsampling from {sr} Hz to {sample_rate} Hz", stacklevel=2)
        x = resample(x, sr, sample_rate)
        sr = sample_rate
    if x.shape[1] / sr < min_seconds:
        raise AudioError(label, f"is {x.shape[1] / sr:.3f} s long; at least {min_seconds:g} s are needed")
    return x, sr
