"""The pair score's distance between two embeddings: L2 (the paper's) or L1.

`[model] distance` of a training config, stored in the model's config.json (`info`). With
L1, damages that move the embedding along different dimensions add up; with L2 they add in
quadrature, so a small in-band noise on top of a large band limit barely moves the score.
Rank-N-Contrast keeps the paper's L2 similarity either way; the distance-ranking terms, the
validation and scoring use this one. No torch here: the numpy scoring path imports it.
"""

from __future__ import annotations

from deepaq.errors import ModelError

DISTANCES = {"l2": 2, "l1": 1}


def distance_order(info: dict) -> int:
    """The norm order (2 or 1) of a model's `info["distance"]` (default "l2")."""
    name = info.get("distance", "l2")
    if name not in DISTANCES:
        raise ModelError(f"model distance {name!r} is not one of {', '.join(DISTANCES)}")
    return DISTANCES[name]
