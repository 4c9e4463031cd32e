"""Build a weak-label dataset: clean corpus -> clips -> coded items -> ViSQOL/bitrate labels -> manifest.

Steps, each resumable through the journal in `DATASET/.deepaq-build/`:
1. find the audio files under the input folders and split them train/validation/test by
   source file (a seeded permutation of the sorted file list, so no recording is in two splits);
2. scan each source (in parallel): resample to 48 kHz and choose non-silent clip positions;
3. per clip (in parallel): write the clean clip, code it with every codec and bitrate of the
   grid and apply the clip's sampled degradations (`deepaq.degradations.plan_conditions`,
   `per_clip` of them from the `degradations` families), write each result, and label each stored file with ViSQOL v3 against the stored clean
   clip; the clean item gets its self-score and bitrate infinity (`visqol=False` skips ViSQOL:
   bitrate labels only, visqol_mos NaN, the loss then uses its bitrate term alone);
4. write `manifest.parquet` (and `manifest.csv`) from the journal, and `errors.csv`.

Audio is stored as 48 kHz 16-bit FLAC with the channels it was coded with (stereo sources
stay stereo, as in the paper's CD-quality corpus; `mono=True` downmixes before coding).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from deepaq.data.labels import CLEAN_BITRATE, item_error, visqol_scorer
from deepaq.data.manifest import SPLITS, Journal, write_manifest
from deepaq.engine import Engine, given_or_local
from deepaq.errors import ConfigError, DeepaqError

SAMPLE_RATE = 48_000
SUBTYPE = "PCM_16"
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aif", ".aiff", ".ac3", ".mp2"})
FRAME_SECONDS = 0.1  # resolution of the silence detector and of clip start times
HEADROOM_PEAK = 10 ** (-1 / 20)  # clips peaking above -1 dBFS are turned down to it (codec overshoot)
FULL_SCALE = 32767 / 32768  # the largest 16-bit sample
STATE_DIR = ".deepaq-build"
TALKER_FAMILIES = ("noise_babble", "competing_talker")  # with --interferers, their voices are drawn files


class Condition(NamedTuple):
    suffix: str  # item_id = <clip_id>__<suffix>; file audio/<clip_id>/<suffix>.flac
    codec: str  # the grid's codec, "clean", "lowpass", or the degradation family
    bitrate_kbps: float
    cutoff_hz: float = math.nan
    params: str = ""  # a degradation family's parameters as JSON; "" for the grid
    ladder: str = ""  # the ladder (deepaq.degradations.ladders) this step belongs to, if any
    ladder_step: int = -1  # its place on the ladder, 0 = worst

    @property
    def params_json(self) -> str:
        """The manifest's `params`: the family's parameters, or the grid's setting."""
        if self.params:
            return self.params
        if self.codec == "lowpass":
            return json.dumps({"cutoff_hz": self.cutoff_hz})
        return json.dumps({} if self.codec == "clean" else {"bitrate_kbps": self.bitrate_kbps})


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the dataset's content (the worker count does not)."""

    clip_seconds: float = 5.0
    max_clips_per_source: int = 10
    codecs: tuple[str, ...] = ("opus", "mp3", "aac")
    bitrates: tuple[float, ...] = (16, 32, 48, 64, 80, 96, 128)  # the paper's (deepaq.codecs.PAPER_BITRATES)
    lowpass_hz: tuple[float, ...] = ()
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, validation, test
    seed: int = 0
    mono: bool = False
    visqol: bool = True  # False: bitrate labels only (visqol_mos NaN), many times faster to build
    silence_dbfs: float = -60.0  # a 100 ms frame below this RMS level is silent
    max_silent_fraction: float = 0.2  # clips with more silent frames than this are skipped
    degradations: tuple[str, ...] = ()  # families of deepaq.degradations to sample conditions from
    per_clip: int = 0  # sampled degradation conditions per clip, besides the grid
    interferers: tuple[str, ...] = ()  # folders of audio: babble talkers and separation interferers
    ladders: tuple[str, ...] = ()  # deepaq.degradations.ladders written for every clip
    ladder_steps: int = 5  # steps per ladder
    inputs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # one spelling per setting (16 and 16.0 are the same bitrate), so resume checks compare equal
        for name, kind in (("codecs", str), ("bitrates", float), ("lowpass_hz", float), ("split_ratios", float),
                           ("degradations", str), ("interferers", str), ("ladders", str), ("inputs", str)):
            object.__setattr__(self, name, tuple(kind(v) for v in getattr(self, name)))
        object.__setattr__(self, "clip_seconds", float(self.clip_seconds))

    def conditions(self) -> list[Condition]:
        """The clean item first, then every codec x bitrate, then the low-pass anchors."""
        items = [Condition("clean", "clean", CLEAN_BITRATE)]
        items += [Condition(f"{c}_{b:g}", c, float(b)) for c in self.codecs for b in self.bitrates]
        items += [Condition(f"lowpass_{hz:g}", "lowpass", math.nan, float(hz)) for hz in self.lowpass_hz]
        return items

    def clip_conditions(self, clip_id: str, own_file: str = "") -> list[Condition]:
        """The grid, then `per_clip` degradations planned for this clip (deterministic from its id
        and the seed), then the steps of each ladder. With `interferers`, babble talkers and
        separation interferers are files drawn from those folders (never the clip's own file); so is
        a competing talker."""
        from deepaq import degradations
        from deepaq.degradations.ladders import plan_ladder

        items = self.conditions()
        for suffix, name, params in degradations.plan_conditions(clip_id, self.per_clip, self.degradations, self.seed):
            if self.interferers and name in (*TALKER_FAMILIES, "separation"):
                rng = np.random.default_rng([degradations.condition_seed(clip_id, suffix, self.seed), 1])
                params = {**params, **_interferer_params(self.interferers, name, params, rng, own_file)}
            kbps = degradations.get(name).bitrate_kbps(params)
            items.append(Condition(suffix, name, kbps, params=json.dumps(params, sort_keys=True)))
        for ladder in self.ladders:
            for step, (suffix, name, params) in enumerate(plan_ladder(clip_id, ladder, self.ladder_steps, self.seed)):
                kbps = degradations.get(name).bitrate_kbps(params)
                items.append(Condition(suffix, name, kbps, params=json.dumps(params, sort_keys=True),
                                       ladder=ladder, ladder_step=step))
        return items

    def items_per_clip(self) -> int:
        return len(self.conditions()) + self.per_clip + len(self.ladders) * self.ladder_steps

    def check(self) -> None:
        """Raise ConfigError for settings that cannot work, before any work starts."""
        from deepaq.codecs import CODECS

        if not 1.0 <= self.clip_seconds <= 60:
            raise ConfigError(f"clip length {self.clip_seconds} s must lie between 1 and 60 s (ViSQOL needs 1 s)")
        if self.max_clips_per_source < 1:
            raise ConfigError("max clips per source must be at least 1")
        for name in ("codecs", "bitrates", "lowpass_hz"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} {values} lists a value twice (item ids would collide)")
        for codec in self.codecs:
            if codec not in CODECS:
                raise ConfigError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
            spec = CODECS[codec]
            bad = [b for b in self.bitrates if not spec.min_kbps <= b <= spec.max_kbps]
            if bad:
                raise ConfigError(f"{codec} cannot code at {bad} kbps (range {spec.min_kbps:g}-{spec.max_kbps:g})")
        for hz in self.lowpass_hz:
            if not 0 < hz < SAMPLE_RATE / 2:
                raise ConfigError(f"low-pass cutoff {hz} Hz must lie between 0 and {SAMPLE_RATE // 2} Hz")
        if len(self.split_ratios) != 3 or min(self.split_ratios) < 0 or sum(self.split_ratios) <= 0:
            raise ConfigError(f"split ratios {self.split_ratios} must be three non-negative numbers")
        if self.per_clip < 0 or bool(self.per_clip) != bool(self.degradations):
            raise ConfigError(
                f"{self.per_clip} degradations per clip from families {list(self.degradations)}: "
                "give both a positive count and at least one family, or neither"
            )
        if self.degradations:
            from deepaq.degradations import resolve_families

            resolve_families(self.degradations)
        if self.ladders:
            from deepaq.degradations.ladders import LADDERS, resolve_ladders

            for name in resolve_ladders(self.ladders):
                LADDERS[name].check_steps(self.ladder_steps)
        for folder in self.interferers:
            if not _audio_files((folder,)):
                raise ConfigError(f"{folder}: no audio files to draw babble talkers and interferers from")


def _audio_files_under(root: Path) -> list[Path]:
    """Audio files under root, skipping hidden files and folders."""
    return [
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]


@functools.lru_cache(maxsize=8)
def _audio_files(folders: tuple[str, ...]) -> list[str]:
    """Every audio file under the folders, sorted (listed once per process)."""
    return sorted(str(p) for folder in folders if Path(folder).is_dir() for p in _audio_files_under(Path(folder)))


def _interferer_params(folders: tuple[str, ...], family: str, params: dict[str, Any], rng: np.random.Generator,
                       own_file: str) -> dict[str, Any]:
    files = [f for f in _audio_files(folders) if f != own_file]
    if not files:
        return {}
    if family in TALKER_FAMILIES:
        picks = rng.choice(len(files), size=min(int(params.get("talkers", 1)), len(files)), replace=False)
        return {"babble_sources": [files[i] for i in sorted(picks)]}
    return {"interferer": files[int(rng.integers(len(files)))]}


@dataclass(frozen=True)
class Source:
    root: str  # the input folder
    rel: str  # path relative to it (the manifest's `source`)
    split: str

    @property
    def key(self) -> str:
        return f"{Path(self.root).name}/{self.rel}"


@dataclass(frozen=True)
class ClipTask:
    source: Source
    clip_id: str
    start: int  # samples at 48 kHz
    end: int
    dataset: str
    config: BuildConfig


# ---------------------------------------------------------------- planning


def find_sources(inputs: list[Path], config: BuildConfig) -> list[Source]:
    """Every audio file under the input folders, each assigned to a split."""
    found: list[tuple[str, str]] = []
    for root in inputs:
        if not root.is_dir():
            raise ConfigError(f"{root}: not a folder of clean audio")
        files = _audio_files_under(root)
        found += [(str(root), p.relative_to(root).as_posix()) for p in files]
    names = [root.name for root in inputs]
    if len(set(names)) != len(names):
        raise ConfigError(f"input folders must have different names (sources are keyed by it): {', '.join(map(str, inputs))}")
    if not found:
        raise ConfigError(f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) under {', '.join(map(str, inputs))}")
    found.sort(key=lambda rf: (Path(rf[0]).name, rf[1], rf[0]))
    splits = assign_splits(len(found), config.split_ratios, config.seed)
    return [Source(root, rel, split) for (root, rel), split in zip(found, splits)]


def assign_splits(n: int, ratios: tuple[float, float, float], seed: int) -> list[str]:
    """Split labels for n sorted items: exact counts by largest remainder, then a seeded shuffle.

    Every split with a non-zero ratio gets at least one item when there are enough items.
    """
    weights = np.asarray(ratios, dtype=float) / sum(ratios)
    counts = np.floor(weights * n).astype(int)
    for i in np.argsort(-(weights * n - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    for i in np.flatnonzero((weights > 0) & (counts == 0)):
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[i] += 1
    labels = np.repeat(np.asarray(SPLITS), counts)
    return list(labels[np.random.default_rng(seed).permutation(n)])


def clip_positions(x: np.ndarray, config: BuildConfig) -> list[int]:
    """Start samples (48 kHz) of non-overlapping, mostly non-silent clips, spread over the file."""
    frame = int(FRAME_SECONDS * SAMPLE_RATE)
    mono = x.mean(axis=0, dtype=np.float64)
    n_frames = mono.size // frame
    clip_frames = int(round(config.clip_seconds / FRAME_SECONDS))
    if n_frames < clip_frames:
        return []
    power = np.mean(mono[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1)
    silent = power < 10 ** (config.silence_dbfs / 10)
    silent_before = np.concatenate([[0], np.cumsum(silent)])
    allowed = int(config.max_silent_fraction * clip_frames)
    starts, pos = [], 0
    while pos + clip_frames <= n_frames:
        if silent_before[pos + clip_frames] - silent_before[pos] <= allowed:
            starts.append(pos)
            pos += clip_frames
        else:
            pos += 1
    if len(starts) > config.max_clips_per_source:
        pick = np.round(np.linspace(0, len(starts) - 1, config.max_clips_per_source)).astype(int)
        starts = [starts[i] for i in pick]
    return [s * frame for s in starts]


def clip_id(source: Source, start: int) -> str:
    """Readable and unique: a slug of the file name, a hash of its path, the start in ms."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(source.rel).with_suffix("").as_posix()).strip("-")[-40:] or "clip"
    digest = hashlib.sha1(source.key.encode("utf-8")).hexdigest()[:6]
    return f"{slug}-{digest}-{round(start * 1000 / SAMPLE_RATE):08d}"


def load_source(source: Source, mono: bool) -> np.ndarray:
    """The source file at 48 kHz: mono or stereo (more than two channels are downmixed to mono)."""
    from deepaq.audio import load_audio

    with warnings.catch_warnings():  # 44.1 kHz CD audio is brought to 48 kHz on purpose
        warnings.filterwarnings("ignore", message=".*upsampling from")
        x, _ = load_audio(Path(source.root) / source.rel, sample_rate=SAMPLE_RATE, mono=False)
    if mono or x.shape[0] > 2:
        x = x.mean(axis=0, keepdims=True, dtype=np.float32)
    return x


def scan_source(source: Source, config: BuildConfig) -> dict[str, Any]:
    """Journal record for one source: its clip start samples, or the error that stopped it."""
    try:
        starts = clip_positions(load_source(source, config.mono), config)
    except DeepaqError as exc:
        return {"kind": "source", "key": source.key, "starts": [], "error": str(exc)}
    return {"kind": "source", "key": source.key, "starts": starts, "error": ""}


def _scan(task: tuple[Source, BuildConfig]) -> dict[str, Any]:
    return scan_source(*task)


def _scan_crashed(task: tuple[Source, BuildConfig], why: str) -> dict[str, Any]:
    return {"kind": "source", "key": task[0].key, "starts": [], "error": f"{task[0].rel}: {why}"}


# ---------------------------------------------------------------- one clip


def build_clip(task: ClipTask) -> dict[str, Any]:
    """Write and label every item of one clip; returns its journal record (rows and errors)."""
    config, source, root = task.config, task.source, Path(task.dataset)
    folder = root / "audio" / task.clip_id
    record: dict[str, Any] = {"kind": "clip", "clip_id": task.clip_id, "rows": [], "errors": []}
    try:
        clean = load_source(source, config.mono)[:, task.start : task.end]
        peak = float(np.abs(clean).max())
        if peak > HEADROOM_PEAK:
            clean = clean * np.float32(HEADROOM_PEAK / peak)
        clean_path = _write(folder / "clean.flac", clean)
    except Exception as exc:
        record["errors"].append(_error(task, "clean", "read", item_error(exc)))
        return record
    from deepaq.codecs import apply_condition, codec_versions

    scorer = visqol_scorer() if config.visqol else None
    common = {
        "clip_id": task.clip_id,
        "source": source.rel,
        "clip_start_s": task.start / SAMPLE_RATE,
        "clip_end_s": task.end / SAMPLE_RATE,
        "split": source.split,
        "sample_rate": SAMPLE_RATE,
        "seed": config.seed,
        "codec_versions": json.dumps(codec_versions(), sort_keys=True),
        "visqol_version": scorer.version if scorer else "",
    }
    for cond in config.clip_conditions(task.clip_id, str(Path(source.root) / source.rel)):
        path = folder / f"{cond.suffix}.flac"
        stage = "code"
        try:
            if cond.params:
                _write(path, _degrade(clean, task.clip_id, cond, config.seed))
            elif cond.codec != "clean":  # the clean file is written above
                setting = cond.cutoff_hz if cond.codec == "lowpass" else cond.bitrate_kbps
                _write(path, apply_condition(clean, SAMPLE_RATE, cond.codec, setting))
            stage = "label"
            mos = scorer.score(reference=clean_path, degraded=path) if scorer else math.nan
        except Exception as exc:
            path.unlink(missing_ok=True)
            record["errors"].append(_error(task, cond.suffix, stage, item_error(exc)))
            if cond.codec == "clean":  # nothing else can be labelled without the reference
                return record
            continue
        record["rows"].append({
            **common,
            "item_id": f"{task.clip_id}__{cond.suffix}",
            "codec": cond.codec,
            "bitrate_kbps": cond.bitrate_kbps,
            "family": cond.codec,
            "params": cond.params_json,
            "ladder": cond.ladder,
            "ladder_step": cond.ladder_step,
            "visqol_mos": mos,
            "path": path.relative_to(root).as_posix(),
        })
    return record


def _degrade(clean: np.ndarray, clip: str, cond: Condition, seed: int) -> np.ndarray:
    """A planned degradation of the clean clip, turned down (never clipped) if it would exceed
    16-bit full scale: a boost, an echo or loud noise must not add clipping nobody asked for."""
    from deepaq import degradations

    params = json.loads(cond.params)
    y = degradations.apply(cond.codec, clean, SAMPLE_RATE, params, degradations.condition_seed(clip, cond.suffix, seed))
    peak = float(np.abs(y).max())
    return y * np.float32(FULL_SCALE / peak) if peak > FULL_SCALE else y


def _write(path: Path, x: np.ndarray) -> Path:
    from deepaq.audio import write_audio

    return write_audio(path, x, SAMPLE_RATE, subtype=SUBTYPE)


def _clip_crashed(task: ClipTask, why: str) -> dict[str, Any]:
    """The journal record of a clip whose process died (its items are tried again on the next run)."""
    return {"kind": "clip", "clip_id": task.clip_id, "rows": [], "errors": [_error(task, "*", "build", why)]}


def _error(task: ClipTask, suffix: str, stage: str, text: str) -> dict[str, str]:
    return {"item_id": f"{task.clip_id}__{suffix}", "source": task.source.key, "stage": stage, "error": text}


# ---------------------------------------------------------------- the whole build


@dataclass
class BuildSummary:
    sources: int
    clips: int
    items: int
    errors: int
    manifest: Path
    items_per_split: dict[str, int]


def build_dataset(
    inputs: Sequence[str | Path], dataset: str | Path, config: BuildConfig, *, workers: int = 1,
    write_csv: bool = False, engine: Engine | None = None,
) -> BuildSummary:
    """Build (or resume building) the dataset in `dataset`; see the module docstring.

    Sources and clips run on `engine` (default: `workers` local processes; on Ray every node
    must see the input and dataset folders at the same paths: workers write the audio)."""
    inputs = [Path(p).resolve() for p in inputs]
    interferers = tuple(str(Path(p).resolve()) for p in config.interferers)
    config = BuildConfig(**{**asdict(config), "inputs": tuple(map(str, inputs)), "interferers": interferers})
    config.check()
    sources = find_sources(inputs, config)
    dataset = Path(dataset).resolve()
    state = dataset / STATE_DIR
    _check_same_config(state / "config.json", config)
    _check_same_sources(state / "sources.json", sources)
    _remove_partial_files(dataset / "audio")
    journal = Journal(state / "journal.jsonl")
    records = list(journal.records())

    # what failed before is tried again (the failure may have been passing, e.g. a full disk)
    scanned = {r["key"]: r for r in records if r["kind"] == "source" and not r["error"]}
    built = {r["clip_id"]: r for r in records if r["kind"] == "clip" and not r["errors"]}
    with given_or_local(engine, workers) as run:
        to_scan = [(s, config) for s in sources if s.key not in scanned]
        for _, record in run.map(_scan, to_scan, desc="scan", unit="file", on_crash=_scan_crashed):
            journal.append(record)
            scanned[record["key"]] = record

        clip_samples = int(round(config.clip_seconds * SAMPLE_RATE))
        tasks = list(_clip_tasks(sources, scanned, clip_samples, str(dataset), config))
        todo = [t for t in tasks if t.clip_id not in built]
        per_clip = config.items_per_clip()
        for _, record in run.map(build_clip, todo, desc="build", unit="item", total=len(todo) * per_clip,
                                 weight=lambda r: per_clip, chunk_size=1, on_crash=_clip_crashed):
            journal.append(record)
            built[record["clip_id"]] = record

    # rows journalled before the family/params columns existed get them from their codec
    rows = [{"family": row["codec"], "params": "", **row} for t in tasks for row in built[t.clip_id]["rows"]]
    errors = [
        {"item_id": "", "source": s.key, "stage": "scan", "error": scanned[s.key]["error"]}
        for s in sources if scanned[s.key]["error"]
    ] + [e for t in tasks for e in built[t.clip_id]["errors"]]
    manifest = write_manifest(rows, dataset, csv=write_csv)
    _write_errors(dataset / "errors.csv", errors)
    per_split = {split: sum(1 for r in rows if r["split"] == split) for split in SPLITS}
    return BuildSummary(len(sources), len(tasks), len(rows), len(errors), manifest, per_split)


def _clip_tasks(
    sources: list[Source], scanned: dict[str, dict], clip_samples: int, dataset: str, config: BuildConfig
) -> Iterator[ClipTask]:
    for source in sources:
        for start in scanned[source.key]["starts"]:
            yield ClipTask(source, clip_id(source, start), start, start + clip_samples, dataset, config)


def _as_json(config: BuildConfig) -> dict:
    """The settings as JSON gives them back (tuples become lists), to compare with a stored copy."""
    return json.loads(json.dumps(asdict(config)))


def _check_same_config(path: Path, config: BuildConfig) -> None:
    """First run: remember the settings. Later runs: refuse to mix in different settings."""
    wanted = _as_json(config)
    if path.exists():
        # settings added after a dataset was built take their default value
        stored = {**_as_json(BuildConfig()), **json.loads(path.read_text(encoding="utf-8"))}
        if stored != wanted:
            changed = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise ConfigError(
                f"{path.parent.parent}: was built with other settings ({', '.join(changed)} differ); "
                "rerun with the same settings to resume, or choose a new output folder"
            )
        return
    _write_json(path, wanted)


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(value, indent=1), encoding="utf-8")
    tmp.replace(path)


def _check_same_sources(path: Path, sources: list[Source]) -> None:
    """The split depends on the whole file list: refuse to resume over a changed corpus."""
    listed = [[s.key, s.split] for s in sources]
    if path.exists():
        if json.loads(path.read_text(encoding="utf-8")) != listed:
            raise ConfigError(
                f"{path.parent.parent}: the input folders no longer hold the same audio files as when "
                "this dataset was started (the split depends on them); choose a new output folder"
            )
        return
    _write_json(path, listed)


def _remove_partial_files(audio: Path) -> None:
    """Temporary files a killed run left behind (finished files are only ever renamed into place)."""
    if audio.is_dir():
        for tmp in audio.glob("*/.*.tmp*"):
            tmp.unlink(missing_ok=True)


def _write_errors(path: Path, errors: list[dict[str, str]]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["item_id", "source", "stage", "error"])
        writer.writeheader()
        writer.writerows(errors)
    tmp.replace(path)
