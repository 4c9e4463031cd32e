"""The Scorer: load a DeePAQ model once, then score or embed any number of signals.

Full reference (FR): both signals are loaded at the model's rate (mono by default),
aligned (`deepaq.audio.align_pair` on the first minute), cut into the model's windows
(overlapping by the model's `window_overlap`, 50 % unless its config says otherwise) and
embedded; each window's distance is the L2 distance between the embeddings of the
reference and degraded window, and the item's distance is the mean of the window distances
weighted by `pooling_weights` (every second of audio counts the same). Averaging
distances, not embeddings, keeps DeePAQ's definition for every window the network sees at
its training length, cannot let differences in different windows cancel out, and makes the
per-window scores add up to the item's score.

Non-matching reference (NMR): the degraded signal's windows are compared with every window
of a bank of clean references of other content; the distance to one reference is the
weighted mean over both sets of windows (`reference_distances`). A model that ships an NMR
head (`deepaq.models.nmr_head`) turns each window's embedding and its distances to the bank
into the full-reference distance it predicts for the window, and the item's distance is
their weighted mean, on the full-reference scale; without a head it is the mean over the
references, as in the paper.

With `mono=False` each channel is embedded on its own and channel distances are averaged.

A model that ships `fusion.json` (`deepaq.scoring.fusion`) reports as its full-reference
`quality` the mean of its mapped distance and the 2f-model's MMS of the same aligned pair,
weighted as the file says; `model_quality` and `mms_2f` keep both parts, and window
qualities are the network's alone.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from deepaq.audio import AudioSource
from deepaq.cache import EmbeddingCache, default_cache_dir, window_key
from deepaq.errors import AudioError, ConfigError, DeepaqError
from deepaq.mapping import Mapping
from deepaq.models.distance import model_distance
from deepaq.scoring.bank import BANK_FILE, EmbeddingBank
from deepaq.scoring.fusion import FILE_NAME as FUSION_FILE
from deepaq.scoring.fusion import Fusion, TwofMeter
from deepaq.scoring.results import FULL_REFERENCE, NMR, Embedding, ScoreResult, WindowScore
from deepaq.scoring.sources import STREAM_ABOVE_S, aligned_chunks, audio_chunks, source_name
from deepaq.scoring.windows import Windower, WindowSpec

DEFAULT_MODEL = "deepaq-compact"
BACKENDS = ("auto", "numpy", "torch")
DEFAULT_WINDOW_S = 5.0  # when a checkpoint does not declare its window
DEFAULT_OVERLAP = 0.5  # when a checkpoint does not declare its window overlap
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".ac3", ".mp2", ".wma")


@dataclass(frozen=True)
class ScoreJob:
    """One item of a batch: `reference=None` means NMR against the batch's reference bank."""

    id: str
    degraded: AudioSource
    reference: AudioSource | None = None
    problem: str | None = None  # a fault found while reading the batch list, reported as its error


def list_audio(folder: str | os.PathLike) -> list[Path]:
    """Audio files under `folder` (recursive, by suffix), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


class Scorer:
    """A loaded model with its windows, mapping and embedding cache.

    `model`: a shipped model name, a checkpoint folder, or a loaded `DeepaqNet`.
    `mapping`: None uses the model folder's `mapping.json` when it ships one; a path or a
    `Mapping` uses that; False reports distances only.
    `cache_dir`: None uses `deepaq.cache.default_cache_dir()`; False disables the cache.
    `nmr_bank`: default reference set for NMR (see `load_bank`).
    `overlap`: window overlap fraction; None uses the model's `window_overlap` (else 0.5).
    `keep_memory`: keep freed memory in the process for the next item (`deepaq.memory`: no
    page faults on fresh arrays, up to ~25 % faster per pair here); False leaves malloc alone.
    `backend`: "numpy" runs the model in plain numpy (no torch; the compact backbone),
    "torch" in torch (any backbone, any device; needs deepaq[train]), "auto" numpy where it
    can run the model on the CPU, else torch. Both give the same embeddings (to 1e-5).
    `threads`: threads of the maths libraries in this process (`deepaq.threads`; None: 1,
    which keeps a busy core from slowing scoring down; 0: the libraries' defaults).
    `align_level`: scale the degraded signal to the reference's level before scoring (full
    reference; the default, chosen on the listening tests: docs/scoring.md); either way each
    result reports the level difference (`level_db`).
    `follow_delay`: follow the delay where it jumps within a pair (a jitter buffer, a cut, an
    inserted gap; `deepaq.audio.follow_delay`), each jump reported in `delay_jumps`; False
    keeps the one delay found at the start.
    `fusion`: mix the 2f-model's MMS into the full-reference quality as the model folder's
    `fusion.json` says (when it ships one and a mapping is in use); False: the network alone.
    """

    def __init__(self, model: Any = DEFAULT_MODEL, *, device: str = "cpu", mapping: Any = None,
                 cache_dir: str | os.PathLike | None | bool = None, batch_size: int = 8, workers: int = 0,
                 overlap: float | None = None, mono: bool = True, max_delay_s: float = 1.0, min_seconds: float = 1.0,
                 nmr_bank: Any = None, stream_above_s: float = STREAM_ABOVE_S, keep_memory: bool = True,
                 backend: str = "auto", threads: int | None = None, align_level: bool = True,
                 follow_delay: bool = True, fusion: bool = True):
        from deepaq.memory import keep_freed_memory
        from deepaq.models.checkpoint import weights_hash
        from deepaq.threads import set_threads

        self.model, self.model_folder, self.backend = load_engine(model, backend, device)
        set_threads(threads)  # after loading: torch's pool exists once torch is imported
        if keep_memory:
            keep_freed_memory()
        self.device = device
        info = self.model.info
        self.model_id = str(info.get("model_id") or "deepaq")
        self.model_version = str(info.get("version") or "0")
        self.distance = model_distance(self.model)  # L2, L1 or over regions, between embeddings
        self.sample_rate = int(self.model.sample_rate)
        window_s = float(info.get("window_seconds") or DEFAULT_WINDOW_S)
        if overlap is None:
            overlap = float(info.get("window_overlap", DEFAULT_OVERLAP))
        self.spec = WindowSpec.from_seconds(window_s, self.sample_rate, overlap, min_seconds)
        self.mono = mono
        self.max_delay_s = max_delay_s
        self.align_level = bool(align_level)
        self.follow_delay = bool(follow_delay)
        self.batch_size = max(1, int(batch_size))
        self.workers = max(0, int(workers))
        self.stream_above_s = stream_above_s
        self.mapping = self._resolve_mapping(mapping)
        self.fusion = _load_fusion(self.model_folder) if fusion and self.mapping is not None else None
        folder = default_cache_dir() if cache_dir is None else (None if cache_dir is False else cache_dir)
        self.cache = EmbeddingCache(folder)
        self.weights_hash = "unsaved" if self.model_folder is None else weights_hash(self.model_folder)
        self._namespace = f"{self.model_id}|{self.model_version}|{self.weights_hash}|{self.sample_rate}"
        self._banks: dict[str, EmbeddingBank] = {}
        self.nmr_bank = nmr_bank
        self.nmr_head = _load_nmr_head(self.model_folder)

    @property
    def model_facts(self) -> dict:
        """Model id, version, weights hash, rate and window settings (stored in banks, checked on use)."""
        return {"model_id": self.model_id, "version": self.model_version, "weights": self.weights_hash,
                "sample_rate": self.sample_rate, "window": self.spec.length, "hop": self.spec.hop}

    def _resolve_mapping(self, mapping: Any) -> Mapping | None:
        if mapping is False:
            return None
        if mapping is None:
            shipped = self.model_folder / "mapping.json" if self.model_folder else None
            return Mapping.load(shipped) if shipped is not None and shipped.is_file() else None
        return mapping if isinstance(mapping, Mapping) else Mapping.load(mapping)

    # ---- embedding -------------------------------------------------------------------

    def _embed_rows(self, rows: np.ndarray) -> np.ndarray:
        """`[N, L]` windows -> `[N, D]` embeddings, through the cache when there is one."""
        if self.cache.path is None:  # no cache: no keys to hash
            return self._run_model(rows)
        keys = [window_key(self._namespace, row) for row in rows]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            new = dict(zip(todo, self._run_model(rows[[first[k] for k in todo]])))
            self.cache.put_many(new)
            found.update(new)
        return np.stack([found[k] for k in keys])

    def _run_model(self, rows: np.ndarray) -> np.ndarray:
        if self.backend == "numpy":
            return self.model.embed(rows)
        import torch

        x = torch.from_numpy(np.ascontiguousarray(rows)).to(self.device)
        with torch.inference_mode():
            return self.model.embed(x).float().cpu().numpy()

    def _embed_batch(self, windows: np.ndarray) -> np.ndarray:
        """`[B, C, L]` -> `[B, C, D]`."""
        b, c, n = windows.shape
        return self._embed_rows(windows.reshape(b * c, n)).reshape(b, c, -1)

    def _windows_per_batch(self, channels: int) -> int:
        return max(1, self.batch_size // channels)

    def embed(self, audio: AudioSource) -> Embedding:
        """Embeddings of one signal (path or `(array, sample_rate)`), per window and pooled."""
        return self._embed_chunks(audio_chunks(audio, self.sample_rate, mono=self.mono,
                                               stream_above_s=self.stream_above_s), source_name(audio))

    def _embed_chunks(self, chunks: Iterator[np.ndarray], name: str) -> Embedding:
        first = next(chunks)
        windower = Windower(self.spec, name)
        parts = [self._embed_batch(b) for b in windower.batches(itertools.chain([first], chunks),
                                                                 self._windows_per_batch(first.shape[0]))]
        return Embedding(np.concatenate(parts), np.asarray(windower.starts), windower.weights(),
                         self.sample_rate, windower.total / self.sample_rate)

    def make_bank(self, sources: Iterable[AudioSource], names: list[str] | None = None) -> EmbeddingBank:
        """Embed every source into an `EmbeddingBank` (the first bad file raises)."""
        sources = list(sources)
        names = names or [source_name(s) for s in sources]
        embeddings = [self.embed(s) for s in sources]
        return bank_from_embeddings(names, embeddings, self.model_facts)

    def load_bank(self, spec: Any) -> EmbeddingBank:
        """A reference bank from an `EmbeddingBank`, a `.safetensors` bank file, a folder of
        audio files (embedded now, through the cache), or "default" (the model folder's
        `bank.safetensors`)."""
        if isinstance(spec, EmbeddingBank):
            spec.check_model(self.model_facts, "<bank>")
            return spec
        key = str(spec)
        if key not in self._banks:
            if key == "default":
                path = self.model_folder / BANK_FILE if self.model_folder else None
                if path is None or not path.is_file():
                    raise ConfigError(f"model {self.model_id} ships no default NMR bank ({BANK_FILE})")
                bank = EmbeddingBank.load(path)
            elif Path(spec).is_dir():
                files = list_audio(spec)
                if not files:
                    raise ConfigError(f"{spec}: no audio files to use as NMR references")
                bank = self.make_bank(files, [str(p.relative_to(spec)) for p in files])
            else:
                bank = EmbeddingBank.load(spec)
            bank.check_model(self.model_facts, key)
            self._banks[key] = bank
        return self._banks[key]

    # ---- scoring ---------------------------------------------------------------------

    def score(self, *, reference: AudioSource | None = None, degraded: AudioSource,
              nmr_bank: Any = None) -> ScoreResult:
        """Score `degraded` against `reference` (FR), or against a clean reference bank (NMR)
        when no reference is given (`nmr_bank`, else the Scorer's default bank)."""
        if reference is not None and nmr_bank is not None:
            raise ConfigError("give either reference= (full reference) or nmr_bank= (NMR), not both")
        bank = None if reference is not None else self._bank_for(nmr_bank)
        return self._score_prepared(self._prepare(ScoreJob("", degraded, reference)), bank)

    def score_batch(self, pairs: Iterable[Any], *, nmr_bank: Any = None) -> list[ScoreResult | DeepaqError]:
        """Score many items: `(reference, degraded)` tuples, `ScoreJob`s, or degraded sources
        alone for NMR. A bad item gives its `DeepaqError` in its place instead of a result."""
        jobs = [_as_job(i, p) for i, p in enumerate(pairs)]
        return [outcome for _, outcome in self.iter_scores(jobs, nmr_bank=nmr_bank)]

    def iter_scores(self, jobs: Iterable[ScoreJob], *, nmr_bank: Any = None
                    ) -> Iterator[tuple[ScoreJob, ScoreResult | DeepaqError]]:
        """Yield `(job, result or error)` in order; `workers` threads decode and align ahead."""
        jobs = list(jobs)
        bank = self._bank_for(nmr_bank) if any(j.reference is None for j in jobs) else None
        if self.workers == 0:
            prepared: Iterator = ((j, _attempt(self._prepare, j)) for j in jobs)
            yield from self._finish_all(prepared, bank)
            return
        with ThreadPoolExecutor(self.workers) as pool:
            futures: list = []
            it = iter(jobs)
            for job in itertools.islice(it, self.workers + 1):
                futures.append((job, pool.submit(_attempt, self._prepare, job)))

            def ordered():
                while futures:
                    job, future = futures.pop(0)
                    nxt = next(it, None)
                    if nxt is not None:
                        futures.append((nxt, pool.submit(_attempt, self._prepare, nxt)))
                    yield job, future.result()

            yield from self._finish_all(ordered(), bank)

    def _finish_all(self, prepared, bank):
        for job, prep in prepared:
            if isinstance(prep, Exception):
                yield job, _as_error(prep, job)
                continue
            outcome = _attempt(self._score_prepared, prep, bank if job.reference is None else None)
            yield job, _as_error(outcome, job) if isinstance(outcome, Exception) else outcome

    def _bank_for(self, nmr_bank: Any) -> EmbeddingBank:
        spec = nmr_bank if nmr_bank is not None else self.nmr_bank
        if spec is None:
            raise ConfigError("NMR scoring needs a reference bank: pass nmr_bank= (a bank file, a folder "
                              "of clean references, or 'default') or a reference= for full reference")
        return self.load_bank(spec)

    def _prepare(self, job: ScoreJob
                 ) -> tuple[ScoreJob, Iterator[np.ndarray], int | None, float | None, list[int] | None]:
        """Decode (and align) enough of an item to start windowing it; runs in worker threads."""
        if job.problem:
            raise ConfigError(job.problem)
        if job.reference is None:
            chunks = audio_chunks(job.degraded, self.sample_rate, mono=self.mono, stream_above_s=self.stream_above_s)
            first = next(chunks)
            return job, itertools.chain([first], chunks), None, None, None
        jumps: list[int] | None = [] if self.follow_delay else None  # filled as the chunks stream
        chunks, delay, level = aligned_chunks(job.reference, job.degraded, self.sample_rate, mono=self.mono,
                                              max_delay_s=self.max_delay_s, stream_above_s=self.stream_above_s,
                                              align_level=self.align_level, jumps=jumps)
        return job, chunks, delay, level, jumps

    def _score_prepared(self, prepared, bank: EmbeddingBank | None) -> ScoreResult:
        job, chunks, delay, level, jumps = prepared
        first = next(chunks, None)
        if first is None:
            raise AudioError(source_name(job.degraded), "has no audio left after alignment")
        chunks = itertools.chain([first], chunks)
        per_batch = self._windows_per_batch(first.shape[0])
        windower = Windower(self.spec, source_name(job.degraded))
        per_window: list[np.ndarray] = []
        meter = None
        if bank is None and self.fusion is not None:
            meter = TwofMeter(self.sample_rate, source_name(job.reference))
            chunks = _tap(chunks, meter.add)
        if bank is None:  # full reference: channels are [reference..., degraded...]
            for batch in windower.batches(chunks, per_batch):
                e = self._embed_batch(batch)
                c = e.shape[1] // 2
                per_window.append(self.distance(e[:, :c] - e[:, c:], np.linalg.norm).mean(axis=1))
        else:
            owner, predicted = bank.owner_weights, []
            for batch in windower.batches(chunks, per_batch):
                e = self._embed_batch(batch)
                b, c, d = e.shape
                rows = e.reshape(b * c, d)
                dist = self.distance.between(rows, bank.window_embeddings) @ owner
                per_window.append(dist.reshape(b, c, -1).mean(axis=1))
                if self.nmr_head is not None:
                    predicted.append(self.nmr_head.predict(rows, bank.window_embeddings).reshape(b, c).mean(axis=1))
        values = np.concatenate(per_window)  # [W] (FR) or [W, F] (NMR)
        weights = windower.weights()
        pooled = weights @ values / weights.sum()
        if bank is None:
            distance, by_reference, window_d = float(pooled), None, values
        else:
            by_reference = {n: float(v) for n, v in zip(bank.names, pooled)}
            window_d = np.concatenate(predicted) if predicted else values.mean(axis=1)
            distance = float(weights @ window_d / weights.sum())
        model_quality = self._map(distance)
        mms = None if meter is None else meter.mms()
        return ScoreResult(
            mode=FULL_REFERENCE if bank is None else NMR,
            distance=distance,
            quality=model_quality if mms is None else self.fusion.combine(model_quality, mms),
            model_quality=model_quality,
            mms_2f=mms,
            model_id=self.model_id,
            model_version=self.model_version,
            sample_rate=self.sample_rate,
            duration_s=windower.total / self.sample_rate,
            delay_samples=delay,
            delay_jumps=tuple(jumps or ()),
            level_db=level,
            level_aligned=self.align_level and level is not None,
            nmr_head=bank is not None and self.nmr_head is not None,
            windows=self._window_scores(windower, weights, window_d),
            reference_distances=by_reference,
        )

    def _map(self, distance: float) -> float | None:
        return None if self.mapping is None else float(self.mapping(distance))

    def _window_scores(self, windower: Windower, weights: np.ndarray, distances: np.ndarray) -> list[WindowScore]:
        sr, total = self.sample_rate, windower.total
        return [WindowScore(s / sr, min(s + self.spec.length, total) / sr, float(w) / sr, float(d), self._map(float(d)))
                for s, w, d in zip(windower.starts, weights, distances)]


def load_engine(model: Any, backend: str = "auto", device: str = "cpu") -> tuple[Any, Path | None, str]:
    """`(model, model folder or None, backend)` for a Scorer (see its `backend` argument)."""
    from deepaq.errors import ModelError, require
    from deepaq.models.checkpoint import resolve_model_folder

    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not isinstance(model, (str, os.PathLike)):  # a loaded torch DeepaqNet
        if backend == "numpy":
            raise ConfigError("backend 'numpy' loads a model folder; a loaded torch model runs with 'torch'")
        return model.to(device).eval(), None, "torch"
    folder = resolve_model_folder(model)
    if backend == "numpy" or (backend == "auto" and str(device) == "cpu"):
        from deepaq.models.numpy_net import load_numpy_model

        try:
            return load_numpy_model(folder), folder, "numpy"
        except ModelError:  # a model numpy cannot run exactly: torch runs it, if installed
            if backend == "numpy" or importlib.util.find_spec("torch") is None:
                raise
    require("torch", f"model {folder.name} on the torch backend")
    from deepaq.models import load_model

    return load_model(folder, device=device), folder, "torch"


def _load_fusion(folder: Path | None) -> Fusion | None:
    """The model's `fusion.json`, or None."""
    path = None if folder is None else folder / FUSION_FILE
    return Fusion.load(path) if path is not None and path.is_file() else None


def _tap(chunks: Iterator[np.ndarray], see) -> Iterator[np.ndarray]:
    """The same chunks, each shown to `see` first."""
    for chunk in chunks:
        see(chunk)
        yield chunk


def _load_nmr_head(folder: Path | None):
    """The model's NMR head (`nmr_head.safetensors` beside its weights), or None."""
    from deepaq.models.nmr_head import FILE_NAME, NmrHead

    path = None if folder is None else folder / FILE_NAME
    return NmrHead.load(path) if path is not None and path.is_file() else None


def bank_from_embeddings(names: list[str], embeddings: list[Embedding], model: dict) -> EmbeddingBank:
    """Stack per-file embeddings (every channel's windows) into one bank."""
    rows, owner, start, weight = [], [], [], []
    for i, emb in enumerate(embeddings):
        w, c, _ = emb.windows.shape
        rows.append(emb.windows.reshape(w * c, -1))
        owner.append(np.full(w * c, i))
        start.append(np.repeat(emb.starts, c))
        weight.append(np.repeat(emb.weights, c))
    return EmbeddingBank(list(names), np.concatenate(rows).astype(np.float32), np.concatenate(owner),
                         np.concatenate(start), np.concatenate(weight).astype(np.float32), dict(model))


def _as_job(index: int, item: Any) -> ScoreJob:
    if isinstance(item, ScoreJob):
        return item
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[1], (int, np.integer)):
        return ScoreJob(str(index), degraded=item[1], reference=item[0])
    return ScoreJob(str(index), degraded=item)


def _attempt(fn, *args):
    """`fn(*args)`, or the exception it raised (a batch records it and goes on)."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
        return exc


def _as_error(exc: Exception, job: ScoreJob) -> DeepaqError:
    if isinstance(exc, DeepaqError):
        return exc
    err = DeepaqError(f"{source_name(job.degraded)}: unexpected {type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
