"""Frechet Audio Distance: the Frechet distance between Gaussians fitted to two embedding sets.

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))

tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a S_b, which
are those of the symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2); that form is computed with
symmetric eigendecompositions only, so it stays real and stable where scipy.linalg.sqrtm
of the non-symmetric product can return complex noise.

Embedding sets are summarised by `GaussianStats` (count, sum, sum of outer products) that
add up exactly, so per-file statistics can be cached and pooled into any set (a system,
a condition) without recomputing embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepaq.errors import ConfigError


@dataclass
class GaussianStats:
    """Sufficient statistics of a set of embedding frames: n, sum and sum of x x^T."""

    n: int
    total: np.ndarray
    outer: np.ndarray

    @classmethod
    def of(cls, frames: np.ndarray) -> "GaussianStats":
        frames = np.asarray(frames, dtype=np.float64)
        if frames.ndim != 2 or frames.shape[0] == 0:
            raise ConfigError(f"embedding frames must be a non-empty [frames, dim] array, got shape {frames.shape}")
        return cls(frames.shape[0], frames.sum(0), frames.T @ frames)

    def __add__(self, other: "GaussianStats") -> "GaussianStats":
        return GaussianStats(self.n + other.n, self.total + other.total, self.outer + other.outer)

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    @property
    def cov(self) -> np.ndarray:
        """Unbiased sample covariance (n - 1 in the denominator)."""
        if self.n < 2:
            raise ConfigError("a covariance needs at least 2 embedding frames")
        mu = self.mean
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    def save(self, path: str | Path) -> None:
        np.savez(path, n=self.n, total=self.total, outer=self.outer)

    @classmethod
    def load(cls, path: str | Path) -> "GaussianStats":
        with np.load(path) as z:
            return cls(int(z["n"]), z["total"], z["outer"])


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b)."""
    mu_a, mu_b = np.asarray(mu_a, float), np.asarray(mu_b, float)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(float), np.atleast_2d(cov_b).astype(float)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise ConfigError(f"Gaussian shapes do not match: {mu_a.shape}, {cov_a.shape}, {mu_b.shape}, {cov_b.shape}")
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu_a - mu_b
    return float(max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_sqrt, 0.0))


def fad(reference: GaussianStats, degraded: GaussianStats) -> float:
    """Frechet Audio Distance between two pooled embedding sets (lower is better)."""
    return frechet_distance(reference.mean, reference.cov, degraded.mean, degraded.cov)
