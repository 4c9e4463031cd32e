"""`deepaq calibrate`: fit a mapping from DeePAQ distance to a listening-test scale."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from deepaq.commands.score import add_model_arguments, make_scorer

HELP = "fit a distance -> subjective score mapping (monotone cubic, MLP or quantile) from listening-test or teacher scores"
EXAMPLE = """deepaq calibrate listening.csv -o map.json            # CSV: reference,degraded,score
  deepaq calibrate distances.csv --kind mlp -o map.json  # CSV: distance,score
  deepaq calibrate --dataset work/dataset-v3 --label mms_2f --kind quantile -o map.json   # a teacher's scale
  deepaq score ref.wav deg.wav --mapping map.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("listening", type=Path, nargs="?",
                        help="CSV with reference,degraded,score (paths relative to it) or distance,score")
    parser.add_argument("--dataset", metavar="DIR[,DIR]",
                        help="instead of a CSV: dataset folders (deepaq build-data + deepaq label); their items "
                             "are scored against their clean items and mapped onto a teacher's label")
    parser.add_argument("--label", default="mms_2f", help="--dataset: the teacher label to map onto (default mms_2f)")
    parser.add_argument("--split", default="validation", help="--dataset: the split used (default validation)")
    parser.add_argument("--out", "-o", type=Path, required=True, help="mapping JSON to write")
    parser.add_argument("--kind", choices=("cubic", "mlp", "quantile"), default="cubic",
                        help="monotone cubic polynomial, small monotone MLP, or quantile matching (keeps the ends of the scale; default: cubic)")
    add_model_arguments(parser)


def _read(path: Path) -> tuple[list[str], list[dict]]:
    from deepaq.errors import ConfigError

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
            return [c.strip() for c in reader.fieldnames or []], rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None


def _dataset_rows(args: argparse.Namespace) -> tuple[list[str], list[dict]]:
    """--dataset: one row per labelled item of the split, as a listening-test CSV would give."""
    from deepaq.data.teachers import teacher_pairs

    pairs = teacher_pairs([Path(p) for p in args.dataset.split(",") if p], args.label, args.split)
    return ["id", "reference", "degraded", "score"], [
        {"id": item, "reference": clean, "degraded": path, "score": str(value)} for item, clean, path, value in pairs]


def _number(path: Path, row: int, column: str, text: str) -> float:
    from deepaq.errors import ConfigError

    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{path}: row {row}: {column} {text!r} is not a number") from None


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    from deepaq.errors import ConfigError
    from deepaq.mapping import fit_mapping
    from deepaq.scoring import ScoreJob
    from deepaq.scoring.inputs import jobs_from_pairs_csv
    from deepaq.scoring.results import ScoreResult

    if (args.listening is None) == (args.dataset is None):
        raise ConfigError("give one of a listening-test CSV and --dataset")
    source = args.listening or Path(args.dataset)  # what error messages name
    if args.dataset is not None:
        fields, rows = _dataset_rows(args)
    else:
        fields, rows = _read(args.listening)
    if "score" not in fields:
        raise ConfigError(f"{source}: needs a score column (and distance, or reference and degraded)")
    scores = [_number(source, n + 2, "score", r["score"]) for n, r in enumerate(rows)]
    meta = {"source": args.listening.name if args.listening else f"{args.dataset} ({args.split}, {args.label})",
            "kind": args.kind}
    failed = 0
    if "distance" in fields:
        distances = [_number(source, n + 2, "distance", r["distance"]) for n, r in enumerate(rows)]
    elif {"reference", "degraded"} <= set(fields):
        from tqdm import tqdm

        scorer = make_scorer(args, mapping=False)
        meta.update(model=scorer.model_id, version=scorer.model_version)
        jobs = [ScoreJob(r["id"], degraded=r["degraded"], reference=r["reference"]) for r in rows] \
            if args.dataset else jobs_from_pairs_csv(args.listening)
        distances = []
        for job, outcome in tqdm(scorer.iter_scores(jobs), total=len(jobs), unit="pair", desc="scoring",
                                 file=sys.stderr, disable=None):
            if isinstance(outcome, ScoreResult):
                distances.append(outcome.distance)
            else:
                failed += 1
                distances.append(float("nan"))
                print(f"error: {job.id}: {outcome} (left out of the fit)", file=sys.stderr)
    else:
        raise ConfigError(f"{source}: needs a distance column or reference and degraded columns")
    x, y = np.asarray(distances), np.asarray(scores)
    ok = np.isfinite(x) & np.isfinite(y)
    mapping = fit_mapping(x[ok], y[ok], kind=args.kind)
    mapped = mapping(x[ok])
    stats = {"n": int(ok.sum()),
             "pcc_raw": float(pearsonr(x[ok], y[ok]).statistic), "srcc_raw": float(spearmanr(x[ok], y[ok]).statistic),
             "pcc_mapped": float(pearsonr(mapped, y[ok]).statistic),
             "srcc_mapped": float(spearmanr(mapped, y[ok]).statistic),
             "rmse_mapped": float(np.sqrt(np.mean((mapped - y[ok]) ** 2)))}
    mapping.meta = {**meta, **stats}
    mapping.save(args.out)
    print(f"{args.kind} mapping fitted on {stats['n']} items -> {args.out}")
    print(f"  raw distance: PCC {stats['pcc_raw']:+.3f}  SRCC {stats['srcc_raw']:+.3f}")
    print(f"  mapped:       PCC {stats['pcc_mapped']:+.3f}  SRCC {stats['srcc_mapped']:+.3f}  "
          f"RMSE {stats['rmse_mapped']:.3f}")
    return 1 if failed else 0
