"""Turn public listening-test layouts into manifest stimuli (per-listener ratings -> means).

- ODAQ (Fraunhofer-IIS/ODAQ, Zenodo 10405774): one MUSHRA XML result file per listener
  (`<mushra><info subjectName=.../><trial trialName=...><testFile fileName=... score=.../>`),
  audio in `<audio_root>/<trialName>/`, where the file with "reference" in its name is the
  reference. Hidden reference and the low-pass anchors (lp35, lp70) are left out by default,
  as in ODAQ's own benchmark.
- SEBASS-DB (Kastner & Herre): a CSV `Testname, Listener, Trial, Condition, Ratingscore`,
  audio in `<signals>/<Condition>/<Trial>.wav`; the reference is condition `orig`, the
  anchor condition `anchor`.
- Generic per-listener MUSHRA CSV: column names and path templates are arguments; the
  defaults read webMUSHRA's `session_test_id, session_uuid, trial_id, rating_stimulus,
  rating_score` export.
"""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from deepaq.evaluation.manifest import ManifestError, Rating, Stimulus, aggregate_ratings, check_audio_files

ODAQ_ANCHORS = ("lp35", "lp70")


def _excluded(hidden_reference: bool, anchor: bool, include_hidden_reference: bool, include_anchors: bool) -> bool:
    return (hidden_reference and not include_hidden_reference) or (anchor and not include_anchors)


def _finish(ratings: list[Rating], source: Path, check_files: bool) -> list[Stimulus]:
    if not ratings:
        raise ManifestError(source, "no ratings found")
    stimuli = aggregate_ratings(ratings)
    if check_files:
        check_audio_files(stimuli, source)
    return stimuli


def _odaq_reference(trial_dir: Path, source: Path) -> Path:
    if not trial_dir.is_dir():
        raise ManifestError(source, f"trial folder {trial_dir} does not exist")
    refs = sorted(p for p in trial_dir.iterdir() if p.is_file() and "reference" in p.name.lower())
    if len(refs) != 1:
        raise ManifestError(source, f"expected one file with 'reference' in its name in {trial_dir}, found {len(refs)}")
    return refs[0]


def load_odaq(
    audio_root: str | os.PathLike,
    results_dirs: list[str | os.PathLike] | None = None,
    *,
    test: str = "ODAQ",
    split_by_method: bool = False,
    include_hidden_reference: bool = False,
    include_anchors: bool = False,
    check_files: bool = True,
) -> list[Stimulus]:
    """Read ODAQ's MUSHRA XML results (one file per listener) into mean scores per stimulus.

    `results_dirs` defaults to `audio_root` (where ODAQ keeps its XML files). With
    `split_by_method`, each method class (the trial-name prefix: LP, PE, SH, TM, UN, DE)
    becomes its own test `ODAQ-LP`, ... as in ODAQ's per-method benchmark table.
    """
    audio_root = Path(audio_root)
    dirs = [Path(d) for d in (results_dirs or [audio_root])]
    ratings: list[Rating] = []
    refs: dict[str, Path] = {}
    xml_files = [p for d in dirs for p in sorted(d.glob("*.xml"))]
    if not xml_files:
        raise ManifestError(dirs[0], "no ODAQ result XML files (*.xml) found")
    for xml_path in xml_files:
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            raise ManifestError(xml_path, f"not valid XML: {exc}") from None
        info = root.find("info")
        listener = (info.get("subjectName") if info is not None else None) or xml_path.stem
        for trial in root.iter("trial"):
            trial_name = trial.get("trialName")
            if not trial_name:
                raise ManifestError(xml_path, "a <trial> has no trialName")
            if trial_name not in refs:
                refs[trial_name] = _odaq_reference(audio_root / trial_name, xml_path)
            for test_file in trial.iter("testFile"):
                name, score = test_file.get("fileName"), test_file.get("score")
                if not name or score is None:
                    raise ManifestError(xml_path, f"trial {trial_name}: a <testFile> lacks fileName or score")
                lower = name.lower()
                if _excluded("reference" in lower, any(a in lower for a in ODAQ_ANCHORS),
                             include_hidden_reference, include_anchors):
                    continue
                try:
                    value = float(score)
                except ValueError:
                    raise ManifestError(xml_path, f"trial {trial_name}, {name}: score {score!r} is not a number") from None
                test_name = f"{test}-{trial_name.split('_')[0]}" if split_by_method else test
                ratings.append(Rating(test_name, trial_name, Path(name).stem, refs[trial_name],
                                      audio_root / trial_name / name, listener, value))
    return _finish(ratings, dirs[0], check_files)


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "")


def _column_map(fieldnames: list[str] | None, wanted: dict[str, str], source: Path) -> dict[str, str]:
    """Map our field names to the file's columns, ignoring case, spaces and underscores."""
    by_norm = {_normalise(c): c for c in fieldnames or []}
    out, missing = {}, []
    for ours, theirs in wanted.items():
        if _normalise(theirs) in by_norm:
            out[ours] = by_norm[_normalise(theirs)]
        else:
            missing.append(theirs)
    if missing:
        raise ManifestError(source, f"missing column(s) {', '.join(missing)}; found {', '.join(fieldnames or []) or 'none'}")
    return out


@dataclass(frozen=True)
class MushraLayout:
    """Where a per-listener MUSHRA CSV keeps its fields and its audio.

    Path templates are formatted with `test`, `item` and `condition` and resolved against
    the audio root. `test_column` may be None, then every row belongs to `test`.
    """

    listener_column: str = "session_uuid"
    item_column: str = "trial_id"
    condition_column: str = "rating_stimulus"
    score_column: str = "rating_score"
    test_column: str | None = "session_test_id"
    test: str = "test"
    reference_template: str = "{item}/reference.wav"
    degraded_template: str = "{item}/{condition}.wav"
    reference_conditions: tuple[str, ...] = ("reference",)
    anchor_conditions: tuple[str, ...] = field(default=("anchor35", "anchor70"))


WEBMUSHRA = MushraLayout()
SEBASS = MushraLayout(
    listener_column="Listener", item_column="Trial", condition_column="Condition",
    score_column="Ratingscore", test_column="Testname", test="SEBASS",
    reference_template="{condition_ref}/{item}.wav", degraded_template="{condition}/{item}.wav",
    reference_conditions=("orig",), anchor_conditions=("anchor",),
)


def load_mushra_csv(
    csv_path: str | os.PathLike,
    audio_root: str | os.PathLike,
    layout: MushraLayout = WEBMUSHRA,
    *,
    include_hidden_reference: bool = False,
    include_anchors: bool = False,
    check_files: bool = True,
) -> list[Stimulus]:
    """Read a per-listener MUSHRA table (one rating per row) into mean scores per stimulus."""
    csv_path, audio_root = Path(csv_path), Path(audio_root)
    if not csv_path.is_file():
        raise ManifestError(csv_path, "result table does not exist")
    wanted = {"listener": layout.listener_column, "item": layout.item_column,
              "condition": layout.condition_column, "score": layout.score_column}
    if layout.test_column:
        wanted["test"] = layout.test_column
    ratings: list[Rating] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = _column_map(reader.fieldnames, wanted, csv_path)
        for line, row in enumerate(reader, start=2):
            values = {k: (row.get(c) or "").strip() for k, c in cols.items()}
            empty = [wanted[k] for k, v in values.items() if not v]
            if empty:
                raise ManifestError(csv_path, f"line {line}: empty column(s) {', '.join(empty)}")
            condition = values["condition"]
            if _excluded(condition in layout.reference_conditions,
                         condition in layout.anchor_conditions, include_hidden_reference, include_anchors):
                continue
            try:
                score = float(values["score"])
            except ValueError:
                raise ManifestError(csv_path, f"line {line}: score {values['score']!r} is not a number") from None
            names = {"test": values.get("test", layout.test), "item": values["item"], "condition": condition,
                     "condition_ref": layout.reference_conditions[0]}
            ratings.append(Rating(names["test"], values["item"], condition,
                                  audio_root / layout.reference_template.format(**names),
                                  audio_root / layout.degraded_template.format(**names),
                                  values["listener"], score))
    return _finish(ratings, csv_path, check_files)


def load_sebass(
    ratings_csv: str | os.PathLike,
    signals_dir: str | os.PathLike,
    *,
    include_hidden_reference: bool = False,
    include_anchors: bool = False,
    check_files: bool = True,
) -> list[Stimulus]:
    """Read a SEBASS-DB rating table; audio is `<signals_dir>/<Condition>/<Trial>.wav`."""
    return load_mushra_csv(ratings_csv, signals_dir, SEBASS, include_hidden_reference=include_hidden_reference,
                           include_anchors=include_anchors, check_files=check_files)
