"""`deepaq peaq`: PEAQ Basic (ITU-R BS.1387-1) MOVs, DI, ODG and the 2f-model score."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

HELP = "PEAQ Basic (ITU-R BS.1387-1): 11 MOVs, Distortion Index, ODG and the 2f-model MUSHRA score"
EXAMPLE = """deepaq peaq ref.wav coded.wav
  deepaq peaq ref.wav coded.wav --json
  deepaq peaq --pairs pairs.csv --out peaq.csv   (CSV header: reference,degraded[,id])"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", type=Path, help="REFERENCE DEGRADED (time-aligned, ideally 48 kHz)")
    parser.add_argument("--json", action="store_true", help="print one pair's result as JSON")
    parser.add_argument("--pairs", type=Path, metavar="CSV",
                        help="batch: CSV with header reference,degraded[,id] (paths relative to the CSV)")
    parser.add_argument("--out", "-o", type=Path, help="batch results .csv or .jsonl (default: CSV on stdout)")


def run(args: argparse.Namespace) -> int:
    from deepaq.errors import ConfigError

    if args.pairs is not None:
        if args.inputs:
            raise ConfigError("give either REFERENCE DEGRADED or --pairs CSV, not both")
        return _run_batch(args.pairs, args.out)
    if len(args.inputs) != 2:
        raise ConfigError("expected REFERENCE DEGRADED (two files), or --pairs CSV")
    if args.out is not None:
        raise ConfigError("--out is for batches (--pairs CSV); for one pair use --json and redirect")
    from deepaq.baselines.peaq import peaq

    result = peaq(reference=args.inputs[0], degraded=args.inputs[1])
    if args.json:
        print(json.dumps({"reference": str(args.inputs[0]), "degraded": str(args.inputs[1]), **result.to_dict()}))
    else:
        _print_result(result)
    return 0


def _print_result(result) -> None:
    for name, value in result.movs.items():
        print(f"{name:16s} {value:12.6g}")
    print(f"{'Distortion Index':16s} {result.distortion_index:12.3f}")
    print(f"{'ODG':16s} {result.odg:12.3f}   (0 imperceptible ... -4 very annoying)")
    print(f"{'2f-model MMS':16s} {result.mms_2f:12.2f}   (0-100, higher is better)")
    for note in result.notes:
        print(f"note: {note}")


COLUMNS_BEFORE = ["id", "reference", "degraded"]
COLUMNS_AFTER = ["distortion_index", "odg", "mms_2f", "channels", "frames", "data_start", "data_end", "error"]


def _run_batch(pairs: Path, out: Path | None) -> int:
    from deepaq.baselines.peaq import MOV_NAMES, peaq
    from deepaq.errors import ConfigError, DeepaqError
    from deepaq.scoring.inputs import jobs_from_pairs_csv

    fmt = "csv" if out is None else {".csv": "csv", ".jsonl": "jsonl"}.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{out}: output must end in .csv or .jsonl")
    jobs = jobs_from_pairs_csv(pairs)
    columns = COLUMNS_BEFORE + list(MOV_NAMES) + COLUMNS_AFTER
    failed = 0
    stream = sys.stdout if out is None else open(out, "w", newline="", encoding="utf-8")
    try:
        writer = csv.DictWriter(stream, fieldnames=columns) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        for n, job in enumerate(jobs, 1):
            row = {c: None for c in columns}
            row.update(id=job.id, reference=str(job.reference or ""), degraded=str(job.degraded))
            try:
                if job.problem:
                    raise ConfigError(job.problem)
                result = peaq(reference=job.reference, degraded=job.degraded)
                row.update({k: _clean(v) for k, v in result.to_dict().items()})
            except DeepaqError as exc:
                failed += 1
                row["error"] = str(exc)
            except Exception as exc:  # a bug must not lose the rest of the batch; the row says what broke
                failed += 1
                row["error"] = f"{job.degraded}: unexpected {type(exc).__name__}: {exc}"
            if writer:
                writer.writerow(row)
            else:
                stream.write(json.dumps(row) + "\n")
            stream.flush()
            status = "error" if row["error"] else f"ODG {row['odg']:.3f}"
            print(f"[{n}/{len(jobs)}] {job.id}: {status}", file=sys.stderr)
    finally:
        if out is not None:
            stream.close()
    print(f"deepaq peaq: {len(jobs) - failed} of {len(jobs)} pairs scored, {failed} failed"
          + (f"; results in {out}" if out else ""), file=sys.stderr)
    return 1 if failed else 0


def _clean(value):
    """Floats rounded for the table; NaN/inf become empty cells."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value
