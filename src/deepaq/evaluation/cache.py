"""On-disk cache of metric scores, so re-running an evaluation recomputes nothing.

Key: sha256 of the metric's identity (name, version, options) and the content hashes of
the reference and degraded files; moving or renaming audio keeps its cache entries.
Pair scores are appended to one JSON-lines file per metric (a partly written last line
from an interrupted run is ignored); FAD's per-file Gaussian statistics are .npz files.
The cache lives outside the user's data, under deepaq's cache folder (`deepaq.cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from deepaq.errors import AudioError


def default_cache_dir() -> Path:
    """`evaluation/` under deepaq's cache folder (`$DEEPAQ_CACHE_DIR`, XDG or ~/.cache/deepaq)."""
    from deepaq.cache import default_cache_dir as deepaq_cache_dir

    return deepaq_cache_dir() / "evaluation"


_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: str | Path) -> str:
    """sha256 of a file's content (memoised per path, size and modification time)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise AudioError(path, f"cannot be read ({exc.strerror})") from None
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[memo] = h.hexdigest()
    return _HASHES[memo]


def metric_identity(name: str, version: str, options: dict) -> str:
    return json.dumps({"name": name, "version": version, "options": options}, sort_keys=True)


class ScoreCache:
    """Scores keyed by metric identity and file content hashes."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self._scores: dict[str, dict[str, float]] = {}

    @staticmethod
    def key(identity: str, *file_hashes: str) -> str:
        return hashlib.sha256("\0".join((identity, *file_hashes)).encode()).hexdigest()

    def _file(self, metric: str) -> Path:
        return self.root / "scores" / f"{metric}.jsonl"

    def _table(self, metric: str) -> dict[str, float]:
        if metric not in self._scores:
            table: dict[str, float] = {}
            path = self._file(metric)
            if path.exists():
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            row = json.loads(line)
                            table[row["key"]] = float(row["score"])
                        except (ValueError, KeyError, TypeError):
                            continue  # a line cut short by an interrupted run
            self._scores[metric] = table
        return self._scores[metric]

    def get(self, metric: str, key: str) -> float | None:
        return self._table(metric).get(key)

    def put(self, metric: str, key: str, score: float) -> None:
        table = self._table(metric)
        path = self._file(metric)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:
            cut_short = False
            if f.tell() > 0:  # an interrupted run may have left a line without its newline
                f.seek(-1, os.SEEK_END)
                cut_short = f.read(1) != b"\n"
            f.write((("\n" if cut_short else "") + json.dumps({"key": key, "score": score}) + "\n").encode())
        table[key] = score

    def stats_path(self, metric: str, key: str) -> Path:
        path = self.root / "stats" / metric / f"{key}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
