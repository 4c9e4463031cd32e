"""The evaluation score cache: content-keyed, append-only, robust to an interrupted write."""

from __future__ import annotations

import shutil

from deepaq.evaluation.cache import ScoreCache, file_hash, metric_identity


def test_keys_follow_file_content_and_metric_identity(tmp_path):
    a = tmp_path / "a.wav"
    a.write_bytes(b"one")
    moved = tmp_path / "sub" / "renamed.wav"
    moved.parent.mkdir()
    shutil.copy(a, moved)
    b = tmp_path / "b.wav"
    b.write_bytes(b"two")
    ident = metric_identity("visqol", "3.8", {})
    assert ScoreCache.key(ident, file_hash(a), file_hash(b)) == ScoreCache.key(ident, file_hash(moved), file_hash(b))
    assert ScoreCache.key(ident, file_hash(a), file_hash(b)) != ScoreCache.key(ident, file_hash(b), file_hash(a))
    other = metric_identity("visqol", "3.9", {})
    assert ScoreCache.key(ident, "x", "y") != ScoreCache.key(other, "x", "y")
    assert metric_identity("haaqi", "1", {"level_db_spl": 65}) != metric_identity("haaqi", "1", {"level_db_spl": 70})


def test_scores_survive_a_new_process_and_a_line_cut_short(tmp_path):
    cache = ScoreCache(tmp_path)
    cache.put("m", "k1", 1.5)
    cache.put("m", "k2", -2.0)
    path = tmp_path / "scores" / "m.jsonl"
    with open(path, "a") as f:
        f.write('{"key": "k3", "sco')  # an interrupted run
    fresh = ScoreCache(tmp_path)
    assert (fresh.get("m", "k1"), fresh.get("m", "k2"), fresh.get("m", "k3")) == (1.5, -2.0, None)
    fresh.put("m", "k3", 0.25)  # starts on a new line, so the next reader sees it
    again = ScoreCache(tmp_path)
    assert again.get("m", "k3") == 0.25 and again.get("m", "k1") == 1.5
    assert again.get("other", "k1") is None
