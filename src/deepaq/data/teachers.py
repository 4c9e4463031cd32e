"""Teacher labels for a built dataset: PEAQ Basic (2f-model MMS, ODG, the 11 MOVs), ViSQOL v3
(audio mode), and on speech clips PESQ-WB and ViSQOL v3 speech mode.

Each item of `manifest.parquet` is scored against its clip's clean item. Results go to one
CSV per teacher beside the manifest (`teacher-peaq.csv`, `teacher-visqol.csv`), appended
as each item finishes, so a killed run loses nothing and the same command resumes; items
with an error are retried on the next run. The training dataset joins them by `item_id`
(`read_teacher_labels`); an item a teacher has not scored yet has NaN for that label.

Every teacher scores the mono downmix of each pair, which is what the built-in model sees
(ViSQOL downmixes anyway; PEAQ on the downmix costs half of PEAQ on two channels). PEAQ costs
about 1/8 of ViSQOL here, so a dataset gets its PEAQ labels first and its ViSQOL labels in the
background over as long as they take. PESQ (P.862.2, wide band, 16 kHz) is a speech metric:
it labels only clips of the corpus' speech kinds (`SPEECH_KINDS`: espeak speech, recorded
voices, telephone prompts); other items have no `pesq_wb` label. ViSQOL's speech mode
(`visqol_speech`: 16 kHz, voice-activity patches, the polynomial mapping) labels the same
clips. Items are scored clip by
clip in a seeded random order of clips, so a run stopped part-way leaves whole clips
labelled, spread over the set.
"""

from __future__ import annotations

import csv
import json
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from deepaq.engine import Engine, given_or_local
from deepaq.errors import ConfigError

TEACHERS = ("peaq", "visqol", "pesq", "visqol_speech")
SPEECH_TEACHERS = ("pesq", "visqol_speech")  # label the clips of SPEECH_KINDS only
PEAQ_COLUMNS = ("mms_2f", "odg", "distortion_index")
SPEECH_KINDS = ("speech", "voices", "phone")  # clip ids start with their corpus kind


def teacher_file(root: Path, teacher: str) -> Path:
    return Path(root) / f"teacher-{teacher}.csv"


def _columns(teacher: str) -> tuple[str, ...]:
    if teacher == "peaq":
        from deepaq.baselines.peaq import MOV_NAMES

        return ("item_id", *PEAQ_COLUMNS, *MOV_NAMES, "error")
    if teacher == "pesq":
        return ("item_id", "pesq_wb", "error")
    if teacher == "visqol_speech":
        return ("item_id", "visqol_speech", "error")
    return ("item_id", "visqol_mos", "error")


def score_item(task: tuple[str, str, str, str, str]) -> dict[str, Any]:
    """One teacher's labels of one item: `(teacher, root, item_id, reference, degraded)` -> a CSV row."""
    from deepaq.data.labels import item_error

    teacher, root, item_id, reference, degraded = task
    row: dict[str, Any] = {"item_id": item_id, "error": ""}
    try:
        ref, deg = _mono(Path(root) / reference), _mono(Path(root) / degraded)
        if teacher == "peaq":
            from deepaq.baselines.peaq import peaq

            result = peaq(reference=ref, degraded=deg)
            row.update(mms_2f=result.mms_2f, odg=result.odg, distortion_index=result.distortion_index, **result.movs)
        elif teacher == "pesq":
            row["pesq_wb"] = _pesq_wb().score(reference=ref, degraded=deg)
        elif teacher == "visqol_speech":
            row["visqol_speech"] = _visqol_speech().score(reference=ref, degraded=deg)
        else:
            from deepaq.data.labels import visqol_scorer

            row["visqol_mos"] = visqol_scorer().score(reference=ref, degraded=deg)
    except Exception as exc:
        row["error"] = item_error(exc)
    return row


@lru_cache(maxsize=1)
def _pesq_wb():
    """This process's PESQ-WB scorer, made once."""
    from deepaq.baselines.speech import Pesq

    return Pesq("wb")


@lru_cache(maxsize=1)
def _visqol_speech():
    """This process's ViSQOL speech-mode scorer (16 kHz, polynomial mapping), made once."""
    from deepaq.baselines.speech import VisqolSpeech

    return VisqolSpeech()


def _mono(path: Path) -> tuple:
    """`(downmix [1, samples], rate)` of a file, the input form PEAQ and ViSQOL take."""
    from deepaq.audio import read_audio

    x, rate = read_audio(path)
    return x.mean(axis=0, keepdims=True), rate


def label_dataset(root: str | Path, teacher: str, *, workers: int = 1, engine: Engine | None = None,
                  limit: int | None = None) -> tuple[int, int]:
    """Score every not yet labelled item of the dataset at `root` on `engine` (default: `workers`
    local processes); returns (scored now, errors now). `limit` stops after that many items."""
    if teacher not in TEACHERS:
        raise ConfigError(f"unknown teacher {teacher!r}; choose from {', '.join(TEACHERS)}")
    root = Path(root)
    items = dataset_items(root)
    clean = {r["clip_id"]: r["path"] for r in items if r["codec"] == "clean"}
    path = teacher_file(root, teacher)
    columns = _columns(teacher)
    done = {r["item_id"] for r in _read(path, columns) if not r["error"]}
    clips = sorted(clean)
    rank = {clip: k for k, clip in enumerate(np.random.default_rng(0).permutation(clips))}
    rows = sorted((r for r in items if r["item_id"] not in done and r["clip_id"] in clean
                   and (teacher not in SPEECH_TEACHERS or is_speech(r["clip_id"]))),
                  key=lambda r: (rank[r["clip_id"]], r["item_id"]))
    todo = [(teacher, str(root), r["item_id"], clean[r["clip_id"]], r["path"]) for r in rows]
    todo = todo[:limit] if limit else todo
    errors = 0
    new_file = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as f, given_or_local(engine, workers) as run:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new_file:
            writer.writeheader()
        for _, row in run.map(score_item, todo, desc=f"label {teacher}", unit="item", on_crash=_item_crashed):
            writer.writerow(row)
            f.flush()
            os.fsync(f.fileno())
            errors += bool(row["error"])
    return len(todo), errors


def _item_crashed(task: tuple[str, str, str, str, str], why: str) -> dict[str, Any]:
    return {"item_id": task[2], "error": f"{task[4]}: {why}"}


def is_speech(clip_id: str) -> bool:
    """Whether a dataset clip comes from one of the corpus' speech kinds (its id starts with the kind)."""
    return clip_id.split("-", 1)[0] in SPEECH_KINDS


def dataset_items(root: Path) -> list[dict[str, str]]:
    """item_id, clip_id, codec and path of every item: from the manifest, or, while the dataset
    is still being built, from the clips its build journal lists as finished (so labelling can
    run beside the build; the journal is only read, never repaired, as its writer may be busy)."""
    from deepaq.data.build import STATE_DIR
    from deepaq.data.manifest import read_manifest

    keys = ("item_id", "clip_id", "codec", "path")
    if (root / "manifest.parquet").exists():
        frame = read_manifest(root)
        return [dict(zip(keys, row)) for row in frame[list(keys)].astype(str).itertuples(index=False)]
    journal = root / STATE_DIR / "journal.jsonl"
    if not journal.exists():
        raise ConfigError(f"{root}: neither manifest.parquet nor a build journal: not a build-data folder")
    items = []
    with open(journal, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a record still being written
            record = json.loads(line)
            if record.get("kind") == "clip":
                items += [{k: str(row[k]) for k in keys} for row in record["rows"]]
    return items


def read_teacher_labels(root: str | Path) -> dict[str, dict[str, float]]:
    """item_id -> {label: value} of every teacher file present at `root` (error rows left out)."""
    labels: dict[str, dict[str, float]] = {}
    for teacher in TEACHERS:
        path = teacher_file(Path(root), teacher)
        for row in _read(path, _columns(teacher)):
            if row["error"]:
                continue
            values = labels.setdefault(row["item_id"], {})
            for key, value in row.items():
                if key not in ("item_id", "error"):
                    values[key] = float(value) if value else math.nan
    return labels


def clean_pairs(roots: list[Path], split: str) -> list[tuple[str, Path, Path]]:
    """`(item_id, clean item, item)` of every item of `split` in the dataset folders `roots`
    whose clip has a clean item (clean items too, against themselves), in folder and manifest
    order; an item_id in several folders (a clip's clean item) once."""
    from deepaq.data.manifest import read_manifest

    pairs: dict[str, tuple[str, Path, Path]] = {}
    for root in map(Path, roots):
        frame = read_manifest(root)
        clean = {c: root / p for c, p, f in zip(frame["clip_id"], frame["path"], frame["family"]) if f == "clean"}
        for item, clip, path, item_split in zip(frame["item_id"], frame["clip_id"], frame["path"], frame["split"]):
            if item_split == split and clip in clean:
                pairs.setdefault(item, (item, clean[clip], root / path))
    return list(pairs.values())


def teacher_pairs(roots: list[Path], label: str, split: str) -> list[tuple[str, Path, Path, float]]:
    """`clean_pairs` of the items that have a `label` from a teacher, with its value."""
    labels: dict[str, dict[str, float]] = {}
    for root in roots:
        labels.update(read_teacher_labels(root))
    pairs = [(item, clean, path, labels.get(item, {}).get(label, math.nan))
             for item, clean, path in clean_pairs(roots, split)]
    pairs = [p for p in pairs if math.isfinite(p[3])]
    if not pairs:
        raise ConfigError(f"no items of split {split!r} with a {label!r} label in {', '.join(map(str, roots))}")
    return pairs


def _read(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != columns:
            raise ConfigError(f"{path}: not a teacher-label file with columns {columns}")
        # a row cut short by a kill has missing fields: that item is scored again
        return [r for r in reader if None not in r.values()]
