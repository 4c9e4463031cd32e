"""`deepaq label`: ViSQOL labels for a pairs CSV, error rows for bad pairs, resume by id."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepaq.baselines.visqol import VisqolV3
from deepaq.cli import main
from deepaq.data.labels import LABEL_COLUMNS, label_pairs, read_pairs
from deepaq.errors import ConfigError


@pytest.fixture(scope="module")
def pairs_csv(tmp_path_factory) -> Path:
    """Real coded pairs (Opus 16 and MP3 128 of a 2 s tone mix), a missing file and a too-short file."""
    from deepaq.codecs import degrade

    root = tmp_path_factory.mktemp("pairs")
    (root / "deg dir").mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(2 * 48000) / 48000
    ref = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220, 660, 1800, 5200, 9100), 1))
    ref = (0.3 * ref / np.abs(ref).max() + 0.005 * rng.standard_normal(t.size)).astype(np.float32)[None]
    sf.write(root / "ref.wav", ref.T, 48000)
    sf.write(root / "deg dir" / "opus16.flac", degrade(ref, 48000, "opus", 16).T, 48000)
    sf.write(root / "deg dir" / "mp3128.flac", degrade(ref, 48000, "mp3", 128).T, 48000)
    sf.write(root / "short.wav", ref[0, :20000], 48000)
    rows = [
        ("a", "ref.wav", "deg dir/opus16.flac", "16"),
        ("b", "ref.wav", "deg dir/mp3128.flac", "128"),
        ("c", "ref.wav", "deg dir/missing.flac", ""),
        ("d", "ref.wav", "short.wav", ""),
    ]
    path = root / "pairs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "reference", "degraded", "bitrate_kbps"])
        writer.writerows(rows)
    return path


def _read(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_labels_errors_and_resume(pairs_csv, tmp_path):
    out = tmp_path / "labels.csv"
    assert main(["label", str(pairs_csv), "-o", str(out), "--workers", "1"]) == 0
    rows = _read(out)
    assert list(rows) == ["a", "b", "c", "d"]  # input order
    assert tuple(next(csv.reader(open(out)))) == LABEL_COLUMNS
    scorer = VisqolV3()
    folder = pairs_csv.parent
    expected = scorer.score(reference=folder / "ref.wav", degraded=folder / "deg dir" / "opus16.flac")
    assert float(rows["a"]["visqol_mos"]) == pytest.approx(expected, abs=1e-9)
    assert 1 <= float(rows["a"]["visqol_mos"]) < float(rows["b"]["visqol_mos"]) <= 5
    assert float(rows["a"]["bitrate_kbps"]) == 16 and math.isnan(float(rows["c"]["bitrate_kbps"]))
    assert rows["a"]["error"] == "" and rows["a"]["visqol_version"] == scorer.version
    assert "missing.flac" in rows["c"]["error"] and "file not found" in rows["c"]["error"]
    assert "short.wav" in rows["d"]["error"] and math.isnan(float(rows["d"]["visqol_mos"]))

    # a kill mid-write leaves a torn last line; pair "b" lost: only b and the error rows run again
    lines = out.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("b,")]
    out.write_text("".join(kept) + "b,ref.wav,deg dir/mp3")
    scored, errors = label_pairs(pairs_csv, out, workers=1)
    assert (scored, errors) == (3, 2)
    again = _read(out)
    assert list(again) == ["a", "b", "c", "d"]
    assert again["a"] == rows["a"]  # kept as written
    # "b" was scored again: equal up to floating-point summation order (seen: 1 ulp apart)
    assert float(again["b"]["visqol_mos"]) == pytest.approx(float(rows["b"]["visqol_mos"]), rel=1e-12)


def test_bad_pairs_csv_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ref,deg\nx.wav,y.wav\n")
    with pytest.raises(ConfigError, match="bad.csv.*'reference' and 'degraded'"):
        read_pairs(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("reference,degraded\nx.wav,y.wav\nz.wav,y.wav\n")
    with pytest.raises(ConfigError, match="line 3: id 'y.wav' appears twice"):
        read_pairs(dup)
    with pytest.raises(ConfigError, match="not found"):
        read_pairs(tmp_path / "nope.csv")
    other = tmp_path / "other.csv"
    other.write_text("x,y\n1,2\n")
    good = tmp_path / "good.csv"
    good.write_text("reference,degraded\nx.wav,y.wav\n")
    with pytest.raises(ConfigError, match="not a `deepaq label` output"):
        label_pairs(good, other, workers=1)
