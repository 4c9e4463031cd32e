"""Write an evaluation to a folder: results.json, CSV tables, scatter plots, report.md, report.html."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from deepaq.evaluation.analysis import Series
from deepaq.evaluation.figures import NO_FIGURES, figures_available, slug
from deepaq.evaluation.html_report import write_html
from deepaq.evaluation.manifest import Stimulus
from deepaq.evaluation.runner import MetricScores

STATS = ("pcc", "srcc", "kendall", "rmse")
def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _fmt(value, digits: int = 3) -> str:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def write_scores_csv(path: Path, stimuli: list[Stimulus], results: list[MetricScores]) -> None:
    pair = [r for r in results if r.stimulus_scores is not None]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["test", "item", "condition", "reference", "degraded", "subjective", "ci", "n_listeners"]
                   + [c for r in pair for c in (r.name, f"{r.name}_error")])
        for i, s in enumerate(stimuli):
            cells = []
            for r in pair:
                cells += [_fmt(r.stimulus_scores[i], 6), r.errors.get("/".join(s.key), "")]
            w.writerow([s.test, s.item, s.condition, s.reference, s.degraded, s.score,
                        "" if s.ci is None else s.ci, "" if s.n_listeners is None else s.n_listeners] + cells)


def write_conditions_csv(path: Path, stimuli: list[Stimulus], results: list[MetricScores]) -> None:
    """System level: mean subjective score and each metric's mean (or set) score per condition."""
    keys = sorted({(s.test, s.condition) for s in stimuli})
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["test", "condition", "n_stimuli", "subjective"] + [r.name for r in results])
        for key in keys:
            idx = [i for i, s in enumerate(stimuli) if (s.test, s.condition) == key]
            cells = []
            for r in results:
                if r.stimulus_scores is not None:
                    vals = r.stimulus_scores[idx]
                    cells.append(_fmt(float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan, 6))
                else:
                    cells.append(_fmt(r.condition_scores.get(key, math.nan), 6))
            w.writerow([*key, len(idx), _fmt(float(np.mean([stimuli[i].score for i in idx])), 4)] + cells)


def write_agreement_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["metric", "scope", "level", "mapping", "n", "n_groups"]
                   + [f"{s}{suffix}" for s in STATS for suffix in ("", "_low", "_high")] + ["note"])
        for r in rows:
            w.writerow([r["metric"], r["scope"], r["level"], r["mapping"], r["n"], r["n_groups"]]
                       + [_fmt(r[s][k], 6) for s in STATS for k in ("value", "low", "high")] + [r["note"]])


def write_dict_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow([_fmt(r[c], 6) if isinstance(r[c], float) else r[c] for c in columns])


def plot_scope(path: Path, series: list[Series], title: str) -> None:
    """One panel per metric: native score vs subjective score, in-sample mapping drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(series)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, s in zip(axes.flat, series):
        native = s.sign * s.x
        ax.scatter(native, s.y, s=14, alpha=0.7)
        if s.in_sample is not None and native.size:
            grid = np.linspace(native.min(), native.max(), 200)
            ax.plot(grid, s.in_sample(s.sign * grid), color="C3", lw=1.5, label=f"{s.in_sample.kind} mapping")
            ax.legend(fontsize=7, loc="best")
        ax.set_xlabel(f"{s.metric} ({s.level})")
        ax.set_ylabel("subjective score")
        ax.set_title(s.metric, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(out: Path, series: list[Series]) -> list[str]:
    """scatter_<scope>.png (stimulus level; set metrics at condition level); none without matplotlib."""
    if not figures_available():
        return []
    names = []
    pair_metrics = {s.metric for s in series if s.level == "stimulus"}
    for scope in dict.fromkeys(s.scope for s in series):
        chosen = [s for s in series if s.scope == scope
                  and (s.level == "stimulus" or (s.level == "condition" and s.metric not in pair_metrics))]
        chosen = [s for s in chosen if s.x.size]
        if chosen:
            name = f"scatter_{slug(scope)}.png"
            plot_scope(out / name, chosen, f"{scope}: metric vs subjective score")
            names.append(name)
    return names


def _markdown(results: dict, plots: list[str]) -> str:
    cfg = results["config"]
    lines = [
        "# Evaluation report", "",
        f"Manifest: `{results.get('manifest', '')}`; {results['n_stimuli']} stimuli in "
        f"{len(results['tests'])} test(s): {', '.join(results['tests'])}.", "",
        f"PCC, SRCC and Kendall tau with {int(cfg['level'] * 100)} % bootstrap CIs ({cfg['n_boot']} resamples of "
        "items at stimulus level, of conditions at condition level). Scores of lower-is-better metrics are "
        "negated, so a good metric correlates positively. `raw`: no mapping. `in-sample`: monotone "
        f"{cfg['mapping']} mapping fitted on the same points it is scored on (optimistic, as usually "
        f"reported). `cv`: {cfg['folds']}-fold cross-validated mapping, folds by item. RMSE is on the "
        "subjective scale after mapping.", "",
    ]
    if results.get("skipped"):
        lines += ["## Skipped metrics", ""] + [f"- **{m}**: {why}" for m, why in results["skipped"].items()] + [""]
    lines += ["## Metrics", "", "| metric | direction | version | computed | cached | failed |", "|---|---|---|---|---|---|"]
    for name, m in results["metrics"].items():
        lines.append(f"| {name} | {m['direction']} is better | {m['version']} | {m['computed']} | {m['cached']} "
                     f"| {len(m['errors'])} |")
    lines.append("")
    for level in ("stimulus", "condition"):
        rows = [r for r in results["agreement"] if r["level"] == level]
        if not rows:
            continue
        lines += [f"## Agreement, {level} level", "",
                  "| scope | metric | mapping | n | PCC [CI] | SRCC [CI] | Kendall [CI] | RMSE [CI] |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            cells = []
            for s in STATS:
                e = r[s]
                cells.append(f"{_fmt(e['value'])} [{_fmt(e['low'])}, {_fmt(e['high'])}]" if _fmt(e["value"]) else "")
            lines.append(f"| {r['scope']} | {r['metric']} | {r['mapping']} | {r['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    if results["fisher_mean"]:
        lines += ["## Mean over tests (Fisher z)", "", "| metric | level | mapping | tests | PCC | SRCC |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['metric']} | {r['level']} | {r['mapping']} | {r['tests']} | {_fmt(r['pcc'])} | "
                  f"{_fmt(r['srcc'])} |" for r in results["fisher_mean"]]
        lines.append("")
    if results["significance"]:
        lines += ["## Differences between metrics (same stimuli)", "",
                  "Williams' t and Steiger's z for two dependent correlations sharing the subjective score.", "",
                  "| scope | statistic | A | B | n | r_A | r_B | r_AB | Williams t (p) | Steiger z (p) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["significance"]:
            lines.append(f"| {r['scope']} | {r['statistic']} | {r['metric_a']} | {r['metric_b']} | {r['n']} | "
                         f"{_fmt(r['r_a'])} | {_fmt(r['r_b'])} | {_fmt(r['r_ab'])} | "
                         f"{_fmt(r['williams_t'], 2)} ({_fmt(r['williams_p'], 4)}) | "
                         f"{_fmt(r['steiger_z'], 2)} ({_fmt(r['steiger_p'], 4)}) |")
        lines.append("")
    failed = {m: e for m, v in results["metrics"].items() for e in [v["errors"]] if e}
    if failed:
        lines += ["## Failed stimuli", ""]
        for m, errors in failed.items():
            lines += [f"- {m}: `{k}`: {v}" for k, v in list(errors.items())[:20]]
            if len(errors) > 20:
                lines.append(f"- {m}: ... and {len(errors) - 20} more (results.json has all)")
        lines.append("")
    lines += ["## Plots", ""] + ([f"![{p}]({p})" for p in plots] if figures_available() else [NO_FIGURES]) + [""]
    lines += ["Tables: `scores.csv` (per stimulus), `conditions.csv` (per system), `agreement.csv`, "
              "`significance.csv`, `fisher_mean.csv`; every number: `results.json`.", ""]
    return "\n".join(lines)


def write_report(out: str | Path, results: dict, stimuli: list[Stimulus], scores: list[MetricScores],
                 series: list[Series], command: str | None = None) -> Path:
    """Write all outputs into `out` (report.md and report.html among them); returns the path of report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_scores_csv(out / "scores.csv", stimuli, scores)
    write_conditions_csv(out / "conditions.csv", stimuli, scores)
    write_agreement_csv(out / "agreement.csv", results["agreement"])
    write_dict_csv(out / "significance.csv", results["significance"],
                   ["scope", "level", "statistic", "metric_a", "metric_b", "n", "r_a", "r_b", "r_ab",
                    "williams_t", "williams_p", "steiger_z", "steiger_p"])
    write_dict_csv(out / "fisher_mean.csv", results["fisher_mean"],
                   ["metric", "level", "mapping", "tests", "pcc", "srcc"])
    plots = write_plots(out, series)
    payload = dict(results)
    payload["plots"] = plots
    payload["stimuli"] = [
        {"test": s.test, "item": s.item, "condition": s.condition, "reference": str(s.reference),
         "degraded": str(s.degraded), "subjective": s.score, "ci": s.ci, "n_listeners": s.n_listeners,
         "scores": {r.name: float(r.stimulus_scores[i]) for r in scores if r.stimulus_scores is not None}}
        for i, s in enumerate(stimuli)]
    payload["condition_scores"] = {r.name: {f"{t}/{c}": v for (t, c), v in r.condition_scores.items()}
                                   for r in scores if r.condition_scores}
    (out / "results.json").write_text(json.dumps(_json_safe(payload), indent=1))
    report = out / "report.md"
    report.write_text(_markdown(results, plots))
    write_html(out, results, stimuli, scores, series, plots, command)
    return report
