"""How many time parts to score with, chosen on the training data's validation split alone.

    python benchmarks/bench_parts.py [--model FOLDER] [--parts 1,2,4,8,16,32,76]
        [--data work/dataset-v3,work/dataset-v3b,work/dataset-v3c] [--teacher mms_2f]

One set of trained weights, read with K time parts per window (config.json `segments`,
`deepaq.models.pooling`; the weights are not changed): for every K, the trainer's own
validation measures (`deepaq.train.validate`) over the validation split of the dataset
folders: Spearman of -distance with the teacher over every degraded item of every clip (the
checkpoint selection measure), the share of adjacent validation ladder steps in order, and
bitrate order within each clip and codec. No listening test is involved, so a K chosen here is
not fitted on them. Prints one row per K and the K each measure prefers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def part_measures(model_dir: str, roots: list[str], parts: list[int], teacher: str) -> dict[int, dict]:
    """{K: validation measures} of one model folder read with K time parts."""
    import torch
    from torch.utils.data import DataLoader

    from deepaq.data.dataset import ManifestDataset, collate
    from deepaq.models import load_model
    from deepaq.train import validate

    model = load_model(model_dir)
    data = ManifestDataset(roots, "validation", model.sample_rate, model.info["window_seconds"], teachers=(teacher,))
    loader = DataLoader(data, batch_size=32, collate_fn=collate)
    out = {}
    for k in parts:
        model.segments = k
        metrics, _ = validate(model, loader, torch.device("cpu"), torch.no_grad, (teacher,))
        out[k] = {"teacher": metrics[teacher][0], "ladders": metrics.get("ladders", (math.nan, 0))[0],
                  "bitrate": metrics["bitrate"][0], "items": metrics[teacher][1]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="src/deepaq/weights/deepaq-compact")
    parser.add_argument("--parts", default="1,2,4,8,16,32,76")
    parser.add_argument("--data", default="work/dataset-v3,work/dataset-v3b,work/dataset-v3c")
    parser.add_argument("--teacher", default="mms_2f")
    args = parser.parse_args()
    parts = [int(k) for k in args.parts.split(",")]
    roots = [r for r in args.data.split(",") if r]
    missing = [r for r in roots if not (Path(r) / "manifest.parquet").is_file()]
    if missing:
        print(f"skipped: no dataset at {', '.join(missing)} (`make -j4 compact-model` builds them)")
        return
    rows = part_measures(args.model, roots, parts, args.teacher)
    print(f"{args.model}: validation split of {', '.join(roots)}")
    print(f"| parts | vs {args.teacher} | ladder steps ordered % | bitrate within clip and codec |")
    print("|---|---|---|---|")
    for k, m in rows.items():
        print(f"| {k} | {m['teacher']:.4f} | {100 * m['ladders']:.2f} | {m['bitrate']:.4f} |")
    for name in ("teacher", "ladders", "bitrate"):
        finite = [k for k in rows if math.isfinite(rows[k][name])]
        if finite:
            print(f"best by {name}: {max(finite, key=lambda k: rows[k][name])} parts")


if __name__ == "__main__":
    main()
