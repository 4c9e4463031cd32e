"""`deepaq degrade`: code a file with a real codec (or a low-pass anchor) and write the result."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "degrade a file with a real codec (opus, mp3, aac, mp2, ac3) or a low-pass anchor"
EXAMPLE = "deepaq degrade song.flac --codec opus --bitrate 64 -o song_opus64.wav\n  deepaq degrade song.flac --lowpass 3500 -o song_lp35.wav"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepaq.codecs import CODECS

    parser.add_argument("input", type=Path, help="audio file to degrade")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--codec", choices=sorted(CODECS), help="codec to encode and decode with")
    how.add_argument("--lowpass", type=float, metavar="HZ", help="low-pass anchor cutoff (e.g. 3500, 7000)")
    parser.add_argument("--bitrate", type=float, metavar="KBPS", help="codec bitrate in kbps (with --codec)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .wav or .flac")


def run(args: argparse.Namespace) -> int:
    from deepaq.audio import read_audio, write_audio
    from deepaq.codecs import degrade, lowpass
    from deepaq.errors import ConfigError

    x, sr = read_audio(args.input)
    if args.codec:
        if args.bitrate is None:
            raise ConfigError("--codec needs --bitrate KBPS")
        y = degrade(x, sr, args.codec, args.bitrate)
        what = f"{args.codec} at {args.bitrate:g} kbps"
    else:
        y = lowpass(x, sr, args.lowpass)
        what = f"low-pass at {args.lowpass:g} Hz"
    write_audio(args.output, y, sr)
    print(f"{args.input} -> {args.output}: {what}, {x.shape[0]} ch, {sr} Hz, {x.shape[1] / sr:.2f} s, sample-aligned")
    return 0
