"""`deepaq fit-nmr`: the NMR head and default reference bank of a model, from its training data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "fit a model's NMR head (distilled from its full-reference score) and write its default NMR bank"
EXAMPLE = ("deepaq fit-nmr src/deepaq/weights/deepaq-compact --data work/dataset-v3,work/dataset-v3b\n"
           "  deepaq score --nmr-bank default coded.wav --model src/deepaq/weights/deepaq-compact")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model folder: nmr_head.safetensors and bank.safetensors go there")
    parser.add_argument("--data", required=True,
                        help="comma-separated dataset folders (deepaq build-data) with clean items per clip")
    parser.add_argument("--bank-data", default="",
                        help="comma-separated dataset folders the bank's clean items come from (default: --data)")
    parser.add_argument("--bank-split", default="test",
                        help="split whose clean items form the bank (default test: clips the head never fits on)")
    parser.add_argument("--bank-size", type=int, default=82,
                        help="clean items in the bank: a seeded draw when the split has more (default 82)")
    parser.add_argument("--groups", default="part_mean,bank",
                        help="feature groups of the head, of part_mean, part_std, bank (default part_mean,bank)")
    parser.add_argument("--ridge", type=float, default=1e-2, help="ridge strength (default 0.01)")
    parser.add_argument("--bank-weight", type=float, default=0.5,
                        help="extra weight of the mean distance to the bank beside the fitted head (default 0.5)")
    parser.add_argument("--max-items", type=int, default=12000,
                        help="training items drawn at random from the train split (default 12000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of that draw (default 0)")


def run(args: argparse.Namespace) -> int:
    from deepaq.data.nmr_fit import fit_model_nmr

    report = fit_model_nmr(args.model, [Path(p) for p in args.data.split(",") if p],
                           bank_split=args.bank_split, bank_size=args.bank_size,
                           groups=tuple(g.strip() for g in args.groups.split(",") if g.strip()),
                           ridge=args.ridge, bank_weight=args.bank_weight, max_items=args.max_items,
                           seed=args.seed, bank_datasets=[Path(p) for p in args.bank_data.split(",") if p] or None)
    for key, value in report.items():
        print(f"{key}: {value}", file=sys.stderr)
    return 0
