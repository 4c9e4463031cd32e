"""`deepaq build-data`: clean audio folders -> coded, ViSQOL- and bitrate-labelled dataset."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "build a weak-label training set: clips, codec grid, ViSQOL + bitrate labels, manifest"
EXAMPLE = (
    "deepaq build-data corpus/music corpus/speech -o work/dataset --workers 2 --csv\n"
    "  deepaq build-data /shared/corpus -o /shared/dataset --engine ray --ray-address head:6379\n"
    "  deepaq build-data corpus -o work/small --codecs opus,mp3 --bitrates 16,64,128 --max-clips 2 --lowpass 3500,7000\n"
    "  deepaq build-data corpus -o work/ladders --codecs '' --ladders all --ladder-steps 5 --no-visqol"
)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _ladders(names: tuple[str, ...]) -> tuple[str, ...]:
    from deepaq.degradations.ladders import resolve_ladders

    return resolve_ladders(names) if names else ()


def _families(names: tuple[str, ...]) -> tuple[str, ...]:
    """`all` spelled out, so the stored settings say which families the dataset was built with."""
    from deepaq.degradations import resolve_families

    return resolve_families(names) if names else ()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepaq.data.build import BuildConfig

    d = BuildConfig()
    parser.add_argument("inputs", nargs="+", type=Path, metavar="CLEAN_DIR", help="folders of clean audio (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DATASET_DIR", help="dataset folder (created; rerun the same command to resume)")
    parser.add_argument("--clip-seconds", type=float, default=d.clip_seconds, help="clip length (default 5 s, as MERT was pre-trained on)")
    parser.add_argument("--max-clips", type=int, default=d.max_clips_per_source, help=f"at most this many clips per source file (default {d.max_clips_per_source})")
    parser.add_argument("--codecs", type=_names, default=d.codecs, help=f"comma-separated codecs (default {','.join(d.codecs)}; also mp2, ac3)")
    parser.add_argument("--bitrates", type=_floats, default=d.bitrates, help=f"comma-separated kbps (default the paper's {','.join(f'{b:g}' for b in d.bitrates)})")
    parser.add_argument("--lowpass", type=_floats, default=d.lowpass_hz, metavar="HZ,...", help="also add low-pass anchors at these cutoffs (e.g. 3500,7000)")
    parser.add_argument("--degradations", type=_names, default=d.degradations, metavar="FAMILY,...|all",
                        help="deepaq.degradations families to sample conditions from (all: every training family; docs/data.md)")
    parser.add_argument("--per-clip", type=int, default=d.per_clip, metavar="N",
                        help="sampled degradation conditions per clip, besides the codec grid (--codecs '' for none)")
    parser.add_argument("--ladders", type=_names, default=d.ladders, metavar="LADDER,...|all",
                        help="ladders of known order written for every clip (lowpass, noise_white, noise_pink, "
                             "clipping, mp3, aac, eac3, vorbis; all: every one); training ranks their steps")
    parser.add_argument("--ladder-steps", type=int, default=d.ladder_steps, metavar="N",
                        help=f"steps per ladder, worst to best (default {d.ladder_steps})")
    parser.add_argument("--interferers", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder of audio to draw babble and competing talkers and separation interferers from "
                             "(repeat for more; default: speech-shaped noise and pink noise)")
    parser.add_argument("--split", type=_floats, default=d.split_ratios, metavar="TRAIN,VAL,TEST", help="split ratios by source file (default 0.8,0.1,0.1)")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the train/validation/test split (default 0)")
    parser.add_argument("--mono", action="store_true", help="downmix to mono before coding (default: code and store stereo sources as stereo)")
    parser.add_argument("--no-visqol", dest="visqol", action="store_false",
                        help="bitrate labels only (visqol_mos NaN): no ViSQOL, many times faster")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes of the local engine (default: all CPU cores; Ray uses every CPU of its cluster)")
    parser.add_argument("--csv", action="store_true", help="also write manifest.csv")
    from deepaq.engine import add_engine_arguments

    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from deepaq.data.build import BuildConfig, build_dataset

    config = BuildConfig(
        clip_seconds=args.clip_seconds,
        max_clips_per_source=args.max_clips,
        codecs=args.codecs,
        bitrates=args.bitrates,
        lowpass_hz=args.lowpass,
        degradations=_families(args.degradations),
        per_clip=args.per_clip,
        ladders=_ladders(args.ladders),
        ladder_steps=args.ladder_steps,
        interferers=tuple(map(str, args.interferers)),
        split_ratios=args.split,
        seed=args.seed,
        mono=args.mono,
        visqol=args.visqol,
    )
    from deepaq.engine import engine_from_args

    with engine_from_args(args, args.workers) as engine:
        summary = build_dataset(args.inputs, args.output, config, write_csv=args.csv, engine=engine)
    splits = ", ".join(f"{n} {split}" for split, n in summary.items_per_split.items())
    print(
        f"{summary.manifest}: {summary.items} items ({splits}) from {summary.clips} clips of {summary.sources} "
        f"source files; {summary.errors} errors" + (f" (see {summary.manifest.parent / 'errors.csv'})" if summary.errors else "")
    )
    return 0
