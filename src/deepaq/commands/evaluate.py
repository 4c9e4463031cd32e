"""`deepaq evaluate`: any metric against any listening test, with honest statistics."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

HELP = "evaluate metrics against a listening test (correlations, CIs, significance, plots)"
EXAMPLE = (
    "deepaq evaluate listening_test.csv --metrics visqol,peaq,twof --out results/\n"
    "  deepaq evaluate ODAQ/ODAQ_listening_test --format odaq --metrics visqol,haaqi "
    "--metric-option haaqi.level_db_spl=70 --jobs 4 --out results_odaq/\n"
    "  deepaq evaluate SiSEC08.csv --format sebass --audio-root SiSEC08/Signals --metrics twof --out results_sisec/"
)

FORMATS = ("manifest", "odaq", "sebass", "mushra-csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path,
                        help="manifest CSV, or (with --format) a public layout: ODAQ folder, SEBASS or MUSHRA CSV")
    parser.add_argument("--format", choices=FORMATS, default="manifest", help="layout of SOURCE (default manifest)")
    parser.add_argument("--audio-root", type=Path,
                        help="audio folder for sebass/mushra-csv (SEBASS: the Signals folder)")
    parser.add_argument("--results-dir", type=Path, action="append",
                        help="odaq: folder(s) with the listeners' XML files (default: SOURCE)")
    parser.add_argument("--include-hidden-reference", action="store_true",
                        help="keep the hidden reference among the rated stimuli")
    parser.add_argument("--include-anchors", action="store_true", help="keep the low-pass/mixture anchors")
    parser.add_argument("--write-manifest", type=Path, metavar="CSV",
                        help="also write the loaded listening test as a plain manifest CSV")
    parser.add_argument("--metrics", default="visqol",
                        help="comma-separated: deepaq, deepaq_nmr, visqol, peaq, twof, haaqi, nomad, fad; speech: pesq_wb, "
                             "pesq_nb, stoi, estoi, visqol_speech, sisdr; no reference: dnsmos (default visqol)")
    parser.add_argument("--metric-option", action="append", default=[], metavar="METRIC.KEY=VALUE",
                        help="option for one metric, e.g. haaqi.level_db_spl=70 or nomad.weights=/models/w2v2")
    parser.add_argument("--nmr-bank", metavar="BANK",
                        help="reference bank of the deepaq_nmr metric: 'default' (shipped with the model, the "
                             "default), a bank file from `deepaq embed --bank` or a folder of clean audio")
    parser.add_argument("--mapping", choices=("cubic", "mlp"), default="cubic",
                        help="monotone mapping to the subjective scale (default cubic)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds, split by item (default 5)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstrap and folds (default 0)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for scoring on the local engine (default 1; 0 = all cores)")
    parser.add_argument("--cache-dir", type=Path,
                        help="score cache (default: evaluation/ in $DEEPAQ_CACHE_DIR or ~/.cache/deepaq)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder for report.md, report.html, CSVs, PNGs, JSON")
    from deepaq.engine import add_engine_arguments

    add_engine_arguments(parser)


def _load(args: argparse.Namespace):
    from deepaq.errors import ConfigError
    from deepaq.evaluation import loaders
    from deepaq.evaluation.manifest import read_manifest

    keep = {"include_hidden_reference": args.include_hidden_reference, "include_anchors": args.include_anchors}
    if args.format == "manifest":
        return read_manifest(args.source)
    if args.format == "odaq":
        return loaders.load_odaq(args.source, args.results_dir, **keep)
    if args.audio_root is None:
        raise ConfigError(f"--format {args.format} needs --audio-root")
    if args.format == "sebass":
        return loaders.load_sebass(args.source, args.audio_root, **keep)
    return loaders.load_mushra_csv(args.source, args.audio_root, **keep)


def run(args: argparse.Namespace) -> int:
    from deepaq.errors import ConfigError
    from deepaq.evaluation.analysis import AnalysisConfig, analyse
    from deepaq.evaluation.cache import ScoreCache
    from deepaq.evaluation.manifest import write_manifest
    from deepaq.evaluation.metrics import MetricUnavailable, parse_specs
    from deepaq.evaluation.figures import NO_FIGURES, figures_available
    from deepaq.evaluation.report import write_report
    from deepaq.engine import check_engine_args

    check_engine_args(args)  # before any work, also with one job (which runs in this process)
    from deepaq.evaluation.runner import score_stimuli

    if args.folds < 2 or args.bootstrap < 1:
        raise ConfigError("--folds must be at least 2 and --bootstrap at least 1")
    specs = parse_specs(args.metrics, args.metric_option)
    if args.nmr_bank:
        for spec in specs:
            if spec.name == "deepaq_nmr":
                spec.options.setdefault("nmr_bank", args.nmr_bank)
    stimuli = _load(args)
    if args.write_manifest:
        write_manifest(args.write_manifest, stimuli)
        print(f"wrote manifest {args.write_manifest} ({len(stimuli)} stimuli)")
    jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
    cache = ScoreCache(args.cache_dir)
    print(f"{len(stimuli)} stimuli in {len({s.test for s in stimuli})} test(s); cache {cache.root}")
    scores, skipped = [], {}
    from deepaq.engine import engine_from_args

    # one job runs in this process, as before; --engine ray always runs on the cluster
    pool = engine_from_args(args, jobs) if jobs > 1 or args.engine != "local" else None
    try:
        for spec in specs:
            try:
                result = score_stimuli(stimuli, spec, cache, pool)
            except MetricUnavailable as exc:
                skipped[spec.name] = str(exc)
                print(f"skipped {spec.name}: {exc}")
                continue
            print(f"{result.name}: {result.computed} computed, {result.cached} from cache, "
                  f"{len(result.errors)} failed")
            scores.append(result)
    finally:
        if pool is not None:
            pool.close()
    cfg = AnalysisConfig(mapping=args.mapping, folds=args.folds, n_boot=args.bootstrap, seed=args.seed)
    results, series = analyse(stimuli, scores, cfg)
    results["skipped"] = skipped
    results["manifest"] = str(args.source)
    command = shlex.join(["deepaq", *getattr(args, "argv", ["evaluate", str(args.source)])])
    report = write_report(args.out, results, stimuli, scores, series, command)
    print(f"report: {report} and {report.with_suffix('.html')}")
    if not figures_available():
        print(NO_FIGURES)
    return 0 if scores else 1
