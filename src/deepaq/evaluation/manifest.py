"""Listening-test manifests: one row per rated stimulus (plain CSV, paths relative to it).

Columns: `test, item, condition, reference, degraded, score`, optional `ci` and
`n_listeners`. A file with a `listener` column holds one rating per row; those rows are
averaged per (test, item, condition) on load, and `ci` becomes the 95 % t-interval half-width.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from scipy import stats

from deepaq.errors import ConfigError

REQUIRED_COLUMNS = ("test", "item", "condition", "reference", "degraded", "score")
OPTIONAL_COLUMNS = ("ci", "n_listeners")


class ManifestError(ConfigError):
    """A listening-test manifest or result table that cannot be used."""

    def __init__(self, source: str | Path, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


@dataclass(frozen=True)
class Stimulus:
    """One rated stimulus: a degraded signal, its reference and its mean subjective score."""

    test: str
    item: str
    condition: str
    reference: Path
    degraded: Path
    score: float
    ci: float | None = None
    n_listeners: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.test, self.item, self.condition)


@dataclass(frozen=True)
class Rating:
    """One listener's rating of one stimulus (what loaders of raw result tables produce)."""

    test: str
    item: str
    condition: str
    reference: Path
    degraded: Path
    listener: str
    score: float


def aggregate_ratings(ratings: Iterable[Rating]) -> list[Stimulus]:
    """Mean score per (test, item, condition), with listener count and 95 % CI half-width."""
    groups: dict[tuple[str, str, str], list[Rating]] = defaultdict(list)
    for r in ratings:
        groups[(r.test, r.item, r.condition)].append(r)
    out = []
    for (test, item, condition), rows in groups.items():
        scores = np.array([r.score for r in rows], dtype=float)
        n = len(scores)
        ci = None
        if n > 1:
            ci = float(stats.t.ppf(0.975, n - 1) * scores.std(ddof=1) / math.sqrt(n))
        out.append(
            Stimulus(test, item, condition, rows[0].reference, rows[0].degraded,
                     float(scores.mean()), ci, n)
        )
    return out


def _float(value: str, path: Path, line: int, column: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ManifestError(path, f"line {line}: column '{column}' is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise ManifestError(path, f"line {line}: column '{column}' is not finite: {value!r}")
    return x


def read_manifest(path: str | os.PathLike, *, check_files: bool = True) -> list[Stimulus]:
    """Read a manifest CSV; paths are resolved against the manifest's folder.

    Raises `ManifestError` for missing columns, empty or non-numeric scores, duplicate
    stimuli and (with `check_files`) audio files that do not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, "manifest file does not exist")
    base = path.parent
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ManifestError(path, f"missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}")
        per_listener = "listener" in columns
        ratings: list[Rating] = []
        stimuli: list[Stimulus] = []
        for line, row in enumerate(reader, start=2):
            for c in ("test", "item", "condition", "reference", "degraded", "score"):
                if not (row.get(c) or "").strip():
                    raise ManifestError(path, f"line {line}: column '{c}' is empty")
            score = _float(row["score"], path, line, "score")
            ref = base / row["reference"].strip()
            deg = base / row["degraded"].strip()
            names = (row["test"].strip(), row["item"].strip(), row["condition"].strip())
            if per_listener:
                ratings.append(Rating(*names, ref, deg, (row["listener"] or "").strip(), score))
                continue
            ci = _float(row["ci"], path, line, "ci") if (row.get("ci") or "").strip() else None
            n = int(_float(row["n_listeners"], path, line, "n_listeners")) if (row.get("n_listeners") or "").strip() else None
            stimuli.append(Stimulus(*names, ref, deg, score, ci, n))
    if per_listener:
        stimuli = aggregate_ratings(ratings)
    if not stimuli:
        raise ManifestError(path, "has no rows")
    seen: set[tuple[str, str, str]] = set()
    for s in stimuli:
        if s.key in seen:
            raise ManifestError(path, f"stimulus {'/'.join(s.key)} appears twice (add a 'listener' column for per-listener rows)")
        seen.add(s.key)
    if check_files:
        check_audio_files(stimuli, path)
    return stimuli


def check_audio_files(stimuli: Iterable[Stimulus], source: str | Path) -> None:
    """Raise `ManifestError` listing (up to five of) the audio files that do not exist."""
    missing = sorted({str(p) for s in stimuli for p in (s.reference, s.degraded) if not p.is_file()})
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ManifestError(source, f"{len(missing)} audio file(s) do not exist: {shown}")


def write_manifest(path: str | os.PathLike, stimuli: Iterable[Stimulus]) -> Path:
    """Write stimuli as a manifest CSV with paths relative to its folder (absolute if impossible)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()

    def rel(p: Path) -> str:
        try:
            return os.path.relpath(Path(p).resolve(), base)
        except ValueError:  # another drive on Windows
            return str(Path(p).resolve())

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        for s in stimuli:
            w.writerow([s.test, s.item, s.condition, rel(s.reference), rel(s.degraded), repr(s.score),
                        "" if s.ci is None else repr(s.ci), "" if s.n_listeners is None else s.n_listeners])
    return path

