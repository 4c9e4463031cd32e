"""Result rows as CSV or JSONL (chosen by suffix), written one flushed row at a time.

`--resume` reads the ids already in an output file and skips them; a row cut off by a
kill (no final newline) is dropped first, so a resumed file never holds a broken or a
duplicate row. Side tables (per-window scores, the NMR matrix) keep only rows of ids
that have a result row, then append, so they stay consistent with the main output.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from deepaq.errors import ConfigError, DeepaqError
from deepaq.scoring.results import ScoreResult, clean_float
from deepaq.scoring.scorer import ScoreJob
from deepaq.scoring.sources import source_name

COLUMNS = ["id", "reference", "degraded", "mode", "distance", "distance_direction", "quality",
           "quality_direction", "model_quality", "mms_2f", "model", "version", "sample_rate", "duration_s", "delay_s", "level_db", "error"]
FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


def result_row(job: ScoreJob, outcome: ScoreResult | DeepaqError, reference_label: str | None = None,
               model: tuple[str, str] | None = None) -> dict:
    """One output row for a job: the result's fields, or its error message (with `model`:
    the scorer's id and version, so error rows say which model they were meant for)."""
    ref = source_name(job.reference) if job.reference is not None else (reference_label or "")
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(id=job.id, reference=ref, degraded=source_name(job.degraded))
    if isinstance(outcome, ScoreResult):
        row.update(mode=outcome.mode, distance=clean_float(outcome.distance),
                   distance_direction=outcome.distance_direction, quality=clean_float(outcome.quality),
                   quality_direction=outcome.quality_direction if outcome.quality is not None else None,
                   model_quality=clean_float(outcome.model_quality), mms_2f=clean_float(outcome.mms_2f),
                   model=outcome.model_id, version=outcome.model_version, sample_rate=outcome.sample_rate,
                   duration_s=round(outcome.duration_s, 6), delay_s=clean_float(outcome.delay_s),
                   level_db=None if outcome.level_db is None else round(outcome.level_db, 3))
    else:
        row.update(mode="nmr" if job.reference is None else "full-reference", error=str(outcome))
        if model is not None:
            row.update(model=model[0], version=model[1])
    return row


def format_text(job: ScoreJob, result: ScoreResult, reference_label: str | None = None) -> str:
    """A short readable block for a person at a terminal: quality (when mapped), distance,
    delay, level, model and version."""
    lines = [f"degraded   {source_name(job.degraded)}"]
    if job.reference is not None:
        lines.append(f"reference  {source_name(job.reference)}")
    else:
        how = "the model's NMR head: full-reference distance predicted" if result.nmr_head else "mean distance"
        lines.append(f"reference  none: NMR against bank {reference_label!r}, {len(result.reference_distances or {})} "
                     f"clean references of other content ({how})")
    if result.mms_2f is not None:
        lines.append(f"quality    {result.quality:.3f}  ({result.quality_direction}; the network's "
                     f"{result.model_quality:.3f} mixed with the 2f-model's {result.mms_2f:.3f})")
    elif result.quality is not None:
        lines.append(f"quality    {result.quality:.3f}  ({result.quality_direction}, mapped from the distance)")
    lines.append(f"distance   {result.distance:.4f}  ({result.distance_direction})")
    if result.delay_samples is not None:
        lines.append(f"delay      {1000 * result.delay_s:+.1f} ms  ({result.delay_samples:+d} samples at "
                     f"{result.sample_rate} Hz; + = degraded behind the reference)")
        if result.delay_jumps:
            steps = ", ".join(f"{1000 * j / result.sample_rate:+.1f}" for j in result.delay_jumps)
            lines.append(f"           then jumps of {steps} ms within the pair, followed")
    if result.level_db is not None:
        lines.append(f"level      {result.level_db:+.2f} dB  (degraded re the reference; "
                     f"{'aligned before scoring' if result.level_aligned else 'scored as it is'})")
    lines.append(f"audio      {result.duration_s:.2f} s in {len(result.windows)} windows")
    lines.append(f"model      {result.model_id} {result.model_version}")
    return "\n".join(lines)


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: output must end in .csv or .jsonl")
    return fmt


def _drop_partial_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def _read_rows(path: Path, fmt: str) -> list[dict]:
    _drop_partial_line(path)
    text = path.read_text(encoding="utf-8")
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ConfigError(f"{path}: line {n} is not JSON; cannot resume this file") from None
    return rows


class Table:
    """Rows with fixed columns appended to a CSV/JSONL file (or stdout when path is None).

    `append=True` continues an existing file (whose partial last line is already dropped).
    """

    def __init__(self, path: Path | None, columns: list[str], fmt: str, *, append: bool = False):
        self.path, self.columns, self.fmt = path, columns, fmt
        if path is None:
            self.file: TextIO = sys.stdout
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a" if append else "w", encoding="utf-8", newline="")
        if fmt == "csv":
            self.writer = csv.DictWriter(self.file, fieldnames=columns, extrasaction="ignore")
            if not append:
                self.writer.writeheader()
        self.file.flush()

    def write(self, row: dict) -> None:
        if self.fmt == "csv":
            self.writer.writerow({k: "" if row.get(k) is None else row[k] for k in self.columns})
        else:
            self.file.write(json.dumps({k: row.get(k) for k in self.columns}, ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.file is not sys.stdout:
            self.file.close()


def _check_columns(path: Path, fmt: str, columns: list[str]) -> None:
    if fmt == "csv":
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if header != columns:
            raise ConfigError(f"{path}: its columns differ from this run's ({', '.join(header[:4])}, ...); "
                              "cannot resume it")


def open_results(path: str | os.PathLike | None, *, resume: bool = False, overwrite: bool = False,
                 fmt: str | None = None) -> tuple[Table, set[str]]:
    """The main output table and the ids it already holds (empty unless resuming); `fmt`
    ("csv" or "jsonl") is the stdout format, and with a path must agree with its suffix."""
    if path is None:
        if resume:
            raise ConfigError("--resume needs an output file (--out results.csv)")
        if fmt not in (None, *FORMATS.values()):
            raise ConfigError(f"stdout format must be one of {', '.join(FORMATS.values())}, got {fmt!r}")
        return Table(None, COLUMNS, fmt or "csv"), set()
    path = Path(path)
    if fmt is not None and fmt != _format(path):
        raise ConfigError(f"{path}: --format {fmt} disagrees with the file's suffix (the suffix decides)")
    fmt = _format(path)
    exists = path.exists() and path.stat().st_size > 0
    if exists and not resume and not overwrite:
        raise ConfigError(f"{path}: already exists; pass --resume to continue it or --overwrite to replace it")
    if not (exists and resume):
        return Table(path, COLUMNS, fmt), set()
    rows = _read_rows(path, fmt)
    if path.stat().st_size == 0:  # only a cut-off first line was there
        return Table(path, COLUMNS, fmt), set()
    _check_columns(path, fmt, COLUMNS)
    return Table(path, COLUMNS, fmt, append=True), {str(r.get("id")) for r in rows}


def open_side_table(path: str | os.PathLike, columns: list[str], done: set[str], *, resume: bool) -> Table:
    """A side table (first column `id`); on resume it keeps only rows of ids in `done`."""
    path = Path(path)
    fmt = _format(path)
    if not (resume and path.exists() and path.stat().st_size > 0):
        return Table(path, columns, fmt)
    keep = [r for r in _read_rows(path, fmt) if str(r.get("id")) in done]
    if path.stat().st_size:
        _check_columns(path, fmt, columns)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    table = Table(tmp, columns, fmt)
    for row in keep:
        table.write(row)
    table.close()
    os.replace(tmp, path)
    return Table(path, columns, fmt, append=True)
