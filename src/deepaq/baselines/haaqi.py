"""HAAQI (Kates & Arehart's Hearing-Aid Audio Quality Index) for normal hearing.

Uses the Clarity project's implementation (PyPI `pyclarity`, `clarity.evaluator.haaqi`).
pyclarity declares 100+ dependencies (a CUDA torch among them), yet its HAAQI code imports
only numpy, scipy and numba, so install it without them:

    pip install 'deepaq[baselines]'          # numpy, scipy, numba
    pip install --no-deps 'pyclarity>=0.9,<1'

Normal hearing is an all-zero audiogram at HAAQI's six audiometric frequencies. HAAQI runs
its own ear model: it resamples both signals to 24 kHz and time-aligns them itself, so the
inputs are only downmixed to mono here.

The presentation level matters: `level_db_spl` is the sound pressure level (dB SPL) that a
signal of RMS 1 (full-scale digital) is played at; pyclarity's default is 65 dB. A file
at -20 dBFS RMS is then heard at 45 dB SPL. Scores change substantially with this choice,
so it is part of the metric's version string (and of the score-cache key).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Union

import numpy as np

from deepaq.errors import AudioError, DeepaqError

AudioSource = Union[str, Path, tuple[np.ndarray, int]]

AUDIOGRAM_FREQUENCIES = (250, 500, 1000, 2000, 4000, 6000)
DEFAULT_LEVEL_DB_SPL = 65.0
MIN_SECONDS = 0.5
INSTALL_HINT = "pip install 'deepaq[baselines]' && pip install --no-deps 'pyclarity>=0.9,<1'"


class HaaqiUnavailable(DeepaqError):
    """pyclarity (or numba, which its HAAQI needs) is not installed."""


class Haaqi:
    """HAAQI v1 of `degraded` against `reference` for a normal-hearing listener, in [0, 1]."""

    name = "haaqi"
    higher_is_better = True
    score_range = (0.0, 1.0)
    sample_rate = 24_000  # HAAQI's internal rate; inputs at any rate are accepted

    def __init__(self, level_db_spl: float = DEFAULT_LEVEL_DB_SPL) -> None:
        try:
            from clarity.evaluator.haaqi import compute_haaqi
            from clarity.utils.audiogram import Audiogram
        except ImportError as exc:
            raise HaaqiUnavailable(f"HAAQI needs pyclarity ({exc.name} is missing): {INSTALL_HINT}") from exc
        self._compute = compute_haaqi
        self._audiogram = Audiogram(levels=np.zeros(len(AUDIOGRAM_FREQUENCIES)),
                                    frequencies=np.array(AUDIOGRAM_FREQUENCIES))
        self.level_db_spl = float(level_db_spl)
        self.version = f"pyclarity {metadata.version('pyclarity')} haaqi_v1, normal hearing, level {self.level_db_spl:g} dB SPL"

    def score(self, *, reference: AudioSource, degraded: AudioSource) -> float:
        """HAAQI in [0, 1] (higher is better); raises `AudioError` on unusable input."""
        ref, ref_sr = _load(reference)
        deg, deg_sr = _load(degraded)
        value = float(self._compute(deg, ref, deg_sr, ref_sr, self._audiogram, equalisation=1,
                                    level1=self.level_db_spl))
        if not np.isfinite(value):
            raise AudioError(_name(degraded), f"HAAQI returned {value} against {_name(reference)}")
        return value


def _load(source: AudioSource) -> tuple[np.ndarray, int]:
    from deepaq.audio import load_audio

    x, sr = load_audio(source, mono=True, min_seconds=MIN_SECONDS)
    return np.asarray(x, dtype=np.float64).reshape(-1), sr


def _name(source: AudioSource) -> str:
    return "<array>" if isinstance(source, tuple) else str(source)
