"""Map an objective score (e.g. an embedding distance) onto a subjective scale.

Three monotone mappings, two of them fitted by least squares:

- `cubic`: y = a0 + a1 t + a2 t^2 + a3 t^3 on t = x scaled to [0, 1] over the fitted range,
  constrained so the derivative keeps one sign over that range (enforced on a 201-point
  grid); both signs are tried and the better fit is kept.
- `mlp`: y = b + s * sum_j exp(v_j) tanh(exp(w_j) t + c_j), one hidden layer of 8 units whose
  weights are kept positive, hence monotone in t by construction; its direction is the sign
  of the rank correlation between x and y.
- `quantile`: quantile matching, piecewise linear through `_QUANTILES` points: the q-th
  quantile of x goes to the q-th quantile of y (the (1 - q)-th where they fall together).
  It keeps the spread of y at both ends of the scale instead of regressing to the
  conditional mean, so the scores nearest the reference reach the top of y's range. Runs of
  equal y quantiles (many items at a scale's ceiling) become short ramps, so the mapping is
  strictly monotone and never ties two different scores.

Inputs are clamped to the fitted range before mapping, so the mapping never extrapolates.
Mappings are saved and loaded as small JSON files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepaq.errors import ConfigError

KINDS = ("cubic", "mlp", "quantile")
_QUANTILES = 101
_GRID = np.linspace(0.0, 1.0, 201)
_HIDDEN = 8
_MLP_ITERATIONS = 200  # BFGS steps; more buy a few per cent of SSE at 10-20x the time


@dataclass
class Mapping:
    """A fitted monotone mapping from objective scores `x` to subjective scores."""

    kind: str
    params: list[float]
    x_min: float
    x_max: float
    y_mean: float = 0.0
    y_scale: float = 1.0
    increasing: bool = True
    meta: dict = field(default_factory=dict)

    def _t(self, x: np.ndarray) -> np.ndarray:
        span = self.x_max - self.x_min
        t = (np.asarray(x, dtype=float) - self.x_min) / (span if span > 0 else 1.0)
        return np.clip(t, 0.0, 1.0)

    def __call__(self, x) -> np.ndarray:
        t = self._t(x)
        p = np.asarray(self.params)
        if self.kind == "quantile":
            z = np.interp(t, p[: len(p) // 2], p[len(p) // 2:])
        else:
            z = _cubic(p, t) if self.kind == "cubic" else _mlp(p, t, self.increasing)
        return z * self.y_scale + self.y_mean

    @property
    def fingerprint(self) -> str:
        """12 hex digits of SHA-256 over the mapping's fields (cache keys, reports)."""
        import hashlib

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Mapping":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            mapping = cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not a mapping file ({exc})") from None
        if mapping.kind not in KINDS:
            raise ConfigError(f"{path}: unknown mapping kind {mapping.kind!r}")
        return mapping


def _cubic(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return p[0] + p[1] * t + p[2] * t**2 + p[3] * t**3


def _cubic_slope(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    return p[1] + 2 * p[2] * t + 3 * p[3] * t**2


def _mlp(p: np.ndarray, t: np.ndarray, increasing: bool) -> np.ndarray:
    h = _HIDDEN
    w, c, v, b = p[:h], p[h:2 * h], p[2 * h:3 * h], p[3 * h]
    hidden = np.tanh(np.exp(w) * t[..., None] + c)
    return b + (1.0 if increasing else -1.0) * hidden @ np.exp(v)


def _fit_cubic(t: np.ndarray, z: np.ndarray, sign: float) -> tuple[np.ndarray, float]:
    start = np.polyfit(t, z, 1)[::-1]
    p0 = np.array([start[0], start[1] if start[1] * sign > 0 else 0.0, 0.0, 0.0])

    def sse(p):
        r = _cubic(p, t) - z
        return float(r @ r)

    cons = {"type": "ineq", "fun": lambda p: sign * _cubic_slope(p, _GRID)}
    from scipy.optimize import minimize  # fitting only: applying a mapping needs numpy alone

    res = minimize(sse, p0, method="SLSQP", constraints=[cons], options={"maxiter": 500, "ftol": 1e-12})
    return res.x, sse(res.x)


def _fit_mlp(t: np.ndarray, z: np.ndarray, increasing: bool, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    h = _HIDDEN
    p0 = np.concatenate([rng.normal(1.0, 0.5, h), rng.normal(0.0, 1.0, h) - 1.0, np.full(h, -2.0), [z.mean()]])

    sign = 1.0 if increasing else -1.0

    def loss(p):
        w, c, v = p[:h], p[h:2 * h], p[2 * h:3 * h]
        th = np.tanh(np.exp(w) * t[:, None] + c)
        a = np.exp(v)
        r = p[3 * h] + sign * th @ a - z
        d = sign * a * (1 - th**2)
        grad = np.concatenate([(d * np.exp(w) * t[:, None]).T @ r, d.T @ r, (sign * a * th).T @ r, [r.sum()]])
        grad = 2 * grad
        grad[:3 * h] += 2e-4 * p[:3 * h]
        return float(r @ r) + 1e-4 * float(p[:3 * h] @ p[:3 * h]), grad

    from scipy.optimize import minimize

    res = minimize(loss, p0, jac=True, method="BFGS", options={"maxiter": _MLP_ITERATIONS})
    r = _mlp(res.x, t, increasing) - z
    return res.x, float(r @ r)


def _spread_ties(zq: np.ndarray) -> np.ndarray:
    """Quantiles of y made strictly monotone: a run of equal values (a scale's ceiling or floor
    that many items reach) becomes a linear ramp to the next distinct value (a run at the end:
    from the previous one), so the mapping never maps two different scores to one quality
    while keeping y's range."""
    out = zq.astype(float).copy()
    n = out.size
    a = 0
    while a < n:
        b = a
        while b + 1 < n and zq[b + 1] == zq[a]:
            b += 1
        if b > a:
            lo, hi = (a, b + 1) if b + 1 < n else (a - 1, b)
            if lo >= 0:
                span = np.arange(lo, hi + 1)
                out[span] = np.interp(span, [lo, hi], [out[lo], zq[hi]])
        a = b + 1
    return out


def fit_mapping(x, y, kind: str = "cubic", *, seed: int = 0) -> Mapping:
    """Fit a monotone `kind` mapping ("cubic", "mlp" or "quantile") from scores `x` to subjective `y`."""
    if kind not in KINDS:
        raise ConfigError(f"unknown mapping kind {kind!r}; choose one of {', '.join(KINDS)}")
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape or x.size < 4:
        raise ConfigError(f"a {kind} mapping needs at least 4 paired values, got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ConfigError("mapping input holds NaN or infinite values")
    x_min, x_max = float(x.min()), float(x.max())
    y_mean, y_scale = float(y.mean()), float(y.std()) or 1.0
    mapping = Mapping(kind, [], x_min, x_max, y_mean, y_scale)
    t, z = mapping._t(x), (y - y_mean) / y_scale
    if kind == "cubic":
        fits = [(*_fit_cubic(t, z, sign), sign > 0) for sign in (1.0, -1.0)]
        params, _, increasing = min(fits, key=lambda f: f[1])
    else:  # the direction comes from the rank correlation; fitting the wrong one is slow
        from scipy.stats import spearmanr

        increasing = bool(spearmanr(x, y).statistic >= 0) if np.ptp(x) > 0 else True
        if kind == "quantile":
            q = np.linspace(0.0, 1.0, _QUANTILES)
            tq, zq = np.quantile(t, q), _spread_ties(np.quantile(z, q if increasing else 1.0 - q))
            first = np.unique(tq, return_index=True)[1]  # equal scores (e.g. many at 0) map to one value
            params = np.concatenate([tq[first], zq[first]])
        else:
            params, _ = _fit_mlp(t, z, increasing, seed)
    mapping.params = [float(v) for v in params]
    mapping.increasing = increasing
    return mapping
