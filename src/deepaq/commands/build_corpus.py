"""`deepaq build-corpus`: render the clean training corpus (48 kHz FLAC) from free sources."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("render a clean 48 kHz corpus: sonic-pi recordings, drum kits, scores via fluidsynth, espeak-ng speech, "
        "recorded voices, telephone prompts, game soundtracks, mixtures")
EXAMPLE = "deepaq build-corpus work/corpus --music 75 --drums 50 --speech 45 --mixture 35 --sonic-pi 70 --voices 40 --phone 40 --soundtrack 60 --seconds 8"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepaq.data.corpus import DEFAULT_COUNTS

    parser.add_argument("out_dir", type=Path, help="output folder (FLACs by kind, corpus.csv, errors.csv)")
    for kind, n in DEFAULT_COUNTS.items():
        parser.add_argument(f"--{kind}", type=int, default=n, metavar="N", help=f"number of {kind} clips (default {n})")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of every clip in seconds (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the plan and of every render (default 0)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where Debian source packages are unpacked (default $DEEPAQ_CACHE_DIR/corpus-sources)")
    parser.add_argument("--soundfont", action="append", default=None,
                        choices=["fluid-soundfont-gm", "musescore-general-soundfont-lossless"],
                        help="sound font package(s) for the music renders (default: both)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepaq.data.corpus import DEFAULT_COUNTS, build_corpus

    counts = {kind: getattr(args, kind.replace("-", "_")) for kind in DEFAULT_COUNTS}
    soundfonts = tuple(args.soundfont or ("fluid-soundfont-gm", "musescore-general-soundfont-lossless"))
    stats = build_corpus(args.out_dir, counts=counts, seconds=args.seconds, seed=args.seed,
                         cache_dir=args.cache_dir, soundfonts=soundfonts,
                         progress=lambda it: tqdm(list(it), desc="corpus", unit="clip"))
    print(f"corpus in {args.out_dir}: {stats['written']} written, {stats['kept']} kept, {stats['failed']} failed"
          + (f" (see {args.out_dir / 'errors.csv'})" if stats["failed"] else ""))
    return 0 if stats["written"] + stats["kept"] > 0 else 1
