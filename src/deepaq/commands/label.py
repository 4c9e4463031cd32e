"""`deepaq label`: ViSQOL v3 (and bitrate) labels for a CSV of reference/degraded pairs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "label pairs from a CSV with ViSQOL v3, or a built dataset with teacher labels (PEAQ/2f, ViSQOL); resumable"
EXAMPLE = (
    "deepaq label pairs.csv -o labels.csv --workers 2\n"
    "  deepaq label /shared/pairs.csv -o /shared/labels.csv --engine ray   (joins $RAY_ADDRESS)\n"
    "  (pairs.csv: header reference,degraded[,id][,bitrate_kbps]; paths relative to the CSV)\n"
    "  deepaq label work/dataset --teacher peaq      (a build-data folder: DATASET/teacher-peaq.csv)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepaq.data.teachers import TEACHERS

    parser.add_argument("pairs", type=Path, metavar="PAIRS.csv|DATASET",
                        help="CSV with columns reference,degraded and optional id, bitrate_kbps; or a build-data folder")
    parser.add_argument("-o", "--output", type=Path, metavar="LABELS.csv",
                        help="output CSV (pairs mode, required); if it exists, pairs already scored are skipped")
    parser.add_argument("--teacher", choices=TEACHERS, default="visqol",
                        help="dataset mode: the teacher whose labels go to DATASET/teacher-NAME.csv "
                             "(peaq: 2f-model MMS, ODG, DI and the 11 MOVs; pesq: PESQ-WB and visqol_speech: ViSQOL speech mode, on speech clips only; "
                             "default visqol)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes of the local engine (default: all CPU cores; Ray uses every CPU of its cluster)")
    from deepaq.engine import add_engine_arguments

    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from deepaq.data.labels import label_pairs
    from deepaq.engine import engine_from_args
    from deepaq.errors import ConfigError

    if args.pairs.is_dir():
        from deepaq.data.teachers import label_dataset, teacher_file

        with engine_from_args(args, args.workers) as engine:
            scored, errors = label_dataset(args.pairs, args.teacher, engine=engine)
        print(f"{teacher_file(args.pairs, args.teacher)}: {scored} items scored now; {errors} with errors (column 'error')")
        return 0
    if args.output is None:
        raise ConfigError("deepaq label PAIRS.csv needs -o LABELS.csv")
    with engine_from_args(args, args.workers) as engine:
        scored, errors = label_pairs(args.pairs, args.output, engine=engine)
    print(f"{args.output}: {scored} pairs scored now; {errors} rows with errors (column 'error')")
    return 0
