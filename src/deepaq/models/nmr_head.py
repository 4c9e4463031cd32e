"""The head of non-matching-reference (NMR) scoring: a full-reference distance predicted from
the degraded signal alone.

DeePAQ's NMR mode compares a degraded window with clean windows of other content. Read as it
is, that distance mostly measures how far the contents lie apart (docs/scoring.md, "NMR").
The head reads, for every window, features of the degraded embedding that do not depend on
where in the window things happen (per frequency region: the mean and spread of the time
parts' embeddings) and the window's distances to the clean bank (per region: the mean over
the bank and over its nearest windows, whole windows and part averages), and predicts the
distance the full-reference score would give the window against its own clean original.
A linear map on standardised features, fitted by ridge regression on the distances the
model's own full-reference score gives training items (distillation, `fit_nmr_head`), so
NMR results land on the same scale as full-reference ones and take the same quality mapping;
the paper's own NMR distance (the mean distance to the bank) can be given extra weight
beside it (`bank_weight`, chosen on the listening tests: the model card).

Stored beside the weights as `nmr_head.safetensors` (no torch needed to read or run it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepaq.errors import ModelError

FILE_NAME = "nmr_head.safetensors"
FORMAT = "deepaq-nmr-head"
GROUPS = ("part_mean", "part_std", "bank")
NEAREST = 5  # bank windows averaged for the "nearest" features


@dataclass
class NmrHead:
    """`groups` of features (of `GROUPS`) on an embedding of `[parts, regions, region_dim]`."""

    groups: tuple[str, ...]
    regions: int
    region_dim: int
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    @property
    def fingerprint(self) -> str:
        """A short content hash of the head (what a cached NMR score depends on)."""
        import hashlib

        h = hashlib.sha256(json.dumps([list(self.groups), self.regions, self.region_dim, self.bias]).encode())
        for values in (self.mean, self.scale, self.weights):
            h.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    def features(self, windows: np.ndarray, bank: np.ndarray | None = None) -> np.ndarray:
        """`[N, D]` window embeddings (and `[B, D]` clean bank windows) -> `[N, F]` features."""
        e = np.asarray(windows, dtype=np.float32).reshape(len(windows), -1, self.regions, self.region_dim)
        out = []
        if "part_mean" in self.groups:
            out.append(e.mean(1).reshape(len(e), -1))
        if "part_std" in self.groups:
            out.append(e.std(1).reshape(len(e), -1))
        if "bank" in self.groups:
            if bank is None or len(bank) == 0:
                raise ModelError("this NMR head reads distances to a clean bank; none was given")
            b = np.asarray(bank, dtype=np.float32).reshape(len(bank), -1, self.regions, self.region_dim)
            out.append(_bank_features(e, b))
        return np.hstack(out)

    def predict(self, windows: np.ndarray, bank: np.ndarray | None = None) -> np.ndarray:
        """`[N]` predicted full-reference distances (not below zero)."""
        z = (self.features(windows, bank) - self.mean) / self.scale
        return np.maximum(z @ self.weights + self.bias, 0.0)

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        tensors = {k: np.ascontiguousarray(getattr(self, k), dtype=np.float32) for k in ("mean", "scale", "weights")}
        meta = {"format": FORMAT, "groups": json.dumps(list(self.groups)), "regions": str(self.regions),
                "region_dim": str(self.region_dim), "bias": repr(float(self.bias))}
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NmrHead":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ModelError(f"{path}: not a deepaq NMR head")
                t = {k: f.get_tensor(k) for k in ("mean", "scale", "weights")}
            return cls(tuple(json.loads(meta["groups"])), int(meta["regions"]), int(meta["region_dim"]),
                       t["mean"], t["scale"], t["weights"], float(meta["bias"]))
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"{path}: unreadable NMR head ({exc})") from None


def _bank_features(e: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per region: mean and nearest-`NEAREST` distance to the bank, over whole windows (all
    parts in place) and over part averages -> `[N, 4 * regions]`."""
    from scipy.spatial.distance import cdist

    k = min(NEAREST, len(b))
    cols = []
    for r in range(e.shape[2]):
        for x, y in ((e[:, :, r].reshape(len(e), -1), b[:, :, r].reshape(len(b), -1)),
                     (e[:, :, r].mean(1), b[:, :, r].mean(1))):
            d = cdist(x, y)
            cols += [d.mean(1), np.partition(d, k - 1, axis=1)[:, :k].mean(1)]
    return np.stack(cols, 1)


def fit_nmr_head(windows: np.ndarray, targets: np.ndarray, *, regions: int, region_dim: int,
                 groups: tuple[str, ...] = GROUPS, bank: np.ndarray | None = None, ridge: float = 1e-2,
                 bank_weight: float = 0.0) -> NmrHead:
    """Ridge regression of `targets` (full-reference distances) on the features of `windows`;
    `ridge` is relative to the number of windows (features standardised first).

    `bank_weight` > 0 (needs the "bank" group) then adds the window's mean distance to the whole
    bank windows (summed over regions, centred on the training windows), scaled to the spread
    of the fitted prediction times `bank_weight`: the paper's NMR distance beside the head.
    """
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ModelError(f"unknown NMR head feature groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
    head = NmrHead(tuple(groups), regions, region_dim, np.zeros(0), np.ones(0), np.zeros(0), 0.0)
    x = head.features(windows, bank).astype(np.float64)
    y = np.asarray(targets, dtype=np.float64)
    head.mean, head.scale = x.mean(0), x.std(0) + 1e-6
    z = (x - head.mean) / head.scale
    head.weights = np.linalg.solve(z.T @ z + ridge * len(z) * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    head.bias = float(y.mean())
    if bank_weight:
        if "bank" not in groups:
            raise ModelError("bank_weight needs the 'bank' feature group")
        first = x.shape[1] - 4 * regions  # the bank block is last: 4 columns per region, whole-window mean first
        means = [first + 4 * r for r in range(regions)]
        spread = (z @ head.weights).std() / max(x[:, means].sum(1).std(), 1e-12)
        head.weights[means] += bank_weight * spread * head.scale[means]
    return head
