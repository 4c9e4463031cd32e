"""Choosing the fusion: every candidate form (average, or soft maximum at a temperature) and
weight of the 2f-model in the full-reference quality (`deepaq.scoring.fusion`), for every
seed of the recipe, beside the baselines, and the candidate chosen by leave one test out, in
one run of bench_listening.py.

    python benchmarks/bench_fusion.py --seed s1=src/deepaq/weights/deepaq-compact \\
        --seed s0=work/runs/compact-0.6-seed0/checkpoints/best --seed s2=work/runs/compact-0.6-seed2/checkpoints/best

Without `--seed`: the shipped model alone. Each seed folder needs its own `mapping.json` (`deepaq calibrate --dataset ... --kind quantile`).
For each seed, temperature and weight a candidate folder is made in a temporary folder (links
to the weights and the mapping, a `fusion.json`); the candidates are named `wW-tT/SEED`
(`tavg`: the average), so `--loto` scores each candidate by its mean over the seeds.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from deepaq.models.checkpoint import resolve_model_folder
from deepaq.scoring import DEFAULT_MODEL
from deepaq.scoring.fusion import FILE_NAME, Fusion

WEIGHTS = (0.0, 0.4, 0.6, 0.65, 0.7, 0.8, 0.9)
TEMPERATURES = ("avg", "10")  # avg: the weighted average; a number: the soft maximum at that temperature


def candidate(folder: Path, out: Path, fusion: Fusion) -> Path:
    out.mkdir(parents=True)
    for f in folder.iterdir():
        if f.name in ("config.json", "mapping.json") or f.suffix == ".safetensors":
            (out / f.name).symlink_to(f.resolve())
    fusion.save(out / FILE_NAME)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", action="append", metavar="NAME=FOLDER",
                        help="a trained model folder with its mapping.json (repeatable: one per seed; "
                             "default: the shipped model)")
    parser.add_argument("--weights", default=",".join(map(str, WEIGHTS)), help="candidate 2f weights")
    parser.add_argument("--temperatures", default=",".join(TEMPERATURES),
                        help="candidate forms: avg (weighted average) or soft-maximum temperatures in quality points")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args, rest = parser.parse_known_args()
    weights = [float(w) for w in args.weights.split(",")]
    candidates = [(f"w{w:g}-t{t}", Fusion(w, None if t == "avg" else float(t)))
                  for t in args.temperatures.split(",") for w in weights]
    tmp = Path(tempfile.mkdtemp(prefix="deepaq-fusion-"))
    try:
        models = []
        for item in args.seed or [f"shipped={resolve_model_folder(DEFAULT_MODEL)}"]:
            name, _, folder = item.partition("=")
            if not (Path(folder) / "mapping.json").is_file():
                print(f"{folder}: no mapping.json (deepaq calibrate --kind quantile first)", file=sys.stderr)
                return 1
            for label, fusion in candidates:
                path = candidate(Path(folder), tmp / f"{label}-{name}", fusion)
                models += ["--model", f"{label}/{name}={path}"]
        loto = ",".join(label for label, _ in candidates)
        cmd = [sys.executable, str(Path(__file__).with_name("bench_listening.py")), *models, "--loto", loto,
               "--bootstrap", str(args.bootstrap), *rest]
        return subprocess.call(cmd)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
