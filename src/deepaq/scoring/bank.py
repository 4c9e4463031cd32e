"""Embedding banks: the window embeddings of a set of audio files, saved as safetensors.

A bank serves as the clean reference set of non-matching-reference (NMR) scoring and is
what `deepaq embed DIR --bank bank.safetensors` writes. Tensors:

    window_embeddings [W, D] float32   one row per analysis window (and channel)
    window_owner      [W]    int64     index of the file the window belongs to
    window_start      [W]    int64     first sample of the window (at the model's rate)
    window_weight     [W]    float32   pooling weight in samples (see scoring.windows)
    file_embeddings   [F, D] float32   per file: weighted mean of its window embeddings

The safetensors metadata holds `names` (JSON list of the F file names) and the model's
id, version, weights hash, sample rate and window settings, checked against the scorer
that uses it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from deepaq.errors import ConfigError

FORMAT = "deepaq-embedding-bank"
BANK_FILE = "bank.safetensors"  # a model's default NMR bank, beside its weights


@dataclass
class EmbeddingBank:
    """Window embeddings of F files; `model` holds the id, version, rate and windows used."""

    names: list[str]
    window_embeddings: np.ndarray
    window_owner: np.ndarray
    window_start: np.ndarray
    window_weight: np.ndarray
    model: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def file_embeddings(self) -> np.ndarray:
        """`[F, D]`: each file's window embeddings averaged with their pooling weights."""
        f, d = len(self.names), self.window_embeddings.shape[1]
        sums = np.zeros((f, d))
        np.add.at(sums, self.window_owner, self.window_embeddings * self.window_weight[:, None])
        totals = np.bincount(self.window_owner, weights=self.window_weight, minlength=f)
        return (sums / totals[:, None]).astype(np.float32)

    @cached_property
    def fingerprint(self) -> str:
        """A short content hash of the window embeddings (what a cached NMR score depends on)."""
        import hashlib

        return hashlib.sha256(np.ascontiguousarray(self.window_embeddings).tobytes()).hexdigest()[:16]

    @cached_property
    def owner_weights(self) -> np.ndarray:
        """`[W, F]`: column f averages a per-window quantity over file f's windows."""
        w = np.zeros((len(self.window_owner), len(self.names)))
        w[np.arange(len(self.window_owner)), self.window_owner] = self.window_weight
        return w / w.sum(axis=0, keepdims=True)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank atomically (temporary name, then rename)."""
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            "window_embeddings": np.ascontiguousarray(self.window_embeddings, dtype=np.float32),
            "window_owner": np.ascontiguousarray(self.window_owner, dtype=np.int64),
            "window_start": np.ascontiguousarray(self.window_start, dtype=np.int64),
            "window_weight": np.ascontiguousarray(self.window_weight, dtype=np.float32),
            "file_embeddings": self.file_embeddings,
        }
        meta = {"format": FORMAT, "names": json.dumps(self.names), "model": json.dumps(self.model)}
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EmbeddingBank":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: embedding bank not found")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ConfigError(f"{path}: not a deepaq embedding bank (written by `deepaq embed --bank`)")
                t = {k: f.get_tensor(k) for k in ("window_embeddings", "window_owner", "window_start",
                                                  "window_weight")}
            names = json.loads(meta["names"])
            model = json.loads(meta.get("model", "{}"))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{path}: unreadable embedding bank ({exc})") from None
        if not names or len(t["window_owner"]) == 0:
            raise ConfigError(f"{path}: the embedding bank is empty")
        return cls(names, t["window_embeddings"], t["window_owner"], t["window_start"], t["window_weight"], model)

    def check_model(self, model: dict, source: str) -> None:
        """Raise ConfigError when the bank was made with another model or window setting."""
        diffs = [k for k in ("model_id", "version", "weights", "sample_rate", "window", "hop")
                 if k in self.model and self.model.get(k) != model.get(k)]
        if diffs:
            detail = ", ".join(f"{k} {self.model.get(k)!r} vs {model.get(k)!r}" for k in diffs)
            raise ConfigError(f"{source}: embedding bank made with another model or windows ({detail}); "
                              "rebuild it with `deepaq embed --bank` and this model")
