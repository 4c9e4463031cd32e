"""`deepaq build-data` end to end on a small synthetic corpus: real codecs, real ViSQOL, real files.

One uninterrupted build (module fixture) is the reference; a second build is killed with
SIGKILL part-way and resumed, and must end byte-for-byte equal to it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from deepaq.data.build import BuildConfig, assign_splits, build_dataset, clip_positions
from deepaq.data.manifest import COLUMNS, SPLITS, read_manifest
from deepaq.errors import ConfigError

GRID = ["--clip-seconds", "2", "--max-clips", "2", "--codecs", "opus,mp3", "--bitrates", "16,128", "--lowpass", "3500"]
CONFIG = BuildConfig(clip_seconds=2, max_clips_per_source=2, codecs=("opus", "mp3"), bitrates=(16, 128), lowpass_hz=(3500,))
ITEMS_PER_CLIP = 6  # clean + 2 codecs x 2 bitrates + 1 low-pass


def _music(seconds: float, sr: int, seed: int, channels: int = 2) -> np.ndarray:
    """Plucked harmonic notes with a little noise: broadband enough for codecs to audibly differ."""
    rng = np.random.default_rng(seed)
    n, note = int(seconds * sr), int(1.5 * sr)  # each note decays for 1.5 s (to -52 dB)
    x = np.zeros((channels, n + note))
    t = np.arange(note) / sr
    for onset in range(0, n, sr // 4):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        for h in range(1, 12):
            pan = rng.uniform(0.3, 1, size=(channels, 1))
            x[:, onset : onset + note] += pan * np.exp(-4 * t) * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h
    x = x[:, :n] + 0.01 * rng.standard_normal((channels, n))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three good sources at 44.1 kHz in two formats, one with a silent stretch; a broken file; a too-short one."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "sub dir").mkdir()
    sf.write(root / "a.flac", _music(4.5, 44100, 1).T, 44100)
    sf.write(root / "b.wav", _music(3.0, 44100, 2, channels=1).T, 44100)
    gap = _music(5.0, 44100, 3)
    gap[:, int(1.0 * 44100) : int(3.0 * 44100)] = 0  # two silent seconds
    sf.write(root / "sub dir" / "c.flac", gap.T, 44100)
    (root / "broken.wav").write_bytes(b"RIFF not really a wav file")
    sf.write(root / "short.wav", _music(0.5, 44100, 5).T, 44100)
    return root


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> Path:
    dataset = tmp_path_factory.mktemp("dataset") / "ds"
    build_dataset([corpus], dataset, CONFIG, workers=2, write_csv=True)
    return dataset


def test_default_grid_is_the_papers():
    from deepaq.codecs import PAPER_BITRATES

    config = BuildConfig()
    assert config.codecs == ("opus", "mp3", "aac") and config.bitrates == tuple(map(float, PAPER_BITRATES))
    assert config.clip_seconds == 5.0 and len(config.conditions()) == 22
    clean = config.conditions()[0]
    assert (clean.suffix, clean.codec, clean.bitrate_kbps) == ("clean", "clean", math.inf)


def test_split_counts_are_exact_and_seeded():
    labels = assign_splits(10, (0.8, 0.1, 0.1), seed=0)
    assert sorted(labels).count("train") == 8 and labels.count("validation") == 1 and labels.count("test") == 1
    assert labels == assign_splits(10, (0.8, 0.1, 0.1), seed=0)
    assert labels != assign_splits(10, (0.8, 0.1, 0.1), seed=1)
    few = assign_splits(3, (0.8, 0.1, 0.1), seed=0)
    assert sorted(few) == ["test", "train", "validation"]  # every split with a ratio gets a file


def test_clip_positions_skip_silence_and_spread():
    sr = 48000
    noise = np.random.default_rng(0).standard_normal((2, 3 * sr)).astype(np.float32) * 0.1
    x = np.concatenate([noise, np.zeros((2, 4 * sr), np.float32), noise], axis=1)
    starts = clip_positions(x, BuildConfig(clip_seconds=2, max_clips_per_source=10))
    # nothing inside the silent 3-7 s stretch; a clip may reach into it by at most 20 % (0.4 s)
    assert starts == [0, int(6.6 * sr)]
    long = np.random.default_rng(1).standard_normal((1, 30 * sr)).astype(np.float32) * 0.1
    spread = clip_positions(long, BuildConfig(clip_seconds=2, max_clips_per_source=3))
    assert spread == [0, 14 * sr, 28 * sr]


def test_manifest_schema_labels_and_files(built):
    m = read_manifest(built)
    assert list(m.columns) == list(COLUMNS)
    assert m.item_id.is_unique and len(m) % ITEMS_PER_CLIP == 0
    assert set(m.source) == {"a.flac", "b.wav", "sub dir/c.flac"}
    # a (4.5 s): 2 clips; b (3 s): 1; c: music at 0-1 s and 3-5 s -> one clip, 0.4 s into the gap
    assert m.groupby("source").clip_id.nunique().to_dict() == {"a.flac": 2, "b.wav": 1, "sub dir/c.flac": 1}
    assert m[m.source == "sub dir/c.flac"].clip_start_s.iloc[0] == pytest.approx(2.6)
    assert m.groupby("source").split.nunique().max() == 1  # no recording in two splits
    assert set(m.split) <= {"train", "validation", "test"}
    clean = m[m.codec == "clean"]
    assert np.isinf(clean.bitrate_kbps).all() and (clean.bitrate_kbps > 0).all()
    assert m[m.codec == "lowpass"].bitrate_kbps.isna().all()
    assert set(m[m.codec == "opus"].bitrate_kbps) == {16.0, 128.0}
    assert clean.visqol_mos.to_numpy() == pytest.approx(4.7321, abs=1e-3)  # ViSQOL's self-score
    assert m.visqol_mos.between(1, 5).all()
    for _, clip in m.groupby("clip_id"):
        mos = clip.set_index("item_id").visqol_mos
        cid = clip.clip_id.iloc[0]
        assert mos[f"{cid}__mp3_16"] < mos[f"{cid}__mp3_128"] < mos[f"{cid}__clean"] + 1e-9
    versions = json.loads(m.codec_versions.iloc[0])
    assert "libavcodec" in versions and m.visqol_version.iloc[0].startswith("visqol-python")
    assert (m.seed == 0).all() and (m.sample_rate == 48000).all()
    for path in m.path:
        info = sf.info(built / path)
        assert (info.samplerate, info.subtype, info.format) == (48000, "PCM_16", "FLAC")
        assert info.frames == 2 * 48000
    assert sf.info(built / m[m.source == "b.wav"].path.iloc[0]).channels == 1  # mono stays mono
    assert sf.info(built / m[m.source == "a.flac"].path.iloc[0]).channels == 2


def test_labels_come_from_the_stored_files(built):
    from deepaq.baselines.visqol import VisqolV3

    m = read_manifest(built).set_index("item_id")
    item = m[m.codec == "opus"].index[0]
    clean = f"{m.loc[item, 'clip_id']}__clean"
    mos = VisqolV3().score(reference=built / m.loc[clean, "path"], degraded=built / m.loc[item, "path"])
    assert mos == pytest.approx(m.loc[item, "visqol_mos"], abs=1e-6)


def test_csv_twin_and_errors(built):
    parquet = read_manifest(built)
    twin = read_manifest(built / "manifest.csv")
    assert "inf" in (built / "manifest.csv").read_text()
    pd.testing.assert_frame_equal(parquet, twin, check_exact=False, rtol=1e-12)
    errors = pd.read_csv(built / "errors.csv")
    assert errors.source.iloc[0].endswith("/broken.wav")
    assert len(errors) == 1 and errors.stage.iloc[0] == "scan" and "broken.wav" in errors.error.iloc[0]


def _cli(corpus: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "deepaq", "build-data", str(corpus), "-o", str(out), "--workers", str(workers), *GRID]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_build_resumes_to_the_same_result(corpus, built, tmp_path):
    """Killed (kill -9 of the CLI) with one worker, finished with two: the same dataset as one
    uninterrupted 2-worker run. The orphaned worker ends itself."""
    out = tmp_path / "resumed"
    journal = out / ".deepaq-build" / "journal.jsonl"
    proc = subprocess.Popen(_cli(corpus, out, 1), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if journal.exists() and '"kind": "clip"' in journal.read_text():
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the build finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the CLI only, mid-item; its worker is orphaned
        proc.wait()
        deadline = time.time() + 20
        while _group_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert not _group_alive(proc.pid), "worker processes outlived the killed build"
    finally:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = journal.read_text().count('"kind": "clip"')
    assert 1 <= done_before < 4 and not (out / "manifest.parquet").exists()

    rerun = subprocess.run(_cli(corpus, out, 2), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert journal.read_text().count('"kind": "clip"') == 4  # finished clips were not redone
    # identical but for ViSQOL's last bits (numpy's SIMD sums vary with memory alignment, ~1e-14)
    pd.testing.assert_frame_equal(read_manifest(out), read_manifest(built), check_exact=False, rtol=1e-12, atol=0)
    assert read_manifest(out).drop(columns="visqol_mos").equals(read_manifest(built).drop(columns="visqol_mos"))
    for path in read_manifest(out).path:
        a, _ = sf.read(out / path, dtype="int16")
        b, _ = sf.read(built / path, dtype="int16")
        assert np.array_equal(a, b), path
    assert not [p for p in out.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]


def test_rerun_of_a_finished_build_retries_only_failures(corpus, built):
    journal = built / ".deepaq-build" / "journal.jsonl"
    before = journal.read_text().splitlines()
    manifest = read_manifest(built)
    summary = build_dataset([corpus], built, CONFIG, workers=1, write_csv=True)
    added = journal.read_text().splitlines()[len(before):]
    assert len(added) == 1 and "broken.wav" in added[0]  # the unreadable file was tried again
    assert (summary.items, summary.errors) == (len(manifest), 1)
    assert summary.items_per_split == manifest.split.value_counts().reindex(list(SPLITS), fill_value=0).to_dict()
    pd.testing.assert_frame_equal(read_manifest(built), manifest)


def test_an_item_that_fails_becomes_an_error_row(tmp_path):
    """FFmpeg's mp2 encoder refuses 40 kbps at 48 kHz stereo: that item fails, the rest is built."""
    (tmp_path / "src").mkdir()
    sf.write(tmp_path / "src" / "song.flac", _music(1.5, 48000, 7).T, 48000)
    config = BuildConfig(clip_seconds=1, codecs=("mp2",), bitrates=(32, 40))
    summary = build_dataset([tmp_path / "src"], tmp_path / "ds", config, workers=1)
    m = read_manifest(tmp_path / "ds")
    assert sorted(m.item_id.str.split("__").str[1]) == ["clean", "mp2_32"]
    errors = pd.read_csv(tmp_path / "ds" / "errors.csv")
    assert summary.errors == 1 and errors.item_id.iloc[0].endswith("__mp2_40") and errors.stage.iloc[0] == "code"
    assert "mp2 at 40 kbps" in errors.error.iloc[0]
    assert not list((tmp_path / "ds" / "audio").glob("*/mp2_40.flac"))


def test_bitrate_only_build_codes_the_same_audio_without_visqol(corpus, built, tmp_path):
    fast = build_dataset([corpus], tmp_path / "fast", BuildConfig(**{**CONFIG.__dict__, "visqol": False}), workers=1)
    m, full = read_manifest(fast.manifest.parent), read_manifest(built)
    assert list(m.item_id) == list(full.item_id) and list(m.split) == list(full.split)
    assert m.visqol_mos.isna().all() and (m.visqol_version == "").all()
    assert m.bitrate_kbps.equals(full.bitrate_kbps)
    for rel in m.path[:4]:
        assert np.array_equal(sf.read(tmp_path / "fast" / rel)[0], sf.read(built / rel)[0])


def test_a_setting_missing_from_an_older_dataset_reads_as_its_default(corpus, tmp_path):
    dataset = tmp_path / "old"
    config = BuildConfig(**{**CONFIG.__dict__, "codecs": ("opus",), "bitrates": (16,), "visqol": False})
    build_dataset([corpus], dataset, config, workers=1)
    stored = dataset / ".deepaq-build" / "config.json"
    old = json.loads(stored.read_text())
    del old["visqol"]  # as written before the setting was added (default: with ViSQOL)
    stored.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="visqol differ"):
        build_dataset([corpus], dataset, config, workers=1)


def test_rerun_with_other_settings_is_refused(corpus, built):
    other = BuildConfig(**{**CONFIG.__dict__, "bitrates": (16, 64)})
    with pytest.raises(ConfigError, match="bitrates differ"):
        build_dataset([corpus], built, other, workers=1)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--codecs", "vorbis"], "unknown codec 'vorbis'"),
        (["--codecs", "mp2", "--bitrates", "16"], "mp2 cannot code at"),
        (["--clip-seconds", "0.5"], "between 1 and 60 s"),
        (["--bitrates", "16,32,16"], "lists a value twice"),
    ],
)
def test_bad_settings_fail_fast(corpus, tmp_path, capsys, args, message):
    from deepaq.cli import main

    code = main(["build-data", str(corpus), "-o", str(tmp_path / "x"), *args])
    assert code == 1 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_empty_or_ambiguous_inputs_are_clear_errors(corpus, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no audio files"):
        build_dataset([tmp_path / "empty"], tmp_path / "ds", CONFIG, workers=1)
    (tmp_path / "x" / corpus.name).mkdir(parents=True)
    with pytest.raises(ConfigError, match="different names"):
        build_dataset([corpus, tmp_path / "x" / corpus.name], tmp_path / "ds", CONFIG, workers=1)
    assert not (tmp_path / "ds").exists()
