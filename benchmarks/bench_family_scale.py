"""The scale across degradation families: does `quality` put different damages where the teachers do?

Issue 28 (build 3) asks to check the per-family scale, not only the order within a family: on a
VoIP listening test, items of equal listener MOS got a mean `quality` of 51 for noise and 77 for
dropouts. This benchmark scores the held-out items of a labelled dataset folder (`deepaq
build-data` + `deepaq label --teacher ...`; e.g. dataset-v4's natural voices, whose PESQ-WB
labels stand in for a VoIP test, PESQ-WB being the best classic metric there) against their
clip's clean item and prints, per family, the mean of the fused `quality`, of the network alone
and of every teacher label present, then the Spearman correlation of each score with each
teacher over items and over family means. No listener is involved: agreement with a teacher is
a proxy, not the aim; it shows where the scale goes wrong.

    python benchmarks/bench_family_scale.py                  # work/dataset-v4, skipped when not built
    python benchmarks/bench_family_scale.py work/dataset-v4 --model work/runs/x/checkpoints/best --max-items 500
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

LABELS = ("mms_2f", "pesq_wb", "visqol_mos", "visqol_speech")  # teacher columns shown when present
MOS_LABELS = ("pesq_wb", "visqol_mos", "visqol_speech")  # on a 1-5 scale: two decimals


def held_out_items(root: Path, splits: list[str], max_items: int, seed: int):
    """Manifest rows of `splits` (not the clean items) whose clip has a clean item, with their
    clean item's path; a seeded sample of `max_items` when there are more."""
    from deepaq.data.manifest import read_manifest

    frame = read_manifest(root)
    clean = frame[frame.family == "clean"].set_index("clip_id").path
    items = frame[frame.split.isin(splits) & (frame.family != "clean") & frame.clip_id.isin(clean.index)]
    if len(items) > max_items:
        items = items.sample(max_items, random_state=seed)
    return items.assign(clean_path=clean.reindex(items.clip_id).values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, nargs="?", default=Path("work/dataset-v4"),
                        help="a dataset folder with teacher-*.csv labels (default: work/dataset-v4)")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--splits", default="validation,test", help="splits scored (default: validation,test)")
    parser.add_argument("--max-items", type=int, default=2000, help="seeded sample when there are more (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from scipy.stats import spearmanr

    from deepaq.data.teachers import read_teacher_labels
    from deepaq.errors import DeepaqError
    from deepaq.scoring import DEFAULT_MODEL, Scorer

    if not (args.dataset / "manifest.parquet").is_file():
        print(f"skipped: no dataset at {args.dataset} (`deepaq build-data`, then `deepaq label`)")
        return 0
    items = held_out_items(args.dataset, args.splits.split(","), args.max_items, args.seed)
    labels = read_teacher_labels(args.dataset)
    for name in LABELS:
        items[name] = [labels.get(i, {}).get(name, math.nan) for i in items.item_id]
    shown = [n for n in LABELS if items[n].notna().any()]
    if not shown:
        print(f"{args.dataset}: no teacher labels (run `deepaq label {args.dataset} --teacher peaq`)", file=sys.stderr)
        return 1
    scorer = Scorer(args.model or DEFAULT_MODEL, cache_dir=False)
    fused, network = [], []
    for row in items.itertuples():
        try:
            r = scorer.score(reference=args.dataset / row.clean_path, degraded=args.dataset / row.path)
        except DeepaqError as exc:
            print(f"skipped {row.item_id}: {exc}", file=sys.stderr)
            r = None
        fused.append(math.nan if r is None else r.quality)
        network.append(math.nan if r is None else r.model_quality)
    items = items.assign(deepaq=fused, network=network).dropna(subset=["deepaq"])
    scores = ["deepaq", "network", *shown]
    print(f"\nmodel {scorer.model_id} {scorer.model_version}; {args.dataset}, splits {args.splits}: "
          f"{len(items)} items of {items.family.nunique()} families\n")
    means = items.groupby("family")[scores].mean()
    print("| family | items | " + " | ".join(scores) + " |")
    print("|---|---|" + "---|" * len(scores))
    for family, row in means.sort_values(shown[0]).iterrows():
        n = int((items.family == family).sum())
        print(f"| {family} | {n} | " + " | ".join(f"{row[s]:.2f}" if s in MOS_LABELS else f"{row[s]:.1f}"
                                                   for s in scores) + " |")
    print("\nSpearman with each teacher, over items (over family means)\n")
    print("| score | " + " | ".join(shown) + " |")
    print("|---|" + "---|" * len(shown))
    for s in scores:
        cells = []
        for t in shown:
            both = items[[s, t]].dropna()
            if s == t or len(both) < 3:
                cells.append("")
                continue
            fam = both.assign(family=items.family).groupby("family").mean()
            cells.append(f"{spearmanr(both[s], both[t])[0]:.3f} ({spearmanr(fam[s], fam[t])[0]:.3f})")
        print(f"| {s} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
