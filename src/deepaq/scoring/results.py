"""What scoring returns: per-item results, per-window scores and embeddings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FULL_REFERENCE = "full-reference"
NMR = "nmr"
DISTANCE_DIRECTION = "lower is better"
QUALITY_DIRECTION = "higher is better"


@dataclass(frozen=True)
class WindowScore:
    """One analysis window: where it lies, its pooling weight, its distance and quality."""

    start_s: float
    end_s: float
    weight_s: float
    distance: float
    quality: float | None = None


@dataclass
class ScoreResult:
    """The score of one degraded signal.

    `distance` is the DeePAQ embedding distance (lower is better), pooled over windows;
    `quality` is the mapped subjective score (higher is better) when a mapping is in use; for
    a model that ships a fusion (`deepaq.scoring.fusion`) it mixes `model_quality` (the mapped
    distance) with `mms_2f` (the 2f-model's MMS of the same pair), else it is `model_quality`.
    In NMR mode `reference_distances` holds the distance to each clean reference; `distance`
    is their mean.
    """

    mode: str
    distance: float
    quality: float | None
    model_id: str
    model_version: str
    sample_rate: int
    duration_s: float
    delay_samples: int | None = None
    delay_jumps: tuple[int, ...] = ()  # later changes of the delay, in samples (+ = further behind)
    level_db: float | None = None  # degraded level re the reference, dB (full reference)
    level_aligned: bool = False  # whether the degraded signal was scaled by -level_db before scoring
    model_quality: float | None = None  # the mapped distance alone
    mms_2f: float | None = None  # the 2f-model's MMS of the pair, when the quality reads it
    nmr_head: bool = False  # NMR: the distance is the model's NMR head's prediction, not the mean over the bank
    windows: list[WindowScore] = field(default_factory=list)
    reference_distances: dict[str, float] | None = None
    distance_direction: str = DISTANCE_DIRECTION
    quality_direction: str = QUALITY_DIRECTION

    @property
    def delay_s(self) -> float | None:
        """Delay of the degraded signal behind the reference (full-reference mode only)."""
        return None if self.delay_samples is None else self.delay_samples / self.sample_rate


@dataclass
class Embedding:
    """Embeddings of one signal: per window and channel, and pooled over windows."""

    windows: np.ndarray  # [W, channels, D]
    starts: np.ndarray  # [W] first sample of each window
    weights: np.ndarray  # [W] pooling weights in samples
    sample_rate: int
    duration_s: float

    @property
    def embedding(self) -> np.ndarray:
        """`[D]` for mono signals, `[channels, D]` otherwise: the weighted window mean."""
        pooled = np.tensordot(self.weights / self.weights.sum(), self.windows, axes=1).astype(np.float32)
        return pooled[0] if pooled.shape[0] == 1 else pooled


def clean_float(value: float | None) -> float | None:
    """None for missing or non-finite numbers (written as empty cells / JSON null)."""
    return None if value is None or not math.isfinite(value) else float(value)
