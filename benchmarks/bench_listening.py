"""Agreement with real listeners: deepaq models beside ViSQOL, PEAQ ODG, the 2f-model (and HAAQI).

For every listening test in ../shared/data/listening_tests (or the manifests given), in one
run: per-stimulus Spearman (SRCC) and Pearson after a cross-validated monotone mapping (folds
by item), 95 % bootstrap CIs over items, and Williams' test of each deepaq model against the
best classic metric of that test. Scores are cached (deepaq's evaluation cache), so a rerun
only scores what is new.

    python benchmarks/bench_listening.py                                  # shipped model + baselines
    python benchmarks/bench_listening.py --model new=work/runs/x/checkpoints/best --haaqi
    python benchmarks/bench_listening.py --tests a/manifest.csv,b/manifest.csv --no-anchors

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
                  n_boot: int, jobs: int) -> list[dict]:
    """One row per metric: SRCC raw and PCC cv with CIs, and Williams' p against the best baseline."""
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
    return rows


def _quality_rmse(model: str | None, result, stimuli) -> float | None:
    """RMSE against the listeners of the `quality` the model's own shipped mapping gives (no refit)."""
    from deepaq.scoring import DEFAULT_MODEL, Scorer

    mapping = Scorer(model or DEFAULT_MODEL, cache_dir=False).mapping
    if mapping is None:
        return None
    ok = np.isfinite(result.stimulus_scores)
    quality = np.array([mapping(d) for d in result.stimulus_scores[ok]])
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
    rows = []
    for manifest in tests:
        print(f"scoring {manifest} ...", file=sys.stderr)
        rows += evaluate_test(manifest, models, baselines, not args.no_anchors, args.bootstrap, args.jobs)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
