"""The single `deepaq` entry point (also `python -m deepaq`).

Each verb lives in its own module under `deepaq.commands`, imported only when that verb
runs, so `deepaq --help` stays fast and a verb never pays for another verb's imports
(torch, transformers, ViSQOL). A verb module defines:

    HELP: str                  one line for `deepaq --help`
    EXAMPLE: str               shown at the end of `deepaq VERB --help`
    add_arguments(parser)      fills the verb's argparse parser
    run(args) -> int           does the work, returns the exit code
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path
from typing import Sequence

from deepaq.errors import DeepaqError

# verb -> module under deepaq.commands; the order is the order of `deepaq --help`.
VERBS: dict[str, str] = {
    "score": "score",
    "embed": "embed",
    "calibrate": "calibrate",
    "peaq": "peaq",
    "evaluate": "evaluate",
    "demo": "demo",
    "degrade": "degrade",
    "build-corpus": "build_corpus",
    "build-data": "build_data",
    "label": "label",
    "train": "train",
    "fit-nmr": "fit_nmr",
}


# top-level module -> the extra (pyproject.toml) that installs it
OPTIONAL_MODULES = {"torch": "train", "transformers": "train", "peft": "train", "pandas": "train",
                    "pyarrow": "train", "tensorboard": "train", "music21": "train", "mido": "train",
                    "matplotlib": "plots", "visqol": "baselines", "numba": "baselines", "pesq": "baselines",
                    "pystoi": "baselines", "ray": "cluster"}


def _verb_module(verb: str):
    return importlib.import_module(f"deepaq.commands.{VERBS[verb]}")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the chosen verb's module is imported and filled in."""
    parser = argparse.ArgumentParser(
        prog="deepaq",
        description="Perceptual audio quality: DeePAQ and classic baselines.",
    )
    from deepaq import __version__

    parser.add_argument("--version", action="version", version=f"deepaq {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERBS:
        if name == verb:
            module = _verb_module(name)
            verb_parser = sub.add_parser(
                name,
                help=module.HELP,
                description=module.HELP,
                epilog=f"example:\n  {module.EXAMPLE}",
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            module.add_arguments(verb_parser)
        else:
            sub.add_parser(name, help=_short_help(name), add_help=False)
    return parser


def _short_help(verb: str) -> str:
    try:
        return _verb_module(verb).HELP
    except ImportError as exc:  # a verb whose optional extra is not installed
        return f"(unavailable: {exc})"


_PACKAGE = Path(__file__).resolve().parent
_python_warning = warnings.formatwarning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """deepaq's own warnings (they name the file they are about) as one line, without the
    source line that raised them; other libraries' warnings as Python shows them."""
    if Path(filename).resolve().is_relative_to(_PACKAGE):
        return f"deepaq: warning: {message}\n"
    return _python_warning(message, category, filename, lineno, line)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given, for reports that record it
    if args.verb is None:
        parser.print_help()
        return 2
    warnings.formatwarning = _one_line_warning
    try:
        return int(_verb_module(args.verb).run(args) or 0)
    except DeepaqError as exc:
        print(f"deepaq {args.verb}: error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:  # an optional dependency the core install leaves out
        extra = OPTIONAL_MODULES.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"deepaq {args.verb}: error: this needs {exc.name}, which the core install leaves out: "
              f"pip install 'deepaq[{extra}]'", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepaq {args.verb}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = _python_warning


if __name__ == "__main__":
    sys.exit(main())
