"""PyTorch Dataset over a weak-label manifest, and the clip-grouped batch sampler.

Rank-N-Contrast needs things to rank inside a batch: `ClipBatchSampler` fills every batch
with `clips_per_batch` groups, each holding one clip's clean item plus `items_per_clip - 1`
of its degraded items. An epoch splits every clip's degraded items (shuffled) into such
groups, so each degraded item is seen once per epoch and the clean item once per group.
With `ladders_per_batch`, the steps of ladders (`build-data --ladders`: one family at
severities of known order) come as whole ladders instead: each batch also holds that many
(clean + every step of one ladder of one clip), drawn in a shuffled cycle.
Under DDP each rank takes every `world_size`-th batch of the same seeded order, truncated
so all ranks run the same number of steps.

Items are read from FLAC with soundfile, downmixed to mono and resampled (soxr) to the
backbone's rate. With `window_seconds`, longer items are cropped to that length at an offset
shared by all items of a clip (random per epoch when `random_crop`, else centred), and
shorter ones are zero-padded; `collate` pads a batch and returns the valid lengths.

Teacher labels (`deepaq.data.teachers`: the 2f-model MMS, PEAQ ODG, ViSQOL of each item,
in CSV files beside the manifest) are joined by item id; `teachers` names the ones each item
carries (NaN where a teacher has not scored it). A ViSQOL teacher file fills `visqol` where
the manifest has none.
"""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from deepaq.errors import AudioError, ConfigError


class ManifestDataset(Dataset):
    """Items of one split of one or more dataset folders (manifest.parquet + FLACs).

    Several folders built from the same clean corpus with the same clip settings (e.g. a
    codec grid and a later set of other degradations) share their clips: a clip's clean item
    is taken from the first folder that has it, and the degraded items of all folders rank
    against it.
    """

    def __init__(self, root: str | Path | Sequence[str | Path], split: str | None, sample_rate: int,
                 window_seconds: float | None = None, random_crop: bool = False, seed: int = 0,
                 teachers: tuple[str, ...] = (), committee: tuple[str, ...] = ()):
        import pandas as pd

        from deepaq.data.manifest import read_manifest
        from deepaq.data.teachers import read_teacher_labels

        roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
        self.root = roots[0]
        frames, labels = [], {}
        for folder in roots:
            frame = read_manifest(folder)
            frames.append(frame.assign(folder=str(folder)))
            labels.update(read_teacher_labels(folder))
        frame = pd.concat(frames, ignore_index=True)
        frame = frame[(frame["codec"] != "clean") | ~frame.duplicated("item_id")]  # one clean item per clip
        if split is not None:
            frame = frame[frame["split"] == split]
        if frame.empty:
            raise ConfigError(f"{', '.join(map(str, roots))}: no items in split {split!r}")
        self.items = frame.reset_index(drop=True)
        self.sample_rate = sample_rate
        self.window = None if window_seconds is None else int(round(window_seconds * sample_rate))
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0
        self.clip_ids: list[str] = self.items["clip_id"].astype(str).tolist()
        self.is_clean: list[bool] = (self.items["codec"] == "clean").tolist()
        self.codecs: list[str] = self.items["codec"].astype(str).tolist()
        # "<clip>/<ladder>" for the steps of a ladder, "" for every other item
        self.ladders: list[str] = [f"{c}/{name}" if name else "" for c, name in zip(self.clip_ids, self.items["ladder"])]
        self.ladder_steps = self.items["ladder_step"].to_numpy(dtype=np.float64)
        ids = self.items["item_id"].astype(str)
        self.teachers = tuple(teachers)
        self.teacher_labels = np.array([[labels.get(i, {}).get(t, math.nan) for t in self.teachers] for i in ids],
                                       dtype=np.float64).reshape(len(ids), len(self.teachers))
        self.committee = committee_target(ids, labels, tuple(committee))
        self.visqol = self.items["visqol_mos"].to_numpy(dtype=np.float64)
        from_teacher = np.array([labels.get(i, {}).get("visqol_mos", math.nan) for i in ids])
        self.visqol = np.where(np.isnan(self.visqol), from_teacher, self.visqol)

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of every item's id, labels and FLAC size, in order.

        Two rebuilds of a dataset that give one fingerprint hold the same items and labels;
        when a training run does not reproduce, this says whether the data or the run moved.
        """
        digest = hashlib.sha256()
        for k, row in enumerate(self.items.itertuples(index=False)):
            size = (Path(row.folder) / row.path).stat().st_size
            labels = ",".join(repr(float(v)) for v in (self.visqol[k], row.bitrate_kbps, self.ladder_steps[k],
                                                        *self.teacher_labels[k]))
            if self.committee is not None:
                labels += f",{float(self.committee[k])!r}"
            digest.update(f"{row.item_id}|{row.codec}|{self.ladders[k]}|{labels}|{size}\n".encode())
        return digest.hexdigest()[:16]

    def set_epoch(self, epoch: int) -> None:
        """Changes the random crop offsets (call before each epoch's DataLoader iteration)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, path: Path) -> np.ndarray:
        import soundfile as sf

        from deepaq.audio import resample

        try:
            x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(path, f"cannot read ({exc})") from exc
        mono = x.mean(axis=1, dtype=np.float32)[None, :]
        return resample(mono, sr, self.sample_rate)[0]

    def _crop(self, x: np.ndarray, clip_id: str) -> np.ndarray:
        if self.window is None:
            return x
        if len(x) < self.window:
            return np.pad(x, (0, self.window - len(x)))
        spare = len(x) - self.window
        if self.random_crop:
            digest = hashlib.sha256(f"{self.seed}/{self.epoch}/{clip_id}".encode()).digest()
            start = int.from_bytes(digest[:8], "little") % (spare + 1)
        else:
            start = spare // 2
        return x[start:start + self.window]

    def __getitem__(self, index: int) -> dict:
        row = self.items.iloc[index]
        x = self._read(Path(row["folder"]) / row["path"])
        length = len(x) if self.window is None else min(len(x), self.window)
        return {
            "waveform": torch.from_numpy(np.ascontiguousarray(self._crop(x, str(row["clip_id"])))),
            "length": length,
            "visqol": float(self.visqol[index]),
            "teachers": self.teacher_labels[index],
            "committee": math.nan if self.committee is None else float(self.committee[index]),
            "bitrate": float(row["bitrate_kbps"]),
            "item_id": str(row["item_id"]),
            "clip_id": str(row["clip_id"]),
            "codec": str(row["codec"]),
            "is_clean": row["codec"] == "clean",
            "ladder": self.ladders[index],
            "ladder_step": float(self.ladder_steps[index]) if self.ladders[index] else math.nan,
        }


def committee_target(ids: Sequence[str], labels: dict[str, dict[str, float]],
                     members: tuple[str, ...]) -> np.ndarray | None:
    """The committee's verdict on each item: the mean over the `members` (teacher labels, higher
    is better) of the item's percentile rank among the items that member labelled (0-1, ties
    averaged); NaN where no member labelled the item; None without members. Ranks put
    teachers of different scales on one, and a teacher that labels only some items (PESQ on
    speech) ranks those among themselves."""
    if not members:
        return None
    from scipy.stats import rankdata

    ranks = np.full((len(ids), len(members)), np.nan)
    for j, member in enumerate(members):
        values = np.array([labels.get(i, {}).get(member, math.nan) for i in ids], dtype=np.float64)
        known = np.isfinite(values)
        if known.sum() > 1:
            ranks[known, j] = (rankdata(values[known]) - 1) / (known.sum() - 1)
    counts = np.isfinite(ranks).sum(axis=1)
    return np.where(counts > 0, np.nansum(ranks, axis=1) / np.maximum(counts, 1), np.nan)


def collate(items: list[dict]) -> dict:
    """Stack a list of items: waveform [B, T] zero-padded, lengths [B], labels [B], string lists."""
    longest = max(item["waveform"].shape[0] for item in items)
    wave = torch.zeros(len(items), longest)
    for i, item in enumerate(items):
        wave[i, : item["waveform"].shape[0]] = item["waveform"]
    return {
        "waveform": wave,
        "lengths": torch.tensor([item["length"] for item in items]),
        "visqol": torch.tensor([item["visqol"] for item in items], dtype=torch.float32),
        "bitrate": torch.tensor([item["bitrate"] for item in items], dtype=torch.float32),
        "teachers": torch.tensor(np.stack([item["teachers"] for item in items]), dtype=torch.float32),
        "committee": torch.tensor([item["committee"] for item in items], dtype=torch.float32),
        "item_id": [item["item_id"] for item in items],
        "clip_id": [item["clip_id"] for item in items],
        "codec": [item["codec"] for item in items],
        "is_clean": torch.tensor([item["is_clean"] for item in items]),
        "ladder": [item["ladder"] for item in items],
        "ladder_step": torch.tensor([item["ladder_step"] for item in items], dtype=torch.float32),
    }


class ClipBatchSampler(Sampler[list[int]]):
    """Batches of `clips_per_batch` x (clean + `items_per_clip - 1` degraded items of one clip).

    With `subgroups` (one key per item, e.g. its codec), a group's degraded items also share
    that key: clean + items of one codec of one clip.
    With `ladders` (one key per item, "" outside ladders) and `ladders_per_batch` > 0, the
    ladders' items leave those groups: every batch also holds `ladders_per_batch` whole
    ladders, each after its clip's clean item.
    """

    def __init__(self, clip_ids: list[str], is_clean: list[bool], clips_per_batch: int, items_per_clip: int,
                 shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 subgroups: list[str] | None = None, ladders: list[str] | None = None, ladders_per_batch: int = 0):
        if clips_per_batch < 1 or items_per_clip < 2:
            raise ConfigError("a batch needs clips_per_batch >= 1 and items_per_clip >= 2 (clean + degraded)")
        clean: dict[str, int] = {}
        degraded: dict[tuple[str, str], list[int]] = {}
        ladder_items: dict[tuple[str, str], list[int]] = {}
        for index, (clip, is_c) in enumerate(zip(clip_ids, is_clean)):
            if is_c:
                clean[clip] = index
            elif ladders_per_batch and ladders and ladders[index]:
                ladder_items.setdefault((clip, ladders[index]), []).append(index)
            else:
                degraded.setdefault((clip, subgroups[index] if subgroups else ""), []).append(index)
        missing = sorted({clip for clip, _ in [*degraded, *ladder_items]} - set(clean))
        if missing:
            raise ConfigError(f"clips without a clean item: {missing[:5]} ({len(missing)})")
        self.clean, self.degraded = clean, {c: degraded[c] for c in sorted(degraded)}
        if not self.degraded:
            raise ConfigError("no degraded items to rank")
        self.ladders = [[clean[clip], *items] for (clip, _), items in sorted(ladder_items.items())]
        self.ladders_per_batch = ladders_per_batch if self.ladders else 0
        self.clips_per_batch, self.per_group = clips_per_batch, items_per_clip - 1
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _groups(self, rng: random.Random) -> list[list[int]]:
        groups = []
        for (clip, _), items in self.degraded.items():
            items = list(items)
            if self.shuffle:
                rng.shuffle(items)
            for start in range(0, len(items), self.per_group):
                groups.append([self.clean[clip], *items[start:start + self.per_group]])
        if self.shuffle:
            rng.shuffle(groups)
        return groups

    def _num_groups(self) -> int:
        return sum(math.ceil(len(items) / self.per_group) for items in self.degraded.values())

    def __len__(self) -> int:
        batches = math.ceil(self._num_groups() / self.clips_per_batch)
        return batches // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(f"{self.seed}/{self.epoch}")
        groups = self._groups(rng)
        batches = [sum(groups[i:i + self.clips_per_batch], []) for i in range(0, len(groups), self.clips_per_batch)]
        if self.ladders_per_batch:
            ladders = list(self.ladders)
            if self.shuffle:
                rng.shuffle(ladders)
            k = self.ladders_per_batch
            batches = [batch + sum((ladders[(b * k + j) % len(ladders)] for j in range(k)), [])
                       for b, batch in enumerate(batches)]
        mine = batches[self.rank::self.world_size][: len(self)]
        return iter(mine)
