"""`deepaq score`: DeePAQ distance (and mapped quality) for one pair or a whole batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("text", "csv", "jsonl")
# A worker process takes about as long to start as a cold `deepaq score` (~0.6 s here) and
# then scores a 10 s pair in ~0.06 s: below this many items one process is done first.
AUTO_PROCESSES_FROM = 32
HELP = "score degraded audio against its reference (full reference) or clean references of other content (NMR)"
EXAMPLE = """deepaq score ref.wav "coded copy.mp3"
  deepaq score --pairs pairs.csv --out scores.csv --resume
  deepaq score --pairs /shared/pairs.csv --out /shared/scores.csv --engine ray --ray-address head:6379
  deepaq score --ref-dir clean/ --deg-dir coded/ --out scores.jsonl --windows win.csv
  deepaq score --nmr-bank bank.safetensors coded/ --out nmr.csv --nmr-matrix matrix.csv
  deepaq score ref.wav deg.wav --mapping map.json --windows win.csv --plot quality.png
  deepaq score ref.wav deg.wav --html pair.html      # listen to both, quality over time"""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every verb that runs a DeePAQ model shares (score, embed, calibrate)."""
    g = parser.add_argument_group("model")
    g.add_argument("--model", default="deepaq-compact",
                   help="shipped model name or checkpoint folder (default: deepaq-compact)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    g.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default: 8)")
    g.add_argument("--workers", type=int, default=0,
                   help="threads that decode and align upcoming items while the model runs (default: 0)")
    g.add_argument("--stereo", action="store_true",
                   help="embed each channel on its own and average channel distances (default: mono downmix)")
    g.add_argument("--overlap", type=float,
                   help="window overlap fraction in [0, 1) (default: the model's; 0 for deepaq-compact, else 0.5)")
    g.add_argument("--cache-dir", type=Path,
                   help="embedding cache folder (default: $DEEPAQ_CACHE_DIR or ~/.cache/deepaq)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    g.add_argument("--backend", choices=("auto", "numpy", "torch"), default="auto",
                   help="run the model in numpy (no torch needed) or torch (deepaq[train]; GPUs, other "
                        "backbones); auto: numpy where it runs the model on the CPU (default: auto)")
    g.add_argument("--threads", type=int, default=1,
                   help="maths-library threads per process; 0: the libraries' defaults (default: 1, so "
                        "that a core taken by another program does not stall scoring; see docs/scoring.md)")


def scorer_options(args: argparse.Namespace, mapping=None) -> dict:
    """Scorer keyword arguments from the options of `add_model_arguments` (picklable, for workers)."""
    cache = False if args.no_cache else args.cache_dir
    return dict(model=args.model, device=args.device, mapping=mapping, cache_dir=cache, batch_size=args.batch_size,
                workers=args.workers, overlap=args.overlap, mono=not args.stereo,
                max_delay_s=getattr(args, "max_delay", 1.0), backend=args.backend, threads=args.threads,
                align_level=not getattr(args, "no_level_align", False),
                follow_delay=not getattr(args, "constant_delay", False),
                fusion=not getattr(args, "network_only", False))


def make_scorer(args: argparse.Namespace, mapping=None, nmr_bank=None):
    """A Scorer from the options of `add_model_arguments`."""
    from deepaq.scoring import Scorer

    return Scorer(**scorer_options(args, mapping), nmr_bank=nmr_bank)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", type=Path,
                        help="REFERENCE DEGRADED for one pair; with --nmr-dir/--nmr-bank: degraded files or folders")
    src = parser.add_argument_group("batch input")
    src.add_argument("--pairs", type=Path, metavar="CSV",
                     help="CSV with header reference,degraded[,id] (paths relative to the CSV)")
    src.add_argument("--ref-dir", type=Path, help="folder of references, paired with --deg-dir by relative path")
    src.add_argument("--deg-dir", type=Path, help="folder of degraded files")
    nmr = src.add_mutually_exclusive_group()
    nmr.add_argument("--nmr-dir", type=Path, help="NMR: folder of clean references of other content")
    nmr.add_argument("--nmr-bank", help="NMR: embedding bank from `deepaq embed --bank`, or 'default'")
    out = parser.add_argument_group("output")
    out.add_argument("--out", "-o", type=Path, help="results .csv or .jsonl (default: stdout, see --format)")
    out.add_argument("--format", choices=FORMATS,
                     help="stdout format: text (a readable block per item; the default for one item), "
                          "csv (the default for a batch) or jsonl; with --out its suffix decides")
    out.add_argument("--resume", action="store_true", help="skip ids already in --out and append the rest")
    out.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    out.add_argument("--mapping", help="mapping JSON from `deepaq calibrate`, or 'none' "
                                       "(default: the model's own mapping.json if it ships one)")
    out.add_argument("--windows", type=Path, metavar="CSV", help="also write per-window scores (.csv or .jsonl)")
    out.add_argument("--plot", type=Path, metavar="PNG", help="plot quality over time (one PNG per item)")
    out.add_argument("--html", type=Path, metavar="PAGE",
                     help="one pair: an HTML page with both signals to play, the score, the windows and the "
                          "quality-over-time plot (PAGE.png beside it unless --plot names one)")
    out.add_argument("--nmr-matrix", type=Path, metavar="CSV", help="NMR: distance of every item to every reference")
    parser.add_argument("--max-delay", type=float, default=1.0, help="largest delay searched, in s (default: 1)")
    parser.add_argument("--no-level-align", action="store_true",
                        help="score the degraded file at its own level (default: scaled to the reference's level "
                             "first, as ViSQOL does; the level difference is reported either way)")
    parser.add_argument("--constant-delay", action="store_true",
                        help="keep the delay found at the start for the whole pair (default: follow it where it "
                             "jumps by 5-100 ms, e.g. a jitter buffer, a cut or an inserted gap)")
    parser.add_argument("--network-only", action="store_true",
                        help="quality from the network's distance alone (default: mixed with the 2f-model's "
                             "MMS of the same pair where the model ships fusion.json; docs/scoring.md)")
    parser.add_argument("--processes", type=int, default=0,
                        help="local engine: worker processes for a batch, each with its own model; 0: one per "
                             f"idle core (by the load average) for batches of {AUTO_PROCESSES_FROM}+ items, "
                             "else 1 (default: 0)")
    add_model_arguments(parser)
    from deepaq.engine import add_engine_arguments

    add_engine_arguments(parser)


def _jobs(args: argparse.Namespace):
    from deepaq.errors import ConfigError
    from deepaq.scoring import ScoreJob
    from deepaq.scoring.inputs import jobs_from_dirs, jobs_from_pairs_csv, jobs_from_paths

    nmr = args.nmr_dir is not None or args.nmr_bank is not None
    forms = [bool(args.inputs), args.pairs is not None, args.deg_dir is not None]
    if sum(forms) != 1:
        raise ConfigError("give exactly one input: REFERENCE DEGRADED, --pairs CSV, or --ref-dir/--deg-dir")
    if args.pairs is not None:
        return jobs_from_pairs_csv(args.pairs, nmr=nmr)
    if args.deg_dir is not None:
        if nmr:
            return jobs_from_paths([args.deg_dir])
        if args.ref_dir is None:
            raise ConfigError("--deg-dir needs --ref-dir (or --nmr-dir/--nmr-bank for NMR)")
        return jobs_from_dirs(args.ref_dir, args.deg_dir)
    if nmr:
        return jobs_from_paths(args.inputs)
    if len(args.inputs) != 2:
        raise ConfigError(f"full reference needs REFERENCE DEGRADED, got {len(args.inputs)} paths "
                          "(use --nmr-dir/--nmr-bank to score degraded files without their reference)")
    return [ScoreJob(args.inputs[1].name, degraded=args.inputs[1], reference=args.inputs[0])]


def processes_for(requested: int, items: int) -> int:
    """Worker processes for a batch of `items` (`requested` 0: see `--processes`)."""
    import os

    if requested > 0:
        return requested
    if items < AUTO_PROCESSES_FROM:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # cores other programs keep busy give a second process nothing (measured: slower, not faster)
    busy = int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, min(cores, cores - busy))


def run(args: argparse.Namespace) -> int:
    from deepaq.threads import set_threads

    set_threads(args.threads)  # before numpy is imported: the environment variables are enough
    from tqdm import tqdm

    from deepaq.scoring.output import format_text, open_results, open_side_table, result_row
    from deepaq.scoring.results import ScoreResult
    from deepaq.scoring.timeline import WINDOW_COLUMNS, plot_path, plot_timeline, window_rows

    jobs = _jobs(args)
    if args.html is not None and len(jobs) != 1:
        from deepaq.errors import ConfigError

        raise ConfigError(f"--html makes a page for one pair; the input has {len(jobs)} items")
    if args.plot is not None:  # say so now, not after the first item
        from deepaq.errors import require

        require("matplotlib", "--plot", "plots")
    mapping = False if args.mapping and args.mapping.lower() == "none" else args.mapping
    nmr_spec = str(args.nmr_dir) if args.nmr_dir is not None else args.nmr_bank
    scorer = make_scorer(args, mapping=mapping, nmr_bank=nmr_spec)
    bank = scorer.load_bank(nmr_spec) if nmr_spec is not None else None

    fmt = args.format or ("text" if args.out is None and len(jobs) == 1 else None)
    results, done = (None, set()) if fmt == "text" and args.out is None else \
        open_results(args.out, resume=args.resume, overwrite=args.overwrite, fmt=fmt)
    todo = [j for j in jobs if j.id not in done]
    windows = open_side_table(args.windows, WINDOW_COLUMNS, done, resume=args.resume) if args.windows else None
    matrix = None
    if args.nmr_matrix is not None:
        if bank is None:
            if results is not None:
                results.close()
            from deepaq.errors import ConfigError

            raise ConfigError("--nmr-matrix needs --nmr-dir or --nmr-bank")
        matrix = open_side_table(args.nmr_matrix, ["id", *bank.names], done, resume=args.resume)

    errors = []
    bar = tqdm(total=len(todo), unit="item", desc="scoring", file=sys.stderr, disable=None)
    engine = None
    try:
        processes = processes_for(args.processes, len(todo)) if args.engine == "local" else 0
        if args.engine == "local" and processes == 1:
            outcomes = scorer.iter_scores(todo)
        else:  # each worker loads the model once; the bank goes to them as embedded here
            from deepaq.engine import engine_from_args
            from deepaq.scoring.remote import score_on_engine

            engine = engine_from_args(args, processes)
            outcomes = score_on_engine(engine, scorer_options(args, mapping), todo, bank)
        for job, outcome in outcomes:
            if isinstance(outcome, ScoreResult):
                if windows is not None:
                    for row in window_rows(job.id, outcome):
                        windows.write(row)
                if matrix is not None:
                    matrix.write({"id": job.id, **outcome.reference_distances})
                if args.plot is not None:
                    plot_timeline(outcome, plot_path(args.plot, job.id, len(jobs) > 1), f"{job.id} ({outcome.mode})")
                if args.html is not None:
                    _page(args, job, outcome)
            else:
                errors.append(f"{job.id}: {outcome}")
                bar.write(f"error [{job.id}]: {outcome}", file=sys.stderr)
            if results is not None:
                results.write(result_row(job, outcome, nmr_spec, (scorer.model_id, scorer.model_version)))
            elif isinstance(outcome, ScoreResult):
                bar.write(format_text(job, outcome, nmr_spec), file=sys.stdout)
            bar.update(1)
    finally:
        bar.close()
        if engine is not None:
            engine.close()
        for table in (results, windows, matrix):
            if table is not None:
                table.close()
    skipped = len(jobs) - len(todo)
    summary = f"deepaq score: {len(todo) - len(errors)} scored, {len(errors)} failed"
    summary += f", {skipped} already in {args.out}" if skipped else ""
    if fmt != "text" or errors or skipped:  # the text block already says it all
        print(summary + (f" (model {scorer.model_id} {scorer.model_version})"), file=sys.stderr)
    return 1 if errors else 0


def _page(args: argparse.Namespace, job, outcome) -> None:
    """--html: the pair's page, with the quality-over-time plot (when matplotlib is installed)."""
    import importlib.util
    import shlex

    from deepaq.pages import pair_page
    from deepaq.scoring.timeline import plot_timeline

    plot = args.plot
    if plot is None and importlib.util.find_spec("matplotlib") is not None:
        plot = plot_timeline(outcome, args.html.with_suffix(".png"), f"{job.id} ({outcome.mode})")
    command = shlex.join(["deepaq", *getattr(args, "argv", ["score"])])
    pair_page(args.html, job.id, outcome, job.reference, job.degraded, plot, command)
