"""The pair score's distance between two embeddings: L2 (the paper's), L1, or a sum over regions.

`[model] distance` of a training config, stored in the model's config.json (`info`). With
L1, damages that move the embedding along different dimensions add up; with L2 they add in
quadrature, so a small in-band noise on top of a large band limit barely moves the score.
"regions" (for a backbone with frequency regions, `deepaq.models.groups`) is the sum of the
regions' L2 distances: inside a region damages add in quadrature as with L2, across regions
they add up, so noise below 7 kHz counts in full beside a missing top octave.
Rank-N-Contrast keeps the paper's L2 similarity either way; validation and scoring use this
one, the distance-ranking terms too unless `[loss] distance` names another. No torch here: the numpy scoring path imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from deepaq.errors import ModelError

DISTANCES = ("l2", "l1", "regions")


@dataclass(frozen=True)
class PairDistance:
    """A distance over the last axis of embedding differences, for numpy and torch alike.

    An embedding is `[parts * groups * group_dim]` (time parts one after another, each part's
    channel groups one after another); `groups` and `group_dim` matter only for "regions".
    """

    name: str = "l2"
    groups: int = 1
    group_dim: int = 0

    def __call__(self, diff: Any, norm: Callable) -> Any:
        """Distances of differences `[..., D]` -> `[...]`; `norm` is `np.linalg.norm` or
        `torch.linalg.vector_norm` (both take `(x, ord, axis)` by position)."""
        if self.name == "l1":
            return norm(diff, 1, -1)
        if self.name == "l2":
            return norm(diff, 2, -1)
        parts = diff.reshape(*diff.shape[:-1], -1, self.groups, self.group_dim)
        return norm(norm(parts, 2, -1), 2, -2).sum(-1)  # each region's L2 over all parts, summed

    def between(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """`[n, D]` x `[m, D]` -> `[n, m]` distances of every pair (numpy)."""
        from scipy.spatial.distance import cdist

        if self.name != "regions":
            return cdist(x, y, "minkowski", p=1 if self.name == "l1" else 2)
        xs, ys = (a.reshape(len(a), -1, self.groups, self.group_dim) for a in (x, y))
        return sum(cdist(xs[:, :, g].reshape(len(x), -1), ys[:, :, g].reshape(len(y), -1))
                   for g in range(self.groups))


def model_distance(model: Any, name: str | None = None) -> PairDistance:
    """The pair distance `name` (default: the model's own, `info["distance"]`) for a model
    (torch `DeepaqNet` or `NumpyDeepaqNet`), laid out on its embedding."""
    name = name or model.info.get("distance", "l2")
    if name not in DISTANCES:
        raise ModelError(f"model distance {name!r} is not one of {', '.join(DISTANCES)}")
    if name != "regions":
        return PairDistance(name)
    groups = int(getattr(model.backbone, "channel_groups", 1))
    if groups == 1:
        raise ModelError("model distance 'regions' needs a backbone with frequency regions (region_edges_hz)")
    return PairDistance(name, groups, int(model.embed_dim) // groups)
