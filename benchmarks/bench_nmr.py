"""Scoring without the stimulus' own reference: deepaq's NMR mode beside DNSMOS and full reference.

For every listening test in ../shared/data/listening_tests (or the manifests given), in one
run: per-stimulus Spearman (SRCC) with 95 % bootstrap CIs of deepaq's NMR score (the shipped
bank, or `--nmr-bank`), of DNSMOS (no reference; speechmos), of deepaq's full-reference score
and of the full-reference baselines (ViSQOL, PEAQ ODG, the 2f-model; PESQ-WB on speech tests),
Williams' test of NMR against DNSMOS, and the issue's goal per test (NMR above DNSMOS and at
least 0.5). Scores are cached (deepaq's evaluation cache), so a rerun only scores what is new.

    python benchmarks/bench_nmr.py
    python benchmarks/bench_nmr.py --model work/compact-nmr --nmr-bank work/my_bank.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHARED_TESTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "listening_tests"
SPEECH_TESTS = {"icpr"}  # PESQ-WB is a baseline there
GOAL_SRCC = 0.5


def _specs(model: str | None, bank: str | None, speech: bool):
    from deepaq.evaluation.metrics import MetricSpec

    fr = {"model": model} if model else {}
    nmr = dict(fr, **({"nmr_bank": bank} if bank else {}))
    names = ["deepaq_nmr", "dnsmos", "deepaq", "visqol", "peaq", "twof"] + (["pesq_wb"] if speech else [])
    options = {"deepaq_nmr": nmr, "deepaq": fr}
    return [MetricSpec(n, options.get(n, {})) for n in names]


def evaluate_test(manifest: Path, model: str | None, bank: str | None, n_boot: int) -> list[dict]:
    """One row per metric: SRCC with CI, and Williams' p of NMR against DNSMOS."""
    from deepaq.evaluation.analysis import AnalysisConfig, analyse
    from deepaq.evaluation.cache import ScoreCache
    from deepaq.evaluation.manifest import read_manifest
    from deepaq.evaluation.metrics import MetricUnavailable
    from deepaq.evaluation.runner import score_stimuli

    stimuli = read_manifest(manifest)
    test = stimuli[0].test
    cache, scores = ScoreCache(), []
    for spec in _specs(model, bank, test in SPEECH_TESTS):
        try:
            scores.append(score_stimuli(stimuli, spec, cache, None))
        except MetricUnavailable as exc:
            print(f"  skipped {spec.name}: {exc}", file=sys.stderr)
    results, _ = analyse(stimuli, scores, AnalysisConfig(n_boot=n_boot))
    stim = {r["metric"]: r for r in results["agreement"]
            if r["scope"] == test and r["level"] == "stimulus" and r["mapping"] == "raw"}
    williams = {frozenset((r["metric_a"], r["metric_b"])): r["williams_p"] for r in results["significance"]
                if r["statistic"] == "srcc_raw"}
    return [{"test": test, "n": len(stimuli), "metric": s.name, "srcc": stim[s.name]["srcc"],
             "p_vs_dnsmos": williams.get(frozenset((s.name, "dnsmos"))) if s.name == "deepaq_nmr" else None}
            for s in scores]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="deepaq model folder (default: the shipped model)")
    parser.add_argument("--nmr-bank", default=None, help="NMR bank (default: the model's own, 'default')")
    parser.add_argument("--tests", default=None, help="comma-separated manifest CSVs (default: ../shared's tests)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    tests = [Path(p) for p in args.tests.split(",")] if args.tests else sorted(SHARED_TESTS.glob("*/manifest.csv"))
    if not tests:
        print(f"no listening tests found under {SHARED_TESTS}; give --tests", file=sys.stderr)
        return 1
    rows = []
    for manifest in tests:
        print(f"scoring {manifest} ...", file=sys.stderr)
        rows += evaluate_test(manifest, args.model, args.nmr_bank, args.bootstrap)
    print("\n| test | n | metric | reference | SRCC [95 % CI] | NMR vs DNSMOS (Williams p) |")
    print("|---|---|---|---|---|---|")
    kind = {"deepaq_nmr": "none (NMR bank)", "dnsmos": "none"}
    for r in rows:
        e = r["srcc"]
        p = "" if r["p_vs_dnsmos"] is None else ("< 0.001" if r["p_vs_dnsmos"] < 0.001 else f"{r['p_vs_dnsmos']:.3f}")
        print(f"| {r['test']} | {r['n']} | {r['metric']} | {kind.get(r['metric'], 'own')} | "
              f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}] | {p} |")
    print()
    for test in dict.fromkeys(r["test"] for r in rows):
        by = {r["metric"]: r["srcc"]["value"] for r in rows if r["test"] == test}
        if "deepaq_nmr" in by:
            above = "dnsmos" not in by or by["deepaq_nmr"] > by["dnsmos"]
            met = above and by["deepaq_nmr"] >= GOAL_SRCC
            print(f"{test}: NMR {by['deepaq_nmr']:.3f}, DNSMOS {by.get('dnsmos', float('nan')):.3f}, "
                  f"full reference {by.get('deepaq', float('nan')):.3f}: goal (above DNSMOS, >= {GOAL_SRCC}) "
                  f"{'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
