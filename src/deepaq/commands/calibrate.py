"""`deepaq calibrate`: fit a mapping from DeePAQ distance to a listening-test scale."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from deepaq.commands.score import add_model_arguments, make_scorer

HELP = "fit a distance -> subjective score mapping (monotone cubic or MLP) from listening-test scores"
EXAMPLE = """deepaq calibrate listening.csv -o map.json            # CSV: reference,degraded,score
  deepaq calibrate distances.csv --kind mlp -o map.json  # CSV: distance,score
  deepaq score ref.wav deg.wav --mapping map.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("listening", type=Path,
                        help="CSV with reference,degraded,score (paths relative to it) or distance,score")
    parser.add_argument("--out", "-o", type=Path, required=True, help="mapping JSON to write")
    parser.add_argument("--kind", choices=("cubic", "mlp"), default="cubic",
                        help="monotone cubic polynomial or small monotone MLP (default: cubic)")
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
    from deepaq.scoring.inputs import jobs_from_pairs_csv
    from deepaq.scoring.results import ScoreResult

    fields, rows = _read(args.listening)
    if "score" not in fields:
        raise ConfigError(f"{args.listening}: needs a score column (and distance, or reference and degraded)")
    scores = [_number(args.listening, n + 2, "score", r["score"]) for n, r in enumerate(rows)]
    meta = {"source": args.listening.name, "kind": args.kind}
    failed = 0
    if "distance" in fields:
        distances = [_number(args.listening, n + 2, "distance", r["distance"]) for n, r in enumerate(rows)]
    elif {"reference", "degraded"} <= set(fields):
        from tqdm import tqdm

        scorer = make_scorer(args, mapping=False)
        meta.update(model=scorer.model_id, version=scorer.model_version)
        jobs = jobs_from_pairs_csv(args.listening)
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
        raise ConfigError(f"{args.listening}: needs a distance column or reference and degraded columns")
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
