"""Embedding cache: window embeddings keyed by a hash of their samples and the model.

One SQLite file (`embeddings.sqlite`) in the user's cache folder, never beside the user's
data. The folder is `$DEEPAQ_CACHE_DIR` if set, else `$XDG_CACHE_HOME/deepaq`, else
`~/.cache/deepaq`. A key is the BLAKE2b hash of the model's id, version and sample rate
plus the exact float32 samples of one analysis window, so a reference scored against many
degraded files is embedded once, whichever file or array it came from, and a new model
version never reuses an old model's embeddings. SQLite's locking makes the file safe to
share between processes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np

CACHE_ENV = "DEEPAQ_CACHE_DIR"
DB_NAME = "embeddings.sqlite"


def default_cache_dir() -> Path:
    """`$DEEPAQ_CACHE_DIR`, else `$XDG_CACHE_HOME/deepaq`, else `~/.cache/deepaq`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "deepaq"


def window_key(namespace: str, samples: np.ndarray) -> bytes:
    """Hash of `namespace` (model id, version, rate) and one window's float32 samples."""
    h = hashlib.blake2b(namespace.encode(), digest_size=20)
    h.update(np.ascontiguousarray(samples, dtype=np.float32).tobytes())
    return h.digest()


class EmbeddingCache:
    """A key -> float32 vector store in one SQLite file; `folder=None` keeps nothing."""

    def __init__(self, folder: str | os.PathLike | None):
        self.path = None if folder is None else Path(folder).expanduser() / DB_NAME
        self._local = threading.local()
        self.hits = 0
        self.misses = 0

    def _db(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        db = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60)
            db.execute("CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL)")
            db.commit()
            self._local.db = db
        return db

    def get_many(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among `keys` (missing keys are simply absent)."""
        db = self._db()
        found: dict[bytes, np.ndarray] = {}
        if db is not None and keys:
            marks = ",".join("?" * len(keys))
            for key, blob in db.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", keys):
                found[bytes(key)] = np.frombuffer(blob, dtype=np.float32).copy()
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        """Store vectors (float32); an existing key is left as it is."""
        db = self._db()
        if db is None or not items:
            return
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items.items()]
        with db:
            db.executemany("INSERT OR IGNORE INTO embeddings (key, vector) VALUES (?, ?)", rows)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
