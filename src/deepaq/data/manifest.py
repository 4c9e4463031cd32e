"""The weak-label dataset manifest (schema in docs/architecture.md) and the append-only journal.

`manifest.parquet` at the dataset root holds one row per item, paths relative to the root.
`bitrate_kbps` is `inf` for clean items (stored as the IEEE float infinity in Parquet, as the
text `inf` in CSV; pandas reads both back as `float("inf")`) and `NaN` for low-pass anchors
and for degradation families without a bitrate. `family` names the grid codec ("clean",
"lowpass") or the deepaq.degradations family; `params` holds its parameters as JSON.
`ladder` and `ladder_step` name the ladder (deepaq.degradations.ladders) an item is a step
of and its place on it (0 = worst); "" and -1 for other items. Manifests written before
these columns existed read back with `family` = `codec`, `params` empty and no ladders.

The journal is how long jobs resume: every finished unit of work appends one JSON line and
fsyncs it, so a killed job loses at most the units that were running. A torn last line (a
kill in the middle of a write) is dropped on the next open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from deepaq.errors import ConfigError

MANIFEST_NAME = "manifest.parquet"
COLUMNS: tuple[str, ...] = (
    "item_id",
    "clip_id",
    "source",
    "clip_start_s",
    "clip_end_s",
    "split",
    "codec",
    "bitrate_kbps",
    "family",
    "params",
    "ladder",
    "ladder_step",
    "visqol_mos",
    "path",
    "sample_rate",
    "seed",
    "codec_versions",
    "visqol_version",
)
SPLITS: tuple[str, ...] = ("train", "validation", "test")
ADDED_COLUMNS = ("family", "params", "ladder", "ladder_step")  # optional when reading: older manifests lack them


def write_manifest(rows: Iterable[dict[str, Any]], root: Path, *, csv: bool = False) -> Path:
    """Write `root/manifest.parquet` (and `manifest.csv` with `csv=True`), sorted by item_id."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    frame = frame.sort_values("item_id", kind="stable").reset_index(drop=True)
    frame["ladder"] = frame["ladder"].astype(object).fillna("")  # rows of items outside ladders may leave them out
    frame["ladder_step"] = frame["ladder_step"].fillna(-1)
    frame = frame.astype(
        {"clip_start_s": "float64", "clip_end_s": "float64", "bitrate_kbps": "float64",
         "visqol_mos": "float64", "sample_rate": "int64", "seed": "int64", "ladder_step": "int64"}
    )
    path = Path(root) / MANIFEST_NAME
    _replace_with(path, lambda tmp: frame.to_parquet(tmp, index=False))
    if csv:
        _replace_with(path.with_suffix(".csv"), lambda tmp: frame.to_csv(tmp, index=False))
    return path


def read_manifest(path: str | Path):
    """The manifest as a pandas DataFrame (a dataset folder or the .parquet/.csv file itself)."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ConfigError(f"{path}: no manifest here (run `deepaq build-data` first)")
    frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in frame.columns and c not in ADDED_COLUMNS]
    if missing:
        raise ConfigError(f"{path}: not a deepaq manifest, missing columns {missing}")
    if "family" not in frame.columns:
        frame["family"] = frame["codec"]
    frame["params"] = [v if isinstance(v, str) else "" for v in frame.get("params", [""] * len(frame))]
    if "ladder" not in frame.columns:
        frame["ladder"], frame["ladder_step"] = "", -1
    frame["ladder"] = [v if isinstance(v, str) else "" for v in frame["ladder"]]  # CSV: an empty column is NaN
    return frame


def _replace_with(path: Path, write) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place atomically."""
    tmp = path.with_name(f".{path.name}.partial")
    write(tmp)
    os.replace(tmp, path)


class Journal:
    """An append-only JSON-lines file: one record per finished unit of work, fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record, in the order written."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, allow_nan=True, default=_plain) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _drop_torn_tail(self) -> None:
        """Cut the file back to its last complete, parseable line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                json.loads(line)
            except ValueError:
                break
            good += len(line)
        if good != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the journal")

