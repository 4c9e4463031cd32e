"""`deepaq score`, `deepaq embed` and `deepaq calibrate` through the real entry point, on
excerpts of the real ViSQOL test pairs, with a tiny random checkpoint (a real saved model)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepaq.audio import read_audio, write_audio
from deepaq.cli import main

from conftest import save_tiny_model

HAS_PLOTS = importlib.util.find_spec("matplotlib") is not None  # deepaq[plots]; a core install has none

PAIRS = [("castanets48_stereo", "castanets48_stereo"), ("contrabassoon48_stereo", "contrabassoon48_stereo_24kbps_aac"),
         ("glock48_stereo", "glock48_stereo_48kbps_aac"), ("guitar48_stereo", "guitar48_stereo_64kbps_aac"),
         ("harpsichord48_stereo", "harpsichord48_stereo_96kbps_mp3"), ("steely48_stereo", "steely48_stereo_lp7"),
         ("strauss48_stereo", "strauss48_stereo_lp35")]
VISQOL = {"castanets48_stereo": 4.732, "contrabassoon48_stereo_24kbps_aac": 2.347, "glock48_stereo_48kbps_aac": 4.332,
          "guitar48_stereo_64kbps_aac": 4.350, "harpsichord48_stereo_96kbps_mp3": 4.224, "steely48_stereo_lp7": 2.250,
          "strauss48_stereo_lp35": 1.389}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny", model_id="tiny-cli")


@pytest.fixture(scope="module")
def clips(tmp_path_factory, visqol_testdata) -> Path:
    """3 s excerpts of the real pairs: clips/ref/<name>.wav and clips/deg/<name>.wav."""
    root = tmp_path_factory.mktemp("clips")
    for ref, deg in PAIRS:
        for folder, name in (("ref", ref), ("deg", deg)):
            x, sr = read_audio(visqol_testdata / f"{name}.wav")
            write_audio(root / folder / f"{name}.wav", x[:, sr:4 * sr], sr)
    return root


@pytest.fixture(autouse=True)
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPAQ_CACHE_DIR", str(tmp_path / "cache"))


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_every_verb_has_help_with_an_example(capsys):
    for verb in ("score", "embed", "calibrate"):
        with pytest.raises(SystemExit) as exit_:
            main([verb, "--help"])
        assert exit_.value.code == 0
        assert f"example:\n  deepaq {verb}" in capsys.readouterr().out


def test_single_pair_to_stdout_with_windows_and_plot(model_dir, visqol_testdata, tmp_path, capsys):
    ref, deg = visqol_testdata / "sopr48_stereo.wav", visqol_testdata / "sopr48_stereo_256kbps_aac.wav"
    plot = ["--plot", str(tmp_path / "q.png")] if HAS_PLOTS else []
    rc = main(["score", str(ref), str(deg), "--model", str(model_dir), "--format", "csv",
               "--windows", str(tmp_path / "w.csv"), *plot])
    assert rc == 0
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["mode"] == "full-reference" and float(row["distance"]) > 0
    assert row["distance_direction"] == "lower is better" and row["model"] == "tiny-cli"
    assert row["sample_rate"] == "48000" and 0 < float(row["delay_s"]) < 1 and row["error"] == ""
    windows = read_rows(tmp_path / "w.csv")
    assert len(windows) >= 20 and {w["id"] for w in windows} == {row["id"]}
    weights = np.array([float(w["weight_s"]) for w in windows])
    d = np.array([float(w["distance"]) for w in windows])
    assert weights @ d / weights.sum() == pytest.approx(float(row["distance"]), rel=1e-6)
    if HAS_PLOTS:
        assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"
    # one pair without --format: a readable block for a person, the same numbers
    assert main(["score", str(ref), str(deg), "--model", str(model_dir)]) == 0
    captured = capsys.readouterr()
    text = dict(line.split(None, 1) for line in captured.out.splitlines())
    assert list(text) == ["degraded", "reference", "distance", "delay", "level", "audio", "model"]
    assert text["degraded"] == str(deg) and text["model"] == "tiny-cli 1"
    assert float(text["distance"].split()[0]) == pytest.approx(float(row["distance"]), abs=1e-4)
    assert text["delay"].startswith(f"{1000 * float(row['delay_s']):+.1f} ms") and captured.err == ""
    # --format jsonl on stdout; a --format that contradicts --out's suffix is refused
    assert main(["score", str(ref), str(deg), "--model", str(model_dir), "--format", "jsonl"]) == 0
    assert json.loads(capsys.readouterr().out)["distance"] == pytest.approx(float(row["distance"]), rel=1e-9)
    assert main(["score", str(ref), str(deg), "--model", str(model_dir), "--format", "jsonl",
                 "--out", str(tmp_path / "x.csv")]) == 1
    assert "disagrees" in capsys.readouterr().err


@pytest.mark.skipif(HAS_PLOTS, reason="checks the message of a core install without matplotlib")
def test_plot_without_matplotlib_names_the_extra(model_dir, visqol_testdata, tmp_path, capsys):
    ref, deg = visqol_testdata / "sopr48_stereo.wav", visqol_testdata / "sopr48_stereo_256kbps_aac.wav"
    assert main(["score", str(ref), str(deg), "--model", str(model_dir), "--plot", str(tmp_path / "q.png")]) == 1
    assert "pip install 'deepaq[plots]'" in capsys.readouterr().err


def test_pairs_csv_with_odd_names_and_error_rows(model_dir, clips, tmp_path):
    folder = tmp_path / "my pairs"
    folder.mkdir()
    (folder / "réf 1.wav").symlink_to(clips / "ref" / "glock48_stereo.wav")
    (folder / "dég 1.wav").symlink_to(clips / "deg" / "glock48_stereo_48kbps_aac.wav")
    (folder / "notaudio.wav").write_text("hello")
    (folder / "pairs.csv").write_text("id,reference,degraded\n"
                                      "good,réf 1.wav,dég 1.wav\n"
                                      "gone,réf 1.wav,missing.wav\n"
                                      "junk,réf 1.wav,notaudio.wav\n"
                                      "blank,,dég 1.wav\n", encoding="utf-8")
    out = tmp_path / "res.csv"
    plot = ["--plot", str(tmp_path / "p.png")] if HAS_PLOTS else []
    rc = main(["score", "--pairs", str(folder / "pairs.csv"), "--model", str(model_dir), "--out", str(out),
               "--windows", str(tmp_path / "w.jsonl"), *plot, "--workers", "2"])
    assert rc == 1
    rows = {r["id"]: r for r in read_rows(out)}
    assert list(rows) == ["good", "gone", "junk", "blank"]
    assert float(rows["good"]["distance"]) > 0 and rows["good"]["error"] == ""
    assert rows["good"]["degraded"].endswith("my pairs/dég 1.wav")
    assert "missing.wav: file not found" in rows["gone"]["error"] and rows["gone"]["distance"] == ""
    assert "notaudio.wav" in rows["junk"]["error"]
    assert "row 5 has no reference" in rows["blank"]["error"]
    assert {w["id"] for w in read_rows(tmp_path / "w.jsonl")} == {"good"}
    assert (tmp_path / "p_good.png").is_file() or not HAS_PLOTS
    # an existing output is never clobbered by accident
    assert main(["score", "--pairs", str(folder / "pairs.csv"), "--model", str(model_dir), "--out", str(out)]) == 1


def test_paired_folders_to_jsonl(model_dir, clips, tmp_path):
    ref_dir, deg_dir = tmp_path / "ref", tmp_path / "deg"
    (ref_dir / "sub").mkdir(parents=True)
    (deg_dir / "sub").mkdir(parents=True)
    (ref_dir / "a.wav").symlink_to(clips / "ref" / "guitar48_stereo.wav")
    (deg_dir / "a.wav").symlink_to(clips / "deg" / "guitar48_stereo_64kbps_aac.wav")
    (ref_dir / "sub" / "b.wav").symlink_to(clips / "ref" / "strauss48_stereo.wav")
    write_audio(deg_dir / "sub" / "b.flac", *read_audio(clips / "deg" / "strauss48_stereo_lp35.wav"))
    (deg_dir / "orphan.wav").symlink_to(clips / "deg" / "steely48_stereo_lp7.wav")
    out = tmp_path / "res.jsonl"
    rc = main(["score", "--ref-dir", str(ref_dir), "--deg-dir", str(deg_dir), "--model", str(model_dir),
               "--out", str(out)])
    assert rc == 1
    rows = {r["id"]: r for r in read_rows(out)}
    assert set(rows) == {"a.wav", "sub/b.flac", "orphan.wav"}
    assert rows["sub/b.flac"]["reference"].endswith("sub/b.wav") and rows["sub/b.flac"]["distance"] > 0
    assert rows["a.wav"]["error"] is None and rows["a.wav"]["quality"] is None
    assert "no reference" in rows["orphan.wav"]["error"]


def test_nmr_with_bank_matrix_and_folder(model_dir, clips, tmp_path):
    bank = tmp_path / "bank.safetensors"
    refs = tmp_path / "nmr refs"
    refs.mkdir()
    for name in ("castanets48_stereo", "harpsichord48_stereo", "steely48_stereo"):
        (refs / f"{name}.wav").symlink_to(clips / "ref" / f"{name}.wav")
    assert main(["embed", str(refs), "--bank", str(bank), "--model", str(model_dir)]) == 0
    degs = [str(clips / "deg" / f"{n}.wav") for n in ("glock48_stereo_48kbps_aac", "strauss48_stereo_lp35")]
    by_bank, by_dir = tmp_path / "bank.csv", tmp_path / "dir.csv"
    assert main(["score", "--nmr-bank", str(bank), *degs, "--model", str(model_dir), "--out", str(by_bank),
                 "--nmr-matrix", str(tmp_path / "m.csv")]) == 0
    assert main(["score", "--nmr-dir", str(refs), *degs, "--model", str(model_dir), "--out", str(by_dir)]) == 0
    a, b = read_rows(by_bank), read_rows(by_dir)
    assert [r["mode"] for r in a] == ["nmr", "nmr"] and a[0]["delay_s"] == ""
    assert [float(r["distance"]) for r in a] == pytest.approx([float(r["distance"]) for r in b], rel=1e-6)
    matrix = read_rows(tmp_path / "m.csv")
    assert list(matrix[0]) == ["id", "castanets48_stereo.wav", "harpsichord48_stereo.wav", "steely48_stereo.wav"]
    for m, r in zip(matrix, a):
        assert np.mean([float(v) for k, v in m.items() if k != "id"]) == pytest.approx(float(r["distance"]))
    assert main(["score", "--nmr-bank", "default", *degs, "--model", str(model_dir)]) == 1  # none shipped


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepaq", *args]


N_RESUME = 14


def test_resume_after_kill_gives_every_row_once(model_dir, clips, tmp_path, capsys):
    lines = ["id,reference,degraded"]
    for i in range(N_RESUME):
        ref, deg = PAIRS[i % len(PAIRS)]
        lines.append(f"item{i:02d},{clips / 'ref' / (ref + '.wav')},{clips / 'deg' / (deg + '.wav')}")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "res.csv"
    args = ["score", "--pairs", str(pairs), "--model", str(model_dir), "--out", str(out), "--no-cache"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 3:  # header + 2 rows
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = out.read_text()
    done_before = len(read_rows(out))
    assert 2 <= done_before < N_RESUME, "the run must be killed part-way"
    assert main([*args, "--resume"]) == 0  # the resumed run goes through the same entry point in-process
    assert f"{N_RESUME - done_before} scored, 0 failed, {done_before} already in" in capsys.readouterr().err
    rows = read_rows(out)
    assert sorted(r["id"] for r in rows) == [f"item{i:02d}" for i in range(N_RESUME)]
    assert out.read_text().startswith(before.rsplit("\n", 1)[0])  # finished rows kept as they were
    assert all(float(r["distance"]) >= 0 and r["error"] == "" for r in rows)


def test_calibrate_then_score_with_the_mapping(model_dir, clips, tmp_path, capsys):
    listening = tmp_path / "listening.csv"
    listening.write_text("reference,degraded,score\n" + "".join(
        f"ref/{ref}.wav,deg/{deg}.wav,{VISQOL[deg]}\n" for ref, deg in PAIRS))
    (tmp_path / "ref").symlink_to(clips / "ref")
    (tmp_path / "deg").symlink_to(clips / "deg")
    mapping = tmp_path / "map.json"
    assert main(["calibrate", str(listening), "-o", str(mapping), "--model", str(model_dir)]) == 0
    assert "mapping fitted on 7 items" in capsys.readouterr().out
    fitted = json.loads(mapping.read_text())
    assert fitted["kind"] == "cubic" and fitted["meta"]["n"] == 7 and fitted["meta"]["model"] == "tiny-cli"
    dist = tmp_path / "dist.csv"
    dist.write_text("distance,score\n0.01,4.8\n0.05,4.1\n0.1,3.0\n0.2,2.2\n0.4,1.4\n")
    assert main(["calibrate", str(dist), "--kind", "mlp", "-o", str(tmp_path / "mlp.json")]) == 0
    out = tmp_path / "res.csv"
    assert main(["score", "--pairs", str(listening), "--model", str(model_dir), "--mapping", str(mapping),
                 "--out", str(out)]) == 0
    rows = read_rows(out)
    assert all(r["quality"] and r["quality_direction"] == "higher is better" for r in rows)
    from deepaq.mapping import Mapping

    m = Mapping.load(mapping)
    assert [float(r["quality"]) for r in rows] == pytest.approx([float(m(float(r["distance"]))) for r in rows])
    bad = tmp_path / "bad.csv"
    bad.write_text("distance,score\n0.1,x\n")
    assert main(["calibrate", str(bad), "-o", str(tmp_path / "x.json")]) == 1


def test_a_warning_about_a_file_is_one_line_that_names_it(model_dir, tmp_path):
    """Not Python's two-line form with the source line that raised it."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((1, 3 * 16000))).astype(np.float32)
    write_audio(tmp_path / "ref16k.wav", x, 16000)
    write_audio(tmp_path / "deg16k.wav", 0.9 * x, 16000)
    done = subprocess.run([sys.executable, "-m", "deepaq", "score", str(tmp_path / "ref16k.wav"),
                           str(tmp_path / "deg16k.wav"), "--model", str(model_dir), "--network-only"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "upsampling" in line]
    assert warned and all(line.startswith("deepaq: warning: ") and "16k.wav: upsampling from 16000 Hz" in line
                          for line in warned)
    assert "UserWarning" not in done.stderr and "load_audio(" not in done.stderr
