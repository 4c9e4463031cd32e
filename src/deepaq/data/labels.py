"""Weak labels: ViSQOL v3 MOS-LQO and codec bitrate, computed on an engine's workers.

Each worker process holds its own ViSQOL scorer (`visqol_scorer`), made once; the engine
(`deepaq.engine`: local processes or a Ray cluster) limits numba to one thread per worker,
so results do not depend on the thread count. `label_pairs` is `deepaq label`: score a CSV
of reference/degraded pairs, resumable by id.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from deepaq.engine import Engine, given_or_local
from deepaq.errors import ConfigError, DeepaqError

CLEAN_BITRATE = math.inf  # clean items rank above every coded bitrate
LABEL_COLUMNS = ("id", "reference", "degraded", "visqol_mos", "bitrate_kbps", "visqol_version", "error")

_scorer = None  # this process's VisqolV3, made on first use


def visqol_scorer():
    """This process's ViSQOL v3 scorer (created once, reused for every pair)."""
    global _scorer
    if _scorer is None:
        from deepaq.baselines.visqol import VisqolV3

        _scorer = VisqolV3()
    return _scorer


def item_error(exc: Exception) -> str:
    """The error text of one failed item. Bad audio, a codec or ViSQOL failure is that item's
    problem; an OSError (full disk, no permission) would fail every item, so it is raised."""
    if isinstance(exc, OSError):
        raise exc
    return str(exc) if isinstance(exc, DeepaqError) else f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- `deepaq label` on a pairs CSV


def read_pairs(pairs_csv: str | Path) -> list[dict[str, Any]]:
    """Rows of a `reference,degraded[,id][,bitrate_kbps]` CSV, paths resolved against its folder."""
    pairs_csv = Path(pairs_csv)
    if not pairs_csv.is_file():
        raise ConfigError(f"{pairs_csv}: pairs CSV not found")
    with open(pairs_csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "reference" not in header or "degraded" not in header:
            raise ConfigError(f"{pairs_csv}: the header must name 'reference' and 'degraded' columns, got {header}")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    pairs, seen = [], set()
    for line, row in enumerate(rows, start=2):
        pair_id = row.get("id") or row["degraded"]
        if pair_id in seen:
            raise ConfigError(f"{pairs_csv}: line {line}: id {pair_id!r} appears twice (ids must be unique)")
        seen.add(pair_id)
        bitrate = row.get("bitrate_kbps", "")
        try:
            bitrate = float(bitrate) if bitrate else math.nan
        except ValueError:
            raise ConfigError(f"{pairs_csv}: line {line}: bitrate_kbps {bitrate!r} is not a number") from None
        pairs.append({
            "id": pair_id,
            "reference": row["reference"],
            "degraded": row["degraded"],
            "bitrate_kbps": bitrate,
            "folder": str(pairs_csv.parent),
        })
    return pairs


def score_pair(pair: dict[str, Any]) -> dict[str, Any]:
    """One label row; a bad pair becomes a row with `error` set instead of an exception."""
    folder = Path(pair["folder"])
    row = {k: pair[k] for k in ("id", "reference", "degraded", "bitrate_kbps")}
    scorer = visqol_scorer()
    row["visqol_version"] = scorer.version
    try:
        row["visqol_mos"] = scorer.score(reference=folder / pair["reference"], degraded=folder / pair["degraded"])
        row["error"] = ""
    except Exception as exc:
        row["visqol_mos"] = math.nan
        row["error"] = item_error(exc)
    return row


def _pair_crashed(pair: dict[str, Any], why: str) -> dict[str, Any]:
    return {**{k: pair[k] for k in ("id", "reference", "degraded", "bitrate_kbps")},
            "visqol_version": "", "visqol_mos": math.nan, "error": f"{pair['degraded']}: {why}"}


def label_pairs(pairs_csv: str | Path, out_csv: str | Path, *, workers: int = 1,
                engine: Engine | None = None) -> tuple[int, int]:
    """Score every pair not already scored in `out_csv`; returns (scored now, errors in total).

    The pairs run on `engine` (default: `workers` local processes). Rows are appended to
    `out_csv` as they finish (a killed run keeps them); rows with an error are retried on the
    next run. At the end the file is rewritten in input order.
    """
    pairs = read_pairs(pairs_csv)
    out_csv = Path(out_csv)
    done = {r["id"]: r for r in _read_labels(out_csv) if not r["error"]}
    todo = [p for p in pairs if p["id"] not in done]
    _rewrite(out_csv, list(done.values()))  # drops old error rows before appending new ones
    with open(out_csv, "a", newline="", encoding="utf-8") as f, given_or_local(engine, workers) as run:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
        for _, row in run.map(score_pair, todo, desc="label", unit="pair", on_crash=_pair_crashed):
            writer.writerow(row)
            f.flush()
            os.fsync(f.fileno())
            done[row["id"]] = row
    ordered = [done[p["id"]] for p in pairs]
    _rewrite(out_csv, ordered)
    return len(todo), sum(1 for r in ordered if r["error"])


def _read_labels(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != LABEL_COLUMNS:
            raise ConfigError(f"{path}: exists but is not a `deepaq label` output; choose another -o")
        # a row cut short by a kill has missing fields: score that pair again
        return [r for r in reader if None not in r.values() and r["visqol_version"]]


def _rewrite(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
