"""Frechet distance against scipy.linalg.sqrtm and closed forms; pooled Gaussian statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from deepaq.baselines.fad import GaussianStats, fad, frechet_distance
from deepaq.errors import ConfigError


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _reference_fd(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root."""
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d", [1, 3, 16, 64])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference_fd(mu1, s1, mu2, s2), rel=1e-8, abs=1e-9)


def test_frechet_distance_closed_forms():
    # equal Gaussians: 0; equal covariances: squared mean distance
    rng = np.random.default_rng(0)
    s = _random_cov(rng, 8)
    mu = rng.normal(size=8)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(mu, s, mu + 2, s) == pytest.approx(4 * 8, rel=1e-9)
    # diagonal covariances: sum of (sigma1 - sigma2)^2 over dimensions
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    assert frechet_distance(np.zeros(3), np.diag(v1), np.zeros(3), np.diag(v2)) == \
        pytest.approx(((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum())
    # a rank-deficient covariance stays real and finite
    low_rank = np.outer(np.arange(4.0), np.arange(4.0))
    assert np.isfinite(frechet_distance(np.zeros(4), low_rank, np.ones(4), np.eye(4)))
    with pytest.raises(ConfigError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_pooled_statistics_equal_statistics_of_the_union(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(300, 5)), rng.normal(loc=1.0, size=(200, 5))
    pooled = GaussianStats.of(a) + GaussianStats.of(b)
    union = np.concatenate([a, b])
    assert pooled.n == 500
    assert np.allclose(pooled.mean, union.mean(0))
    assert np.allclose(pooled.cov, np.cov(union, rowvar=False))
    GaussianStats.of(a).save(tmp_path / "a.npz")
    loaded = GaussianStats.load(tmp_path / "a.npz")
    assert loaded.n == 300 and np.allclose(loaded.outer, a.T @ a)
    with pytest.raises(ConfigError):
        GaussianStats.of(np.zeros((0, 5)))
    with pytest.raises(ConfigError):
        _ = GaussianStats.of(np.zeros((1, 5))).cov


def test_fad_of_samples_approaches_the_population_distance():
    rng = np.random.default_rng(2)
    d = 4
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    x = rng.multivariate_normal(mu1, s1, size=40_000)
    y = rng.multivariate_normal(mu2, s2, size=40_000)
    assert fad(GaussianStats.of(x), GaussianStats.of(y)) == pytest.approx(_reference_fd(mu1, s1, mu2, s2), rel=0.05)
