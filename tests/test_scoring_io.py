"""Batch inputs and resumable outputs of `deepaq score` (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepaq.errors import AudioError, ConfigError
from deepaq.scoring import ScoreJob, ScoreResult
from deepaq.scoring.inputs import jobs_from_dirs, jobs_from_pairs_csv, jobs_from_paths
from deepaq.scoring.output import COLUMNS, open_results, open_side_table, result_row


def test_pairs_csv_paths_ids_and_problems(tmp_path):
    csv_path = tmp_path / "sub dir" / "pairs.csv"
    csv_path.parent.mkdir()
    csv_path.write_text("reference , degraded\nr.wav,d.wav\nr.wav,d.wav\n/abs/r.wav,\n", encoding="utf-8")
    jobs = jobs_from_pairs_csv(csv_path)
    assert [j.id for j in jobs] == ["d.wav", "d.wav#2", "row4"]
    assert jobs[0].reference == csv_path.parent / "r.wav" and jobs[0].degraded == csv_path.parent / "d.wav"
    assert jobs[2].reference == Path("/abs/r.wav") and "row 4 has no degraded path" in jobs[2].problem
    nmr = jobs_from_pairs_csv(csv_path, nmr=True)
    assert all(j.reference is None for j in nmr)


@pytest.mark.parametrize("text, message", [
    ("ref,deg\na,b\n", "needs a header with reference, degraded"),
    ("id,reference,degraded\nx,a,b\nx,c,d\n", "duplicate ids x"),
])
def test_pairs_csv_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        jobs_from_pairs_csv(path)
    assert "p.csv" in str(err.value)
    with pytest.raises(ConfigError, match="missing.csv"):
        jobs_from_pairs_csv(tmp_path / "missing.csv")


def test_folders_pair_by_relative_path_and_suffix(tmp_path):
    for rel in ("ref/a.wav", "ref/x/b.wav", "deg/a.wav", "deg/x/b.mp3", "deg/c.flac", "deg/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    jobs = {j.id: j for j in jobs_from_dirs(tmp_path / "ref", tmp_path / "deg")}
    assert sorted(jobs) == ["a.wav", "c.flac", "x/b.mp3"]
    assert jobs["x/b.mp3"].reference == tmp_path / "ref/x/b.wav" and jobs["x/b.mp3"].problem is None
    assert "no reference" in jobs["c.flac"].problem
    paths = jobs_from_paths([tmp_path / "deg", tmp_path / "deg" / "a.wav"])
    assert [j.id for j in paths] == ["a.wav", "c.flac", "x/b.mp3", str(tmp_path / "deg" / "a.wav")]


def _result() -> ScoreResult:
    return ScoreResult("full-reference", 0.25, None, "m", "1", 48000, 3.0, delay_samples=480)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_resume_drops_a_cut_row_and_skips_done_ids(tmp_path, suffix):
    out = tmp_path / f"res{suffix}"
    table, done = open_results(out)
    assert done == set()
    table.write(result_row(ScoreJob("a", "d.wav", "r.wav"), _result()))
    table.write(result_row(ScoreJob("b", "e.wav", "r.wav"), AudioError("e.wav", "file not found"), model=("m", "1")))
    table.close()
    with open(out, "a") as f:
        f.write('c,r.wav,x.wav,full-ref' if suffix == ".csv" else '{"id": "c", "dist')  # killed mid-row
    with pytest.raises(ConfigError, match="--resume"):
        open_results(out)
    table, done = open_results(out, resume=True)
    assert done == {"a", "b"}
    table.write(result_row(ScoreJob("c", "x.wav", "r.wav"), _result()))
    table.close()
    text = out.read_text()
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert [r["id"] for r in rows] == ["a", "b", "c"] and rows[0]["delay_s"] == 0.01
        assert rows[1]["error"] == "e.wav: file not found" and rows[1]["model"] == "m"
    else:
        lines = text.splitlines()
        assert lines[0] == ",".join(COLUMNS) and [ln.split(",")[0] for ln in lines[1:]] == ["a", "b", "c"]


def test_side_table_keeps_only_rows_of_finished_items(tmp_path):
    path = tmp_path / "w.csv"
    table = open_side_table(path, ["id", "v"], set(), resume=False)
    for i in ("a", "a", "b"):
        table.write({"id": i, "v": 1})
    table.close()
    open_side_table(path, ["id", "v"], {"a"}, resume=True).close()
    assert path.read_text().splitlines() == ["id,v", "a,1", "a,1"]
    with pytest.raises(ConfigError, match="columns differ"):
        open_side_table(path, ["id", "w"], {"a"}, resume=True)
    with pytest.raises(ConfigError, match=r"\.csv or \.jsonl"):
        open_results(tmp_path / "res.txt")
