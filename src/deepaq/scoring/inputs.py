"""Batch inputs: ViSQOL-style pairs CSV, paired folders and lists of files, as ScoreJobs.

Pairs CSV: header `reference,degraded` (ViSQOL's batch format) and an optional `id`
column; relative paths are relative to the CSV's folder. For NMR only `degraded` is needed.
Without an `id` column the id is the degraded path as written (made unique with `#2`, `#3`).
A row with a missing path becomes a job that fails with a clear message, so the batch goes on.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

from deepaq.errors import ConfigError
from deepaq.scoring.scorer import AUDIO_SUFFIXES, ScoreJob, list_audio


def _unique(ids: list[str]) -> list[str]:
    seen: Counter = Counter()
    out = []
    for i in ids:
        seen[i] += 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out


def jobs_from_pairs_csv(path: str | os.PathLike, *, nmr: bool = False) -> list[ScoreJob]:
    """Jobs from a pairs CSV (see module docstring); `nmr` needs only a `degraded` column."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read the pairs CSV ({exc})") from None
    needed = ["degraded"] if nmr else ["reference", "degraded"]
    missing = [c for c in needed if c not in fields]
    if missing:
        raise ConfigError(f"{path}: the pairs CSV needs a header with {', '.join(needed)} "
                          f"(missing {', '.join(missing)}; found {', '.join(fields) or 'nothing'})")
    if "id" in fields:
        given = [r["id"] for r in rows]
        dup = sorted(i for i, n in Counter(given).items() if n > 1)
        if dup:
            raise ConfigError(f"{path}: duplicate ids {', '.join(dup[:5])}")
        ids = [i or f"row{n + 2}" for n, i in enumerate(given)]
    else:
        ids = _unique([r["degraded"] or f"row{n + 2}" for n, r in enumerate(rows)])
    base = path.parent
    jobs = []
    for n, (row, job_id) in enumerate(zip(rows, ids)):
        empty = [c for c in needed if not row.get(c)]
        problem = f"{path}: row {n + 2} has no {' or '.join(empty)} path" if empty else None
        reference = None if nmr else (base / row["reference"] if row["reference"] else "")
        jobs.append(ScoreJob(job_id, degraded=base / row["degraded"], reference=reference, problem=problem))
    return jobs


def _match_reference(ref_dir: Path, rel: Path) -> Path:
    exact = ref_dir / rel
    if exact.exists():
        return exact
    same_stem = [p for p in exact.parent.glob(f"{exact.stem}.*") if p.suffix.lower() in AUDIO_SUFFIXES] \
        if exact.parent.is_dir() else []
    return same_stem[0] if len(same_stem) == 1 else exact


def jobs_from_dirs(ref_dir: str | os.PathLike, deg_dir: str | os.PathLike) -> list[ScoreJob]:
    """One job per audio file under `deg_dir`, paired with the file at the same relative path
    under `ref_dir` (or the one file there with the same name and another audio suffix)."""
    ref_dir, deg_dir = Path(ref_dir), Path(deg_dir)
    if not ref_dir.is_dir():
        raise ConfigError(f"{ref_dir}: reference folder not found")
    files = list_audio(deg_dir)
    if not files:
        raise ConfigError(f"{deg_dir}: no audio files found")
    jobs = []
    for deg in files:
        rel = deg.relative_to(deg_dir)
        ref = _match_reference(ref_dir, rel)
        problem = None if ref.exists() else f"{deg}: no reference {ref} in {ref_dir}"
        jobs.append(ScoreJob(rel.as_posix(), degraded=deg, reference=ref, problem=problem))
    return jobs


def jobs_from_paths(paths: list[str | os.PathLike]) -> list[ScoreJob]:
    """NMR jobs from files and folders (every audio file under a folder, id = relative path)."""
    jobs = []
    for p in map(Path, paths):
        if p.is_dir():
            jobs += [ScoreJob(f.relative_to(p).as_posix(), degraded=f) for f in list_audio(p)]
        else:
            jobs.append(ScoreJob(str(p), degraded=p))
    ids = _unique([j.id for j in jobs])
    return [ScoreJob(i, j.degraded, j.reference, j.problem) for i, j in zip(ids, jobs)]
