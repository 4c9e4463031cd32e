"""`deepaq degrade`: code a file with a real codec, a low-pass anchor or a degradation family
of deepaq.degradations, and write the result (sample-aligned, same length)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "degrade a file with a real codec (opus, mp3, aac, mp2, ac3), a low-pass anchor or a degradation family"
EXAMPLE = (
    "deepaq degrade song.flac --codec opus --bitrate 64 -o song_opus64.wav\n"
    "  deepaq degrade song.flac --lowpass 3500 -o song_lp35.wav\n"
    "  deepaq degrade talk.wav --family amrnb --param bitrate_kbps=5.9 -o talk_amr.wav\n"
    "  deepaq degrade talk.wav --family opus_loss --param loss_rate=0.1 --param fec=1 --seed 3 -o talk_loss.wav\n"
    "  deepaq degrade song.flac --family reverb -o song_reverb.wav   (parameters drawn at random, printed)"
)


def _param(text: str) -> tuple[str, object]:
    """key=value; the value read as JSON where it parses (numbers, lists), else as text."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from deepaq.codecs import CODECS

    parser.add_argument("input", type=Path, help="audio file to degrade")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--codec", choices=sorted(CODECS), help="codec to encode and decode with")
    how.add_argument("--lowpass", type=float, metavar="HZ", help="low-pass anchor cutoff (e.g. 3500, 7000)")
    how.add_argument("--family", metavar="NAME", help="a deepaq.degradations family (docs/data.md lists them)")
    parser.add_argument("--bitrate", type=float, metavar="KBPS", help="codec bitrate in kbps (with --codec)")
    parser.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter of --family (repeat for more); without any, they are drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="seed of --family's random parts and drawn parameters (default 0)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .wav or .flac")


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from deepaq.audio import read_audio, write_audio
    from deepaq.codecs import degrade, lowpass
    from deepaq.errors import ConfigError

    if args.family:
        from deepaq import degradations

        family = degradations.get(args.family)  # an unknown name fails before the file is read
        params = dict(args.param) if args.param else family.sample(np.random.default_rng(args.seed))
        params = family.resolve(params)
    elif args.param:
        raise ConfigError("--param belongs to --family NAME")
    x, sr = read_audio(args.input)
    if args.family:
        y = family.apply(x, sr, params, args.seed)
        what = f"{args.family} {json.dumps(params)}"
    elif args.codec:
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
