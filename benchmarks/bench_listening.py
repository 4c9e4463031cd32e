"""Agreement with real listeners: deepaq models beside ViSQOL, PEAQ ODG, the 2f-model (PESQ-WB on
speech tests; and HAAQI).

For every listening test in ../shared/data/listening_tests (or the manifests given), in one
run: per-stimulus Spearman (SRCC) and Pearson after a cross-validated monotone mapping (folds
by item), 95 % bootstrap CIs over items, and Williams' test of each deepaq model against the
best classic metric of that test. Scores are cached (deepaq's evaluation cache), so a rerun
only scores what is new.

    python benchmarks/bench_listening.py                                  # shipped model + baselines
    python benchmarks/bench_listening.py --model new=work/runs/x/checkpoints/best --haaqi
    python benchmarks/bench_listening.py --tests a/manifest.csv,b/manifest.csv --no-anchors
    python benchmarks/bench_listening.py --model w4=FOLDER4 --model w6=FOLDER6 --loto w4,w6
    python benchmarks/bench_fusion.sh                     # the shipped fusion weight: 3 seeds x 7 weights

`--loto` chooses among candidate models by leave one test out: for each test, the candidate
with the best mean SRCC on the other tests, scored on the held-out test. A candidate may name
several models `NAME/SEED` (`--model w6/s0=... --model w6/s1=... --loto w4,w6`): their mean counts.

For deepaq models that ship a quality mapping (mapping.json), the last column is the RMSE of
that `quality` (0-100) against the listeners' mean scores, with no refit on the test.

Anchors are kept by default (the figures in ../shared/data/listening_tests/README.md include them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SHARED_TESTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "listening_tests"
BASELINES = ("visqol", "peaq", "twof")
SPEECH_TESTS = {"icpr"}  # PESQ-WB (ITU-T P.862.2) is a baseline there too


def _tests(arg: str | None) -> list[Path]:
    if arg:
        return [Path(p) for p in arg.split(",")]
    return sorted(SHARED_TESTS.glob("*/manifest.csv"))


def _load(manifest: Path, anchors: bool):
    from deepaq.evaluation.manifest import read_manifest

    stimuli = read_manifest(manifest)
    if not anchors:
        stimuli = [s for s in stimuli if not s.condition.startswith("anchor")]
    return stimuli


def evaluate_test(manifest: Path, models: dict[str, str | None], baselines: tuple[str, ...], anchors: bool,
                  n_boot: int, jobs: int) -> tuple[list[dict], dict[str, tuple]]:
    """One row per metric: SRCC raw and PCC cv with CIs, and Williams' p against the best baseline;
    and per metric its stimulus points `(x oriented higher = better, listeners, items)`."""
    from deepaq.engine import LocalEngine
    from deepaq.evaluation.analysis import AnalysisConfig, analyse
    from deepaq.evaluation.cache import ScoreCache
    from deepaq.evaluation.metrics import MetricSpec, MetricUnavailable
    from deepaq.evaluation.runner import score_stimuli

    stimuli = _load(manifest, anchors)
    specs = [MetricSpec("deepaq", {"model": path} if path else {}) for path in models.values()]
    specs += [MetricSpec(name) for name in baselines]
    names = list(models) + list(baselines)
    cache, pool, scores = ScoreCache(), LocalEngine(jobs) if jobs > 1 else None, []
    try:
        for name, spec in zip(names, specs):
            try:
                result = score_stimuli(stimuli, spec, cache, pool)
            except MetricUnavailable as exc:
                print(f"  skipped {name}: {exc}", file=sys.stderr)
                continue
            result.name = name
            scores.append(result)
    finally:
        if pool is not None:
            pool.close()
    results, series = analyse(stimuli, scores, AnalysisConfig(n_boot=n_boot))
    test = stimuli[0].test
    stim = {(r["metric"], r["mapping"]): r for r in results["agreement"]
            if r["scope"] == test and r["level"] == "stimulus"}
    present = [s.name for s in scores]
    best = max((b for b in baselines if b in present), key=lambda b: stim[(b, "raw")]["srcc"]["value"], default=None)
    williams = {(r["metric_a"], r["metric_b"]): r for r in results["significance"] if r["statistic"] == "srcc_raw"}
    rows = []
    for result in scores:
        name = result.name
        srcc, pcc = stim[(name, "raw")]["srcc"], stim[(name, "cv")]["pcc"]
        pair = williams.get((name, best)) or williams.get((best, name))
        p = "" if pair is None or name == best else f"{pair['williams_p']:.3f}"
        rows.append({"test": test, "n": len(stimuli), "metric": name, "srcc": srcc, "pcc_cv": pcc,
                     "best_baseline": best, "williams_p": p,
                     "quality_rmse": _quality_rmse(models[name], result, stimuli) if name in models else None})
    points = {x.metric: (x.x, x.y, x.groups) for x in series if x.scope == test and x.level == "stimulus"}
    return rows, points


def cv_selection(points: dict[str, dict[str, tuple]], candidates: list[str], others: list[str], folds: int = 4,
                 seed: int = 0) -> dict[str, dict[str, float]]:
    """Choosing among `candidates` with the listening tests, cross-validated by item.

    Items of every test are dealt into `folds` folds. For each fold the candidate with the
    best mean SRCC over the other folds (all tests) is chosen and scored on the held-out fold.
    Returns per test the mean held-out SRCC of that procedure ("cv-selected"), of each
    candidate and of each metric in `others` on the same folds, and how often each candidate
    was chosen.
    """
    from deepaq.evaluation.stats import spearman

    rng = np.random.default_rng(seed)
    fold_of = {}
    for test, metrics in points.items():
        items = np.unique(next(iter(metrics.values()))[2])
        fold_of[test] = dict(zip(items, rng.permutation(len(items)) % folds))

    def srcc(test: str, name: str, keep) -> float:
        x, y, groups = points[test][name]
        mask = np.array([keep(fold_of[test][g]) for g in groups])
        return spearman(x[mask], y[mask])

    out = {test: {"cv-selected": [], **{n: [] for n in candidates + others}} for test in points}
    chosen: dict[str, int] = {n: 0 for n in candidates}
    for f in range(folds):
        fit = {n: np.mean([srcc(t, n, lambda k: k != f) for t in points]) for n in candidates}
        pick = max(fit, key=fit.get)
        chosen[pick] += 1
        for test in points:
            out[test]["cv-selected"].append(srcc(test, pick, lambda k: k == f))
            for n in candidates + others:
                out[test][n].append(srcc(test, n, lambda k: k == f))
    summary = {test: {n: float(np.nanmean(v)) for n, v in row.items()} for test, row in out.items()}
    summary["chosen"] = chosen
    return summary


def loto_selection(rows: list[dict], candidates: list[str]) -> dict[str, tuple[str, list[float]]]:
    """Leave one test out: for each test, the candidate with the best mean SRCC on the other
    tests, and that candidate's SRCC on the held-out test. A candidate is a model name, or a
    prefix naming several models `NAME/...` (e.g. one per training seed), scored by their mean."""
    srcc: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        for c in candidates:
            if r["metric"] == c or r["metric"].startswith(c + "/"):
                srcc.setdefault((r["test"], c), []).append(r["srcc"]["value"])
    tests = list(dict.fromkeys(r["test"] for r in rows))
    out = {}
    for held in tests:
        others = [t for t in tests if t != held]
        pick = max(candidates, key=lambda c: np.mean([np.mean(srcc[(t, c)]) for t in others]))
        out[held] = (pick, srcc[(held, pick)])
    return out


def _quality_rmse(model: str | None, result, stimuli) -> float | None:
    """RMSE against the listeners of the `quality` the model's own shipped mapping gives (no refit)."""
    from deepaq.scoring import DEFAULT_MODEL, Scorer

    scorer = Scorer(model or DEFAULT_MODEL, cache_dir=False)
    if scorer.mapping is None:
        return None
    ok = np.isfinite(result.stimulus_scores)
    if scorer.fusion is not None:  # the metric's scores are the quality already
        quality = result.stimulus_scores[ok]
    else:
        quality = np.array([scorer.mapping(d) for d in result.stimulus_scores[ok]])
    listeners = np.array([s.score for s in stimuli])[ok]
    return float(np.sqrt(np.mean((quality - listeners) ** 2)))


def _ci(e: dict) -> str:
    return f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a deepaq model folder to evaluate (repeatable); the shipped model is always included")
    parser.add_argument("--tests", default=None, help="comma-separated manifest CSVs (default: ../shared's tests)")
    parser.add_argument("--haaqi", action="store_true", help="also HAAQI (slow)")
    parser.add_argument("--no-anchors", action="store_true", help="leave out conditions named anchor*")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes for scoring (default 1)")
    parser.add_argument("--loto", default=None, metavar="NAME,NAME",
                        help="candidate models (names of --model) to choose among by leave-one-test-out")
    parser.add_argument("--select", default=None, metavar="NAME,NAME",
                        help="candidate models (names of --model) to choose among with the tests, cross-validated by item")
    args = parser.parse_args()
    models: dict[str, str | None] = {"deepaq": None}
    for item in args.model:
        name, _, path = item.partition("=")
        models[name] = path
    baselines = BASELINES + (("haaqi",) if args.haaqi else ())
    tests = _tests(args.tests)
    if not tests:
        print(f"no listening tests found under {SHARED_TESTS}; give --tests", file=sys.stderr)
        return 1
    rows, points = [], {}
    for manifest in tests:
        print(f"scoring {manifest} ...", file=sys.stderr)
        extra = ("pesq_wb",) if manifest.parent.name in SPEECH_TESTS else ()
        test_rows, test_points = evaluate_test(manifest, models, baselines + extra, not args.no_anchors,
                                               args.bootstrap, args.jobs)
        rows += test_rows
        points[test_rows[0]["test"]] = test_points
    print("\n| test | n | metric | SRCC [95 % CI] | PCC cv-mapped [95 % CI] | vs best baseline (Williams p) | quality RMSE |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        margin = ""
        if r["metric"] in models and r["best_baseline"]:
            best = next(x for x in rows if x["test"] == r["test"] and x["metric"] == r["best_baseline"])
            margin = f"{r['srcc']['value'] - best['srcc']['value']:+.3f} vs {r['best_baseline']} (p {r['williams_p']})"
        rmse = "" if r["quality_rmse"] is None else f"{r['quality_rmse']:.1f}"
        print(f"| {r['test']} | {r['n']} | {r['metric']} | {_ci(r['srcc'])} | {_ci(r['pcc_cv'])} | {margin} | {rmse} |")
    for name in models:
        mine = [r for r in rows if r["metric"] == name]
        wins = sum(r["srcc"]["value"] > next(x for x in rows if x["test"] == r["test"] and x["metric"] == r["best_baseline"])
                   ["srcc"]["value"] for r in mine if r["best_baseline"])
        print(f"\n{name}: SRCC above the best classic metric on {wins} of {len(mine)} tests; "
              f"mean SRCC {np.mean([r['srcc']['value'] for r in mine]):.3f}")
    if args.loto:
        picks = loto_selection(rows, args.loto.split(","))
        print("\nLeave one test out (chosen on the mean SRCC of the other tests, scored on the held-out one):\n")
        print("| held-out test | chosen | held-out SRCC (mean; each model) | best classic metric there |")
        print("|---|---|---|---|")
        for test, (pick, values) in picks.items():
            best = next(r for r in rows if r["test"] == test and r["metric"] == r["best_baseline"])
            each = " / ".join(f"{v:.3f}" for v in values)
            print(f"| {test} | {pick} | {np.mean(values):.3f} ({each}) | {best['metric']} {best['srcc']['value']:.3f} |")
    if args.select:
        candidates = args.select.split(",")
        others = [b for b in baselines if all(b in p for p in points.values())]
        summary = cv_selection(points, candidates, others)
        chosen = summary.pop("chosen")
        names = ["cv-selected", *candidates, *others]
        print(f"\nSelection among {', '.join(candidates)} cross-validated by item (4 folds; chosen per fold: "
              f"{', '.join(f'{n} {k}x' for n, k in chosen.items())}); mean held-out-fold SRCC:\n")
        print("| test | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for test, row in summary.items():
            print(f"| {test} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
