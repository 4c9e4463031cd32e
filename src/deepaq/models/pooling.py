"""Time pooling of hidden states: the whole window (the paper's) or `segments` equal parts.

With `segments = K` (`[model] segments` of a training config, stored in config.json `info`)
each window's valid frames are cut into K consecutive parts of (nearly) equal length; every
hidden state is averaged over each part, and the head maps each part to its own embedding.
The model's embedding is the K part embeddings side by side, scaled by 1 / sqrt(K), so the
pair distance compares reference and degraded part by part (time-aligned) instead of
comparing time averages: a damage confined to some parts is not averaged away by the
others. With L2 the distance is the root mean square of the part distances (the worst parts
weigh most) on the scale of one part's distance, so loss temperatures keep their meaning.
K = 1 is the plain time average.
No torch here: the numpy scoring path imports it.
"""

from __future__ import annotations

import numpy as np

from deepaq.errors import ModelError


def segment_count(info: dict) -> int:
    """The number of time parts of a model's `info["segments"]` (default 1)."""
    value = info.get("segments", 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ModelError(f"model segments must be a positive integer, got {value!r}")
    return value


def part_scale(segments: int) -> float:
    """The factor on the concatenated part embeddings: L2 distance = RMS of the part distances."""
    return 1.0 / float(np.sqrt(segments))


def segment_weights(valid_frames: np.ndarray, total_frames: int, segments: int) -> np.ndarray:
    """`[B, segments, total_frames]` averaging weights: row k of item b averages its k-th part.

    Item b's first `valid_frames[b]` frames are cut at round(k * n / K); a part that would be
    empty (fewer frames than parts) takes the one frame where it starts.
    """
    valid = np.clip(np.asarray(valid_frames, dtype=np.int64), 1, total_frames)
    weights = np.zeros((len(valid), segments, total_frames), np.float32)
    for b, n in enumerate(valid):
        cuts = np.round(np.arange(segments + 1) * n / segments).astype(np.int64)
        for k in range(segments):
            start = min(int(cuts[k]), int(n) - 1)
            end = max(int(cuts[k + 1]), start + 1)
            weights[b, k, start:end] = 1.0 / (end - start)
    return weights
