"""`deepaq embed`: DeePAQ embeddings of audio files, saved as an embedding bank."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepaq.commands.score import add_model_arguments, make_scorer

HELP = "embed audio files into a bank (.safetensors), e.g. the clean references for NMR scoring"
EXAMPLE = """deepaq embed clean_refs/ --bank bank.safetensors
  deepaq score --nmr-bank bank.safetensors coded/ --out nmr.csv"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="audio files or folders (searched recursively)")
    parser.add_argument("--bank", "-o", type=Path, required=True, help="output embedding bank (.safetensors)")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepaq.errors import ConfigError, DeepaqError
    from deepaq.scoring import list_audio
    from deepaq.scoring.scorer import bank_from_embeddings

    if args.bank.suffix != ".safetensors":
        raise ConfigError(f"{args.bank}: the bank must be a .safetensors file")
    files: list[tuple[str, Path]] = []
    for p in args.inputs:
        if p.is_dir():
            files += [(f.relative_to(p).as_posix(), f) for f in list_audio(p)]
        else:
            files.append((str(p), p))
    if not files:
        raise ConfigError("no audio files among the inputs")
    scorer = make_scorer(args, mapping=False)
    names, embeddings, errors = [], [], []
    for name, path in tqdm(files, unit="file", desc="embedding", file=sys.stderr, disable=None):
        try:
            embeddings.append(scorer.embed(path))
            names.append(name)
        except DeepaqError as exc:
            errors.append(str(exc))
            print(f"error: {exc}", file=sys.stderr)
    if embeddings:
        bank_from_embeddings(names, embeddings, scorer.model_facts).save(args.bank)
    windows = sum(len(e.starts) for e in embeddings)
    print(f"deepaq embed: {len(names)} files ({windows} windows) -> {args.bank if names else 'nothing written'}; "
          f"{len(errors)} failed (model {scorer.model_id} {scorer.model_version})", file=sys.stderr)
    return 1 if errors or not names else 0
