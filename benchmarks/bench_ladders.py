"""Ladders of held-out degradations with a known order: how often each metric orders adjacent steps.

    python benchmarks/bench_ladders.py [--model NAME=PATH ...] [--dataset work/dataset-v3] [--clips 15]

References: the 10 clean excerpts of the ViSQOL test data (real music, first `--seconds`) and,
with `--dataset`, the first `--clips` clean clips of its test split (never trained on). Each
reference goes through five ladders of degradations kept out of training or with a known
physical order, worst to best:

    mp2       MP2 at 48, 64, 96, 128, 192, 256 kbps     (codec never seen in training)
    ac3       AC-3 at 48, 64, 96, 128, 192, 256 kbps    (codec never seen in training)
    lowpass   low-pass at 3.5, 5, 7, 10, 14 kHz
    noise     white noise at 10, 20, 30, 40 dB SNR
    clipping  hard clipping 24, 12, 6, 3 dB below the peak

A step is ordered when the metric rates the better step strictly better (ties count as
errors). Printed: per ladder and metric the share of adjacent steps ordered, with a 95 %
Wilson interval, and the total. Scores are cached in `--cache`/scores.csv (deepaq rows keyed
by the weights' hash), so a rerun scores only what is new.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_default_model import DEFAULT_DATA, SR, ScoreCache, references, score_pairs  # noqa: E402

LADDERS: dict[str, list[tuple[str, dict]]] = {
    "mp2": [("mp2", {"bitrate_kbps": float(b)}) for b in (48, 64, 96, 128, 192, 256)],
    "ac3": [("ac3", {"bitrate_kbps": float(b)}) for b in (48, 64, 96, 128, 192, 256)],
    "lowpass": [("bandlimit", {"kind": "lowpass", "high_hz": float(f), "order": 8}) for f in (3500, 5000, 7000, 10000, 14000)],
    "noise": [("noise_white", {"snr_db": float(s)}) for s in (10, 20, 30, 40)],
    "clipping": [("clipping", {"mode": "hard", "clip_db": float(c)}) for c in (24, 12, 6, 3)],
}


def reference_clips(data: Path, dataset: Path | None, clips: int, seconds: float) -> list[tuple[str, np.ndarray]]:
    """(name, [channels, samples] at 48 kHz) of every reference."""
    import soundfile as sf

    out = []
    for path in references(data):
        x, sr = sf.read(path, dtype="float32", always_2d=True)
        out.append((path.stem.replace("48_stereo", ""), np.ascontiguousarray(x[: int(seconds * sr)].T)))
    if dataset is not None:
        from deepaq.data.manifest import read_manifest

        frame = read_manifest(dataset)
        clean = frame[(frame["split"] == "test") & (frame["codec"] == "clean")].sort_values("item_id").head(clips)
        for row in clean.itertuples():
            x, sr = sf.read(dataset / row.path, dtype="float32", always_2d=True)
            out.append((f"test-{row.clip_id}", np.ascontiguousarray(x.T)))
    return out


def make_pairs(refs: list[tuple[str, np.ndarray]], folder: Path) -> list[dict]:
    """Write (once) each reference and its ladder steps as WAV; returns the pairs."""
    import soundfile as sf

    from deepaq.degradations import apply

    pairs = []
    for item, x in refs:
        ref_out = folder / item / "clean.wav"
        ref_out.parent.mkdir(parents=True, exist_ok=True)
        if not ref_out.exists():
            sf.write(ref_out, x.T, SR, subtype="FLOAT")
        for ladder, steps in LADDERS.items():
            for step, (family, params) in enumerate(steps):
                out = folder / item / f"{ladder}_{step}.wav"
                if not out.exists():
                    sf.write(out, apply(family, x, SR, params, rng_seed=step).T, SR, subtype="FLOAT")
                pairs.append({"item": item, "codec": ladder, "setting": float(step), "reference": ref_out,
                              "degraded": out})
    return pairs


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def ordered_steps(pairs: list[dict], key: str, cache: ScoreCache, ladder: str) -> tuple[int, int]:
    """(adjacent steps rated strictly in order, adjacent steps) over every reference."""
    k = n = 0
    for item in sorted({p["item"] for p in pairs}):
        values = [cache.get(p, key) for p in pairs if p["item"] == item and p["codec"] == ladder]
        for worse, better in zip(values[:-1], values[1:]):
            n += 1
            k += better > worse  # every cached value is oriented higher = better
    return k, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a deepaq model folder (repeatable); the shipped model is always included")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ViSQOL test data folder")
    parser.add_argument("--dataset", type=Path, default=None, help="a build-data folder whose test clips join")
    parser.add_argument("--clips", type=int, default=15, help="test-split clips taken from --dataset")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--metrics", default="visqol,peaq", help="baselines besides deepaq (peaq gives ODG and 2f)")
    parser.add_argument("--cache", type=Path, default=Path("work/bench-ladders"))
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"{args.data}: ViSQOL test data not found", file=sys.stderr)
        return 1
    args.cache.mkdir(parents=True, exist_ok=True)
    cache = ScoreCache(args.cache / "scores.csv")
    pairs = make_pairs(reference_clips(args.data, args.dataset, args.clips, args.seconds), args.cache / "audio")
    models = {"deepaq": "deepaq-compact", **dict(m.split("=", 1) for m in args.model)}
    keys: dict[str, str] = {}
    for name, path in models.items():
        keys[name] = score_pairs(pairs, ["deepaq"], path, cache)["deepaq"]
    baselines = score_pairs(pairs, [m for m in args.metrics.split(",") if m], "", cache)
    keys.update({("ODG" if m == "peaq" else m): k for m, k in baselines.items()})
    n_refs = len({p["item"] for p in pairs})
    print(f"\n{n_refs} references, {len(pairs)} pairs; share of adjacent steps ordered [95 % Wilson CI]\n")
    print("| metric | " + " | ".join(LADDERS) + " | all |")
    print("|---" * (len(LADDERS) + 2) + "|")
    for name, key in keys.items():
        cells, total_k, total_n = [], 0, 0
        for ladder in LADDERS:
            k, n = ordered_steps(pairs, key, cache, ladder)
            total_k, total_n = total_k + k, total_n + n
            cells.append(f"{100 * k / n:.1f}")
        low, high = wilson(total_k, total_n)
        cells.append(f"**{100 * total_k / total_n:.1f}** [{100 * low:.1f}, {100 * high:.1f}]")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
