"""From per-stimulus metric scores and listener means to every number of the report.

For each metric, each test and all tests pooled ("overall"), at two levels:
- stimulus: one point per rated stimulus; bootstrap and cross-validation groups are items
  (all conditions of one excerpt move together);
- condition: one point per (test, condition), i.e. per system, scores averaged over items.
Three mappings each: `raw` (the metric's score, negated when lower is better, so a good
metric correlates positively; no RMSE since scales differ), `in-sample` (monotone mapping
fitted on the very points it is scored on, as papers usually report) and `cv` (k-fold by
group: each point mapped by a fit that never saw its item). CIs treat mapped predictions as
fixed (the mapping is not refitted per resample).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

from deepaq.errors import ConfigError
from deepaq.evaluation import stats
from deepaq.evaluation.manifest import Stimulus
from deepaq.evaluation.runner import MetricScores
from deepaq.mapping import Mapping, fit_mapping

MIN_POINTS = 4


@dataclass(frozen=True)
class AnalysisConfig:
    mapping: str = "cubic"
    folds: int = 5
    n_boot: int = 1000
    level: float = 0.95
    seed: int = 0


@dataclass
class Series:
    """Points of one metric in one scope and level: oriented score x, subjective y, groups."""

    metric: str
    scope: str
    level: str
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    sign: float  # x = sign * native score
    labels: list[str]
    in_sample: Mapping | None = None
    cv: np.ndarray | None = None


def _sign(direction: str) -> float:
    return 1.0 if direction == "higher" else -1.0


def _condition_points(stimuli: list[Stimulus], x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Means of x and of the subjective score per (test, condition), over stimuli with a finite x."""
    keys = sorted({(s.test, s.condition) for s in stimuli})
    xs, ys, kept = [], [], []
    for key in keys:
        idx = [i for i, s in enumerate(stimuli) if (s.test, s.condition) == key and np.isfinite(x[i])]
        if idx:
            xs.append(float(np.mean(x[idx])))
            ys.append(float(np.mean([stimuli[i].score for i in idx])))
            kept.append(key)
    return np.array(xs), np.array(ys), kept


def build_series(stimuli: list[Stimulus], result: MetricScores) -> list[Series]:
    """All (scope, level) point sets of one metric."""
    tests = sorted({s.test for s in stimuli})
    scopes = tests + (["overall"] if len(tests) > 1 else [])
    sign = _sign(result.direction)
    out = []
    for scope in scopes:
        members = [s for s in stimuli if scope == "overall" or s.test == scope]
        index = [i for i, s in enumerate(stimuli) if scope == "overall" or s.test == scope]
        if result.stimulus_scores is not None:
            x = sign * result.stimulus_scores[index]
            ok = np.isfinite(x)
            sel = [m for m, good in zip(members, ok) if good]
            out.append(Series(result.name, scope, "stimulus", x[ok], np.array([s.score for s in sel]),
                              np.array([f"{s.test}/{s.item}" for s in sel]), sign,
                              ["/".join(s.key) for s in sel]))
            cx, cy, keys = _condition_points(members, x)
        else:
            keys = sorted(k for k in result.condition_scores if scope == "overall" or k[0] == scope)
            cx = np.array([sign * result.condition_scores[k] for k in keys])
            cy = np.array([np.mean([s.score for s in members if (s.test, s.condition) == k]) for k in keys])
        labels = [f"{t}/{c}" for t, c in keys]
        out.append(Series(result.name, scope, "condition", cx, cy, np.array(labels), sign, labels))
    return out


def _fit(kind: str, seed: int):
    return lambda a, b: fit_mapping(a, b, kind, seed=seed)


def _row(series: Series, mapping: str, prediction: np.ndarray | None, cfg: AnalysisConfig, note: str = "") -> dict:
    row = {"metric": series.metric, "scope": series.scope, "level": series.level, "mapping": mapping,
           "n": int(series.x.size), "n_groups": int(np.unique(series.groups).size), "note": note}
    if prediction is None:
        for k in ("pcc", "srcc", "kendall", "rmse"):
            row[k] = {"value": math.nan, "low": math.nan, "high": math.nan}
        return row
    est = stats.bootstrap_agreement(prediction, series.y, series.groups, n_boot=cfg.n_boot, level=cfg.level,
                                    seed=cfg.seed)
    for k, e in est.items():
        row[k] = e.as_dict()
    if mapping == "raw":
        row["rmse"] = {"value": math.nan, "low": math.nan, "high": math.nan}
    return row


def agreement_rows(series: Series, cfg: AnalysisConfig) -> list[dict]:
    """Raw, in-sample-mapped and cross-validated agreement of one series (fills its mappings)."""
    if series.x.size < MIN_POINTS or np.ptp(series.x) == 0 or np.ptp(series.y) == 0:
        note = f"needs at least {MIN_POINTS} points with varying scores; has {series.x.size}"
        return [_row(series, m, None, cfg, note) for m in ("raw", "in-sample", "cv")]
    rows = [_row(series, "raw", series.x, cfg)]
    series.in_sample = fit_mapping(series.x, series.y, cfg.mapping, seed=cfg.seed)
    rows.append(_row(series, "in-sample", series.in_sample(series.x), cfg, f"{cfg.mapping} fitted on these points"))
    try:
        series.cv = stats.cross_validated(series.x, series.y, series.groups, _fit(cfg.mapping, cfg.seed),
                                          k=cfg.folds, seed=cfg.seed)
        folds = min(cfg.folds, int(np.unique(series.groups).size))
        rows.append(_row(series, "cv", series.cv, cfg, f"{cfg.mapping}, {folds}-fold by {_unit(series)}"))
    except ConfigError as exc:
        rows.append(_row(series, "cv", None, cfg, str(exc)))
    return rows


def _unit(series: Series) -> str:
    return "item" if series.level == "stimulus" else "condition"


def significance_rows(all_series: list[Series]) -> list[dict]:
    """Williams' t and Steiger's z for every pair of metrics, per scope, stimulus level.

    Compared: PCC after cross-validated mapping, and SRCC of the raw scores (for Spearman
    the tests are an approximation). Only stimuli both metrics scored enter.
    """
    rows = []
    by_scope: dict[str, list[Series]] = {}
    for s in all_series:
        if s.level == "stimulus":
            by_scope.setdefault(s.scope, []).append(s)
    for scope, group in by_scope.items():
        for a, b in itertools.combinations(group, 2):
            pos_a = {k: i for i, k in enumerate(a.labels)}
            pos_b = {k: i for i, k in enumerate(b.labels)}
            common = sorted(set(pos_a) & set(pos_b))
            if len(common) < MIN_POINTS:
                continue
            ia = [pos_a[k] for k in common]
            ib = [pos_b[k] for k in common]
            y = a.y[ia]
            pairs = {"srcc_raw": (stats.spearman, a.x[ia], b.x[ib])}
            if a.cv is not None and b.cv is not None:
                pairs["pcc_cv"] = (stats.pearson, a.cv[ia], b.cv[ib])
            for statistic, (corr, xa, xb) in pairs.items():
                r_a, r_b, r_ab = corr(y, xa), corr(y, xb), corr(xa, xb)
                if not all(np.isfinite([r_a, r_b, r_ab])) or max(abs(r_a), abs(r_b), abs(r_ab)) >= 1:
                    continue
                t, pt = stats.williams_test(r_a, r_b, r_ab, len(common))
                z, pz = stats.steiger_z(r_a, r_b, r_ab, len(common))
                rows.append({"scope": scope, "level": "stimulus", "statistic": statistic, "metric_a": a.metric,
                             "metric_b": b.metric, "n": len(common), "r_a": r_a, "r_b": r_b, "r_ab": r_ab,
                             "williams_t": t, "williams_p": pt, "steiger_z": z, "steiger_p": pz})
    return rows


def fisher_rows(rows: list[dict]) -> list[dict]:
    """Per metric, level and mapping: the Fisher-z mean of the per-test PCC and SRCC."""
    out = []
    keyed: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        if r["scope"] != "overall":
            keyed.setdefault((r["metric"], r["level"], r["mapping"]), []).append(r)
    for (metric, level, mapping), group in keyed.items():
        if len(group) > 1:
            out.append({"metric": metric, "level": level, "mapping": mapping, "tests": len(group),
                        "pcc": stats.fisher_mean([g["pcc"]["value"] for g in group]),
                        "srcc": stats.fisher_mean([g["srcc"]["value"] for g in group])})
    return out


def analyse(stimuli: list[Stimulus], results: list[MetricScores], cfg: AnalysisConfig) -> tuple[dict, list[Series]]:
    """Every number of the report as a JSON-ready dict, plus the point series for plots."""
    all_series = [s for r in results for s in build_series(stimuli, r)]
    rows = [row for s in all_series for row in agreement_rows(s, cfg)]
    return {
        "config": asdict(cfg),
        "tests": sorted({s.test for s in stimuli}),
        "n_stimuli": len(stimuli),
        "metrics": {r.name: {"label": r.spec.label, "direction": r.direction, "version": r.version,
                             "computed": r.computed, "cached": r.cached, "errors": r.errors} for r in results},
        "agreement": rows,
        "fisher_mean": fisher_rows(rows),
        "significance": significance_rows(all_series),
        "mappings": {f"{s.metric}/{s.scope}/{s.level}": asdict(s.in_sample) for s in all_series if s.in_sample},
    }, all_series
