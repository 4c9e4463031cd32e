"""ManifestDataset and ClipBatchSampler on a tiny dataset of real FLAC files in the real
manifest format (synthetic music-like signals, degraded with a real codec and low-pass)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepaq.data.dataset import ClipBatchSampler, ManifestDataset, collate
from deepaq.errors import ConfigError

SR = 48_000
# (suffix, codec, bitrate, low-pass Hz, surrogate label): the label follows the bandwidth left
CONDITIONS = [("clean", "clean", math.inf, None, 4.8), ("opus_64", "opus", 64.0, None, 4.3),
              ("opus_16", "opus", 16.0, None, 2.6), ("lowpass_6000", "lowpass", math.nan, 6000, 3.0),
              ("lowpass_3000", "lowpass", math.nan, 3000, 2.0), ("lowpass_1000", "lowpass", math.nan, 1000, 1.2)]


def _clip(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Stereo, broadband: modulated noise (most of the energy) plus harmonic tones with vibrato."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for _ in range(3):
        f0 = rng.uniform(110, 880)
        for h in range(1, 12):
            x += rng.uniform(0.2, 1) / h * np.sin(2 * np.pi * f0 * h * t + 3 * np.sin(2 * np.pi * 5 * t))
    noise = rng.standard_normal(len(t)) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
    x = 0.1 * x / np.abs(x).max() + noise / np.abs(noise).max()
    stereo = np.stack([x, np.roll(x, 50)])
    return (0.5 * stereo / np.abs(stereo).max()).astype(np.float32)


def make_tiny_dataset(root: Path, clips: dict[str, int], seconds: float = 1.0, seed: int = 0) -> Path:
    """Write audio/<clip>/<suffix>.flac and manifest.parquet; `clips` = split -> clip count."""
    from deepaq.codecs import apply_condition
    from deepaq.data.manifest import write_manifest

    rng = np.random.default_rng(seed)
    rows = []
    for split, count in clips.items():
        for n in range(count):
            clip_id = f"{split}{n:02d}"
            clean = _clip(rng, seconds)
            for suffix, codec, bitrate, cutoff, label in CONDITIONS:
                y = apply_condition(clean, SR, codec, cutoff if codec == "lowpass" else bitrate)
                path = Path("audio") / clip_id / f"{suffix}.flac"
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / path, np.clip(y, -1, 1).T, SR, subtype="PCM_16")
                rows.append({"item_id": f"{clip_id}__{suffix}", "clip_id": clip_id, "source": f"{clip_id}.wav",
                             "clip_start_s": 0.0, "clip_end_s": seconds, "split": split, "codec": codec,
                             "bitrate_kbps": bitrate, "visqol_mos": label + rng.normal(0, 0.05),
                             "path": path.as_posix(), "sample_rate": SR, "seed": seed,
                             "codec_versions": "{}", "visqol_version": "surrogate"})
    write_manifest(rows, root)
    return root


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("data"), {"train": 3, "validation": 1})


def test_items_are_resampled_mono_with_labels(tiny_dataset):
    ds = ManifestDataset(tiny_dataset, "train", sample_rate=24000)
    assert len(ds) == 3 * len(CONDITIONS)
    item = ds[0]
    assert item["waveform"].shape == (24000,) and item["waveform"].dtype == torch.float32
    assert item["length"] == 24000
    assert item["codec"] == "clean" and item["is_clean"] and math.isinf(item["bitrate"])
    assert 4.6 < item["visqol"] < 5.0
    lp = next(ds[i] for i in range(len(ds)) if ds[i]["item_id"].endswith("lowpass_1000"))
    assert math.isnan(lp["bitrate"]) and not lp["is_clean"]
    # the 1 kHz low-pass leaves little energy above 2 kHz
    spec = np.abs(np.fft.rfft(lp["waveform"].numpy())) ** 2
    assert spec[2000:].sum() < 0.01 * spec.sum()


def test_windows_crop_per_clip_and_pad(tiny_dataset):
    ds = ManifestDataset(tiny_dataset, "train", sample_rate=16000, window_seconds=0.5, random_crop=True, seed=1)
    a, b = ds[0], ds[1]  # same clip, two items
    assert a["clip_id"] == b["clip_id"] and a["waveform"].shape == (8000,)
    whole = ManifestDataset(tiny_dataset, "train", sample_rate=16000)
    full_a, full_b = whole[0]["waveform"], whole[1]["waveform"]
    start = next(s for s in range(8001) if torch.equal(full_a[s:s + 8000], a["waveform"]))
    assert torch.equal(full_b[start:start + 8000], b["waveform"])  # shared offset
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["waveform"], a["waveform"])
    padded = ManifestDataset(tiny_dataset, "train", sample_rate=16000, window_seconds=1.5)
    item = padded[0]
    assert item["waveform"].shape == (24000,) and item["length"] == 16000
    assert torch.all(item["waveform"][16000:] == 0)
    batch = collate([item, ds[2]])
    assert batch["waveform"].shape == (2, 24000) and batch["lengths"].tolist() == [16000, 8000]


def test_sampler_groups_clips_with_their_clean_item(tiny_dataset):
    ds = ManifestDataset(tiny_dataset, "train", sample_rate=16000)
    sampler = ClipBatchSampler(ds.clip_ids, ds.is_clean, clips_per_batch=2, items_per_clip=3, seed=0)
    batches = list(sampler)
    # 5 degraded items per clip in groups of 2 -> 3 groups per clip, 9 groups -> 5 batches
    assert len(batches) == len(sampler) == 5
    seen = Counter(i for batch in batches for i in batch)
    for index, (clip, clean) in enumerate(zip(ds.clip_ids, ds.is_clean)):
        assert seen[index] == (3 if clean else 1)
    for batch in batches:
        clips = Counter(ds.clip_ids[i] for i in batch)
        for clip in clips:
            assert any(ds.is_clean[i] and ds.clip_ids[i] == clip for i in batch)
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.set_epoch(0)
    assert list(sampler) == batches


def test_sampler_can_keep_each_group_to_one_codec(tiny_dataset):
    ds = ManifestDataset(tiny_dataset, "train", sample_rate=16000)
    sampler = ClipBatchSampler(ds.clip_ids, ds.is_clean, clips_per_batch=1, items_per_clip=8, seed=0,
                               subgroups=ds.codecs)
    groups = list(sampler)
    assert sorted(i for g in groups for i in g if not ds.is_clean[i]) == [i for i, c in enumerate(ds.is_clean) if not c]
    for group in groups:
        clean = [i for i in group if ds.is_clean[i]]
        assert len(clean) == 1 and {ds.clip_ids[i] for i in group} == {ds.clip_ids[clean[0]]}
        assert len({ds.codecs[i] for i in group if not ds.is_clean[i]}) == 1


def test_sampler_splits_batches_across_ranks(tiny_dataset):
    ds = ManifestDataset(tiny_dataset, "train", sample_rate=16000)
    ranks = [list(ClipBatchSampler(ds.clip_ids, ds.is_clean, 2, 3, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 2
    single = list(ClipBatchSampler(ds.clip_ids, ds.is_clean, 2, 3))
    assert ranks[0] == single[0:4:2] and ranks[1] == single[1:4:2]


def test_dataloader_with_workers(tiny_dataset):
    from torch.utils.data import DataLoader

    ds = ManifestDataset(tiny_dataset, "validation", sample_rate=16000)
    sampler = ClipBatchSampler(ds.clip_ids, ds.is_clean, 1, 6, shuffle=False)
    batches = list(DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=2))
    assert len(batches) == 1 and batches[0]["waveform"].shape == (6, 16000)
    assert sorted(batches[0]["codec"]) == sorted(c[1] for c in CONDITIONS)


def test_bad_input_errors(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="no items"):
        ManifestDataset(tiny_dataset, "test", sample_rate=16000)
    with pytest.raises(ConfigError, match="no manifest"):
        ManifestDataset(tmp_path, "train", sample_rate=16000)
    with pytest.raises(ConfigError, match="without a clean item"):
        ClipBatchSampler(["a", "a"], [False, False], 1, 2)


def test_fingerprint_follows_items_labels_and_files(tmp_path):
    import shutil

    from deepaq.data.manifest import read_manifest, write_manifest

    a = make_tiny_dataset(tmp_path / "a", {"train": 2})
    b = make_tiny_dataset(tmp_path / "b", {"train": 2})  # the same build again
    first = ManifestDataset(a, "train", sample_rate=16000).fingerprint()
    assert first == ManifestDataset(b, "train", sample_rate=16000).fingerprint()
    assert first != ManifestDataset(a, "train", sample_rate=16000, teachers=("mms_2f",)).fingerprint()
    # one label moved
    frame = read_manifest(b)
    frame.loc[3, "visqol_mos"] += 0.01
    write_manifest(frame.to_dict("records"), b)
    assert ManifestDataset(b, "train", sample_rate=16000).fingerprint() != first
    # one file of other content (and size)
    c = tmp_path / "c"
    shutil.copytree(a, c)
    x, sr = sf.read(c / "audio/train00/opus_16.flac")
    sf.write(c / "audio/train00/opus_16.flac", x[: len(x) // 2], sr)
    assert ManifestDataset(c, "train", sample_rate=16000).fingerprint() != first
