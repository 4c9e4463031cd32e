"""`deepaq label`: ViSQOL v3 (and bitrate) labels for a CSV of reference/degraded pairs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "label reference/degraded pairs from a CSV with ViSQOL v3 (audio mode, 48 kHz); resumable"
EXAMPLE = (
    "deepaq label pairs.csv -o labels.csv --workers 2\n"
    "  deepaq label /shared/pairs.csv -o /shared/labels.csv --engine ray   (joins $RAY_ADDRESS)\n"
    "  (pairs.csv: header reference,degraded[,id][,bitrate_kbps]; paths relative to the CSV)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", type=Path, metavar="PAIRS.csv", help="CSV with columns reference,degraded and optional id, bitrate_kbps")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="LABELS.csv", help="output CSV; if it exists, pairs already scored are skipped")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all CPU cores)")
    from deepaq.engine import add_engine_arguments

    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from deepaq.data.labels import label_pairs

    from deepaq.engine import engine_from_args

    with engine_from_args(args, args.workers) as engine:
        scored, errors = label_pairs(args.pairs, args.output, engine=engine)
    print(f"{args.output}: {scored} pairs scored now; {errors} rows with errors (column 'error')")
    return 0
