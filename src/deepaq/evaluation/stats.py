"""Statistics for metric-vs-listener agreement: correlations, bootstrap CIs, mapping, tests.

Conventions: `x` is an objective score oriented so that higher is better (callers negate
lower-is-better metrics), `y` the mean subjective score. Bootstrap CIs resample whole
*groups* (listening-test items, i.e. all conditions of one excerpt together) with
replacement and are percentile intervals; a resample of group counts is applied as
integer weights, which equals replicating the stimuli and lets PCC, SRCC, Kendall tau and
RMSE be computed for all resamples at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from deepaq.errors import ConfigError


# ---------------------------------------------------------------- point estimates
def pearson(x, y) -> float:
    """Pearson's r (NaN when either input is constant)."""
    return float(_weighted_pearson(np.asarray(x, float)[None], np.asarray(y, float)[None],
                                   np.ones((1, len(x))))[0])


def spearman(x, y) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    return pearson(stats.rankdata(x), stats.rankdata(y))


def kendall(x, y) -> float:
    """Kendall's tau-b."""
    return float(stats.kendalltau(x, y).statistic)


def rmse(prediction, y) -> float:
    """Root-mean-square error between a (mapped) prediction and the subjective scores."""
    d = np.asarray(prediction, float) - np.asarray(y, float)
    return float(np.sqrt(np.mean(d * d)))


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise weighted Pearson r; x, y broadcast to w's shape [B, n]."""
    sw = w.sum(-1, keepdims=True)
    mx = (w * x).sum(-1, keepdims=True) / sw
    my = (w * y).sum(-1, keepdims=True) / sw
    dx, dy = x - mx, y - my
    sxy = (w * dx * dy).sum(-1)
    sxx = (w * dx * dx).sum(-1)
    syy = (w * dy * dy).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    return np.where((sxx > 1e-300) & (syy > 1e-300), np.clip(r, -1.0, 1.0), np.nan)


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks that the replicated sample (x_i repeated w_i times) gives each x_i; [B, n]."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ws = w[:, order]
    # tie blocks of equal values in sorted order
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    block = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(xs)]))
    block_w = np.add.reduceat(ws, starts, axis=1)  # [B, blocks]
    before = np.cumsum(block_w, axis=1) - block_w  # weight strictly below each block
    rank_sorted = (before + (block_w + 1) / 2)[:, block]
    ranks = np.empty_like(rank_sorted)
    ranks[:, order] = rank_sorted
    return ranks


# ---------------------------------------------------------------- bootstrap
def group_weights(groups: Sequence, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n] integer weights: how often each stimulus' group is drawn in each resample."""
    _, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = inverse.max() + 1
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return counts[:, inverse].astype(float)


@dataclass(frozen=True)
class Estimate:
    """A statistic with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    lo, hi = np.quantile(samples, [a, 1 - a])
    return float(lo), float(hi)


def _weighted_kendall(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise Kendall tau-b of the replicated samples (x_i, y_i repeated w_i times); [B].

    Copies of one point are tied in both x and y, so they add to neither the numerator
    nor the untied-pair counts: tau_b = sum w_i w_j sx sy / sqrt(sum w_i w_j |sx| * sum w_i w_j |sy|)
    with sx = sign(x_i - x_j), sy = sign(y_i - y_j). Memory and time grow as n^2.
    """
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    num = ((w @ (sx * sy)) * w).sum(1)
    dx = ((w @ np.abs(sx)) * w).sum(1)
    dy = ((w @ np.abs(sy)) * w).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = num / np.sqrt(dx * dy)
    return np.where((dx > 0) & (dy > 0), tau, np.nan)


def bootstrap_agreement(
    x, y, groups: Sequence | None = None, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
) -> dict[str, Estimate]:
    """PCC, SRCC, Kendall tau and RMSE(x, y) with bootstrap CIs resampling `groups`.

    `x` should already be on the subjective scale for RMSE to mean anything (a mapped
    prediction); with `groups=None` every stimulus is its own group.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(f"x and y must be 1-D and equally long, got {x.shape} and {y.shape}")
    groups = np.arange(len(x)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    w = group_weights(groups, n_boot, rng)
    pcc_b = _weighted_pearson(x[None], y[None], w)
    srcc_b = _weighted_pearson(_weighted_ranks(x, w), _weighted_ranks(y, w), w)
    d2 = (x - y) ** 2
    rmse_b = np.sqrt((w * d2).sum(1) / w.sum(1))
    kt_b = np.concatenate([_weighted_kendall(x, y, w[i:i + 256]) for i in range(0, n_boot, 256)])
    return {
        "pcc": Estimate(pearson(x, y), *_interval(pcc_b, level)),
        "srcc": Estimate(spearman(x, y), *_interval(srcc_b, level)),
        "kendall": Estimate(kendall(x, y), *_interval(kt_b, level)),
        "rmse": Estimate(rmse(x, y), *_interval(rmse_b, level)),
    }


# ---------------------------------------------------------------- mapping and cross-validation
def kfold_by_group(groups: Sequence, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds (train, test index arrays) that never split a group; k is capped at #groups."""
    uniq, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    k = min(k, len(uniq))
    if k < 2:
        raise ConfigError(f"cross-validation needs at least 2 groups (items), got {len(uniq)}")
    fold_of_group = np.random.default_rng(seed).permutation(len(uniq)) % k
    fold = fold_of_group[inverse]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def cross_validated(
    x, y, groups: Sequence, fit: Callable[[np.ndarray, np.ndarray], Callable], k: int = 5, seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions: for each fold, `fit(x_train, y_train)` maps the held-out x."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    out = np.empty_like(y)
    for train, test in kfold_by_group(groups, k, seed):
        out[test] = fit(x[train], y[train])(x[test])
    return out


# ---------------------------------------------------------------- dependent correlations
def williams_test(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t (df = n - 3) for r12 vs r13, two correlations sharing variable 1.

    Variable 1 is the subjective score, 2 and 3 two metrics on the same stimuli, r23 their
    mutual correlation (Williams 1959, as recommended by Steiger 1980). Returns (t, two-sided p).
    """
    if n < 4:
        raise ConfigError(f"Williams' test needs at least 4 stimuli, got {n}")
    det = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    rbar = (r12 + r13) / 2
    denom = 2 * (n - 1) / (n - 3) * det + rbar**2 * (1 - r23) ** 3
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23) / denom)
    return t, float(2 * stats.t.sf(abs(t), n - 3))


def steiger_z(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Steiger's (1980) Z1* for r12 vs r13 sharing variable 1, Fisher-z based, pooled r.

    Returns (z, two-sided p).
    """
    if n < 4:
        raise ConfigError(f"Steiger's test needs at least 4 stimuli, got {n}")
    rm2 = (r12**2 + r13**2) / 2
    f = min((1 - r23) / (2 * (1 - rm2)), 1.0)
    h = (1 - f * rm2) / (1 - rm2)
    z = (math.atanh(r12) - math.atanh(r13)) * math.sqrt((n - 3) / (2 * (1 - r23) * h))
    return z, float(2 * stats.norm.sf(abs(z)))


def fisher_mean(rs: Sequence[float]) -> float:
    """Mean of correlations in Fisher's z domain (as ODAQ aggregates per-method results)."""
    rs = np.asarray([r for r in rs if np.isfinite(r)], float)
    if rs.size == 0:
        return math.nan
    return float(np.tanh(np.mean(np.arctanh(np.clip(rs, -0.999999, 0.999999)))))
