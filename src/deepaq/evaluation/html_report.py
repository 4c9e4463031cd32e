"""report.html of an evaluation: tables, scatter plots, per-condition means, stimuli to listen to.

One page per evaluation folder, next to report.md. Per test (and all tests pooled): the
agreement table (PCC, SRCC, Kendall, RMSE; raw / in-sample / cross-validated, bootstrap CIs),
the significance tests, the scatter of every metric with its mapping, and per-condition means
with 95 % CIs for the listeners and each metric. Then, per test, the stimuli where the best
metric (highest cross-validated PCC) and the listeners disagree most, with players for the
reference and the degraded signal: short FLAC excerpts copied under `listen/`, so the folder
plays anywhere without the listening test's audio beside it. No scripts, no network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

from deepaq import html as H
from deepaq.evaluation.analysis import Series
from deepaq.evaluation.manifest import Stimulus
from deepaq.evaluation.figures import NO_FIGURES, figures_available, slug
from deepaq.evaluation.runner import MetricScores

STATS = ("pcc", "srcc", "kendall", "rmse")
EXCERPT_SECONDS = 10.0  # length of the copied excerpts, from the start of each file
N_DISAGREEING = 8


def _f(value, digits: int = 3) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _estimate(e: dict) -> str:
    return f"{_f(e['value'])} [{_f(e['low'])}, {_f(e['high'])}]" if _f(e["value"]) else ""


@dataclass
class Mean:
    """A mean with its 95 % t-interval over the items of a condition."""

    value: float
    low: float
    high: float
    n: int


def mean_ci(values) -> Mean:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return Mean(math.nan, math.nan, math.nan, 0)
    m = float(v.mean())
    if v.size < 2:
        return Mean(m, math.nan, math.nan, 1)
    half = float(sps.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return Mean(m, m - half, m + half, int(v.size))


def condition_means(stimuli: list[Stimulus], scores: list[MetricScores], test: str) -> list[dict]:
    """Per condition of `test`: listener mean and each metric's mean with CIs over items."""
    rows = []
    for cond in sorted({s.condition for s in stimuli if s.test == test}):
        idx = [i for i, s in enumerate(stimuli) if s.test == test and s.condition == cond]
        row = {"condition": cond, "listeners": mean_ci([stimuli[i].score for i in idx]), "metrics": {}}
        for r in scores:
            if r.stimulus_scores is not None:
                row["metrics"][r.name] = mean_ci(r.stimulus_scores[idx])
            elif (test, cond) in r.condition_scores:
                v = r.condition_scores[(test, cond)]
                row["metrics"][r.name] = Mean(v, math.nan, math.nan, len(idx))
        rows.append(row)
    return sorted(rows, key=lambda r: r["listeners"].value)


def plot_conditions(path: Path, test: str, rows: list[dict], metrics: list[str]) -> Path:
    """One panel for the listeners and one per metric: condition means with 95 % CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["listeners"] + metrics
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 + 2.6 * len(panels), 0.6 + 0.32 * len(rows) + 1.2),
                             sharey=True, squeeze=False)
    ypos = np.arange(len(rows))
    for ax, name in zip(axes[0], panels):
        means = [r["listeners"] if name == "listeners" else r["metrics"].get(name, Mean(math.nan, math.nan, math.nan, 0))
                 for r in rows]
        v = np.array([m.value for m in means])
        lo = np.array([m.value - m.low if math.isfinite(m.low) else 0.0 for m in means])
        hi = np.array([m.high - m.value if math.isfinite(m.high) else 0.0 for m in means])
        ax.errorbar(v, ypos, xerr=[lo, hi], fmt="o", color="C0" if name == "listeners" else "C1", capsize=3)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_yticks(ypos, [r["condition"] for r in rows], fontsize=8)
    fig.suptitle(f"{test}: per-condition means, 95 % CI over items (sorted by the listeners)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def best_series(results: dict, series: list[Series], scope: str) -> Series | None:
    """The stimulus-level series of `scope` whose cross-validated PCC is highest."""
    rows = [r for r in results["agreement"] if r["scope"] == scope and r["level"] == "stimulus"
            and r["mapping"] == "cv" and math.isfinite(r["pcc"]["value"])]
    if not rows:
        return None
    best = max(rows, key=lambda r: r["pcc"]["value"])["metric"]
    return next((s for s in series if s.scope == scope and s.level == "stimulus" and s.metric == best
                 and s.cv is not None), None)


def copy_excerpt(source: Path, target: Path, seconds: float = EXCERPT_SECONDS) -> Path:
    """The first `seconds` of `source` as 16-bit FLAC (written once; channels and rate kept)."""
    if not target.exists():
        from deepaq.audio import read_audio, write_audio

        x, sr = read_audio(source)
        write_audio(target, x[:, : int(seconds * sr)], sr)
    return target


def disagreement_rows(out: Path, results: dict, stimuli: list[Stimulus], series: list[Series], scope: str,
                      n: int = N_DISAGREEING) -> tuple[str, list[list]]:
    """The `n` stimuli of `scope` with the largest |cv prediction - listeners|, with players."""
    best = best_series(results, series, scope)
    if best is None:
        return "", []
    by_key = {"/".join(s.key): s for s in stimuli}
    order = np.argsort(-np.abs(best.cv - best.y))[:n]
    rows = []
    for i in order:
        s = by_key[best.labels[i]]
        folder = out / "listen" / slug(s.test) / slug(s.item)
        try:
            ref = copy_excerpt(Path(s.reference), folder / "reference.flac")
            deg = copy_excerpt(Path(s.degraded), folder / f"{slug(s.condition)}.flac")
            players = [H.Raw(H.audio(H.rel(ref, out), f"reference of {s.item}")),
                       H.Raw(H.audio(H.rel(deg, out), f"{s.condition} of {s.item}"))]
        except Exception as exc:  # an unreadable file must not cost the whole page
            players = [f"cannot copy: {exc}", ""]
        ci = f" ± {s.ci:.1f}" if s.ci is not None else ""
        rows.append([s.item, s.condition, f"{s.score:.2f}{ci}", _f(best.sign * best.x[i], 4),
                     _f(best.cv[i], 2), _f(best.cv[i] - best.y[i], 2), *players])
    return best.metric, rows


def _agreement_table(results: dict, scope: str) -> str:
    rows = [r for r in results["agreement"] if r["scope"] == scope]
    cv = [r["pcc"]["value"] for r in rows if r["mapping"] == "cv" and r["level"] == "stimulus"
          and math.isfinite(r["pcc"]["value"])]
    top = max(cv) if cv else None
    body = [[r["metric"], r["level"], r["mapping"], r["n"], *(_estimate(r[s]) for s in STATS)] for r in rows]
    classes = ["best" if top is not None and r["mapping"] == "cv" and r["level"] == "stimulus"
               and r["pcc"]["value"] == top else "" for r in rows]
    return H.table(["metric", "level", "mapping", "n", "PCC [CI]", "SRCC [CI]", "Kendall τ [CI]", "RMSE [CI]"],
                   body, text_columns=3, classes=classes)


def _significance_table(results: dict, scope: str) -> str:
    rows = [r for r in results["significance"] if r["scope"] == scope]
    if not rows:
        return '<p class="note">No pair of metrics to compare here.</p>'
    body = [[r["statistic"], r["metric_a"], r["metric_b"], r["n"], _f(r["r_a"]), _f(r["r_b"]), _f(r["r_ab"]),
             f"{_f(r['williams_t'], 2)} ({_f(r['williams_p'], 4)})", f"{_f(r['steiger_z'], 2)} ({_f(r['steiger_p'], 4)})"]
            for r in rows]
    return H.table(["statistic", "A", "B", "n", "r_A", "r_B", "r_AB", "Williams t (p)", "Steiger z (p)"], body,
                   text_columns=3)


def _conditions_table(rows: list[dict], metrics: list[str]) -> str:
    def cell(m: Mean, digits: int) -> str:
        if not math.isfinite(m.value):
            return ""
        return f"{m.value:.{digits}f}" + (f" [{m.low:.{digits}f}, {m.high:.{digits}f}]" if math.isfinite(m.low) else "")

    body = [[r["condition"], r["listeners"].n, cell(r["listeners"], 1),
             *(cell(r["metrics"][m], 3) if m in r["metrics"] else "" for m in metrics)] for r in rows]
    return H.table(["condition", "items", "listeners [95 % CI]", *metrics], body)


def write_html(out: str | Path, results: dict, stimuli: list[Stimulus], scores: list[MetricScores],
               series: list[Series], plots: list[str], command: str | None = None) -> Path:
    """Write report.html (and its condition plots and listening excerpts) into `out`."""
    out = Path(out)
    cfg = results["config"]
    tests = results["tests"]
    scopes = tests + (["overall"] if len(tests) > 1 else [])
    metric_names = [r.name for r in scores]
    figures = figures_available()
    body = [
        "<h1>Evaluation report</h1>",
        f"<p>Manifest <code>{H.esc(results.get('manifest', ''))}</code>: {results['n_stimuli']} stimuli in "
        f"{len(tests)} test(s): {H.esc(', '.join(tests))}.</p>",
        f"<p>Command: <code>{H.esc(command or 'not recorded')}</code></p>",
        f'<p class="note">PCC, SRCC and Kendall τ with {int(cfg["level"] * 100)} % bootstrap CIs '
        f"({cfg['n_boot']} resamples of items at stimulus level, of conditions at condition level). "
        "Lower-is-better metrics are negated so that a good metric correlates positively. "
        f"<b>raw</b>: no mapping; <b>in-sample</b>: monotone {H.esc(cfg['mapping'])} mapping fitted on the points it "
        f"is scored on (optimistic); <b>cv</b>: {cfg['folds']}-fold cross-validated mapping, folds by item. "
        "RMSE is on the listeners' scale after mapping. The highlighted row has the best cross-validated PCC.</p>",
        *([] if figures else [f'<p class="note">{H.esc(NO_FIGURES)}</p>']),
        "<h2>Metrics</h2>",
        H.table(["metric", "direction", "version", "computed", "cached", "failed"],
                [[name, f"{m['direction']} is better", m["version"], m["computed"], m["cached"], len(m["errors"])]
                 for name, m in results["metrics"].items()], text_columns=3),
    ]
    if results.get("skipped"):
        body.append(H.table(["skipped metric", "why"], list(results["skipped"].items()), text_columns=2))
    plot_of = {p.removeprefix("scatter_").removesuffix(".png"): p for p in plots}

    for scope in scopes:
        body += [f"<h2>{H.esc(scope)}</h2>", "<h3>Agreement with the listeners</h3>", _agreement_table(results, scope),
                 "<h3>Differences between metrics (same stimuli)</h3>",
                 '<p class="note">Williams\' t and Steiger\'s z for two dependent correlations sharing the '
                 "listeners' score: PCC after cross-validated mapping, SRCC of the raw scores.</p>",
                 _significance_table(results, scope)]
        plot = plot_of.get(slug(scope))
        if plot:
            body += ["<h3>Scores against the listeners, with the in-sample mapping</h3>", H.img(plot, f"scatter {scope}")]
        if scope == "overall":
            continue
        rows = condition_means(stimuli, scores, scope)
        body.append("<h3>Per-condition means</h3>")
        if figures:
            name = plot_conditions(out / f"conditions_{slug(scope)}.png", scope, rows, metric_names).name
            body.append(H.img(name, f"condition means {scope}"))
        body.append(_conditions_table(rows, metric_names))
        metric, listen = disagreement_rows(out, results, stimuli, series, scope)
        if listen:
            body += [f"<h3>Where {H.esc(metric)} and the listeners disagree most</h3>",
                     f'<p class="note">{H.esc(metric)} has the best cross-validated PCC in this test; the rows are the '
                     f"stimuli with the largest difference between its cross-validated prediction and the listeners' "
                     f"mean. Players: the first {EXCERPT_SECONDS:g} s of each file, copied under listen/.</p>",
                     H.table(["item", "condition", "listeners ± CI", f"{metric} score", "predicted", "difference",
                              "reference", "degraded"], listen, text_columns=2)]
    if results["fisher_mean"]:
        body += ["<h2>Mean over tests (Fisher z)</h2>",
                 H.table(["metric", "level", "mapping", "tests", "PCC", "SRCC"],
                         [[r["metric"], r["level"], r["mapping"], r["tests"], _f(r["pcc"]), _f(r["srcc"])]
                          for r in results["fisher_mean"]], text_columns=3)]
    failed = {m: v["errors"] for m, v in results["metrics"].items() if v["errors"]}
    if failed:
        body += ["<h2>Failed stimuli</h2>",
                 H.table(["metric", "stimulus", "error"],
                         [[m, k, e] for m, errors in failed.items() for k, e in list(errors.items())[:20]], text_columns=3)]
    body.append('<p class="note">Tables: scores.csv, conditions.csv, agreement.csv, significance.csv, '
                "fisher_mean.csv; every number: results.json.</p>")
    path = out / "report.html"
    path.write_text(H.page("deepaq evaluation report", body), encoding="utf-8")
    return path
