"""Ladders of known order: planning, build-data --ladders, the sampler, the loss term and validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from deepaq.degradations import apply, get
from deepaq.degradations.ladders import LADDERS, plan_ladder, resolve_ladders
from deepaq.errors import ConfigError

SR = 48_000


def _setting(name: str, params: dict) -> float:
    return params[LADDERS[name].param]


SIMPLE = [name for name, ladder in LADDERS.items() if ladder.base is None]


@pytest.mark.parametrize("name", SIMPLE)
def test_plans_go_worst_to_best_spread_apart_and_valid(name):
    ladder = LADDERS[name]
    plan = plan_ladder("song-abc-00001000", name, 5, seed=0)
    assert plan == plan_ladder("song-abc-00001000", name, 5, seed=0)
    assert plan != plan_ladder("song-abc-00002000", name, 5, seed=0)
    assert [s for s, _, _ in plan] == [f"ld_{name}_{i}" for i in range(5)]
    values = [_setting(name, p) for _, _, p in plan]
    ascending = values if ladder.higher_is_better else values[::-1]
    assert ascending == sorted(ascending) and len(set(values)) == 5
    for _, family, params in plan:
        assert family == ladder.family and params.items() <= get(family).resolve(params).items()
    if not ladder.values:  # continuous: never closer than half a stratum of its window
        scale = np.log if ladder.log else (lambda v: v)
        width = ladder.span * (scale(ladder.high) - scale(ladder.low))
        gaps = np.diff(scale(np.asarray(ascending)))
        assert gaps.min() >= 0.5 * width / 5 - 1e-2 and gaps.sum() <= width


def test_fine_ladders_place_their_window_anywhere_in_the_range():
    ladder = LADDERS["noise_shaped"]
    plans = [[_setting("noise_shaped", p) for _, _, p in plan_ladder(f"clip-{i}", "noise_shaped", 5, 0)] for i in range(200)]
    lows, highs = [min(v) for v in plans], [max(v) for v in plans]
    assert min(lows) < ladder.low + 2 and max(highs) > ladder.high - 2  # windows reach both ends
    assert max(h - lo for lo, h in zip(lows, highs)) <= ladder.span * (ladder.high - ladder.low)


def test_compound_ladders_stack_their_steps_on_one_base_and_end_with_the_base_alone():
    ladder = LADDERS["lowpass_noise"]
    plan = plan_ladder("song-abc-00001000", "lowpass_noise", 5, seed=0)
    assert plan == plan_ladder("song-abc-00001000", "lowpass_noise", 5, seed=0)
    *steps, (suffix, family, base) = plan
    assert suffix == "ld_lowpass_noise_4" and family == "bandlimit" and base["kind"] == "lowpass"
    assert ladder.base.low <= base["high_hz"] <= ladder.base.high
    assert all(f == "chain" and p["first"] == "bandlimit" and p["first_params"] == base for _, f, p in steps)
    snrs = [p["second_params"]["snr_db"] for _, _, p in steps]
    assert snrs == sorted(snrs) and len(set(snrs)) == 4
    cutoffs = {plan_ladder(f"clip-{i}", "lowpass_noise", 5, 0)[-1][2]["high_hz"] for i in range(50)}
    assert len(cutoffs) == 50 and min(cutoffs) < 4000 and max(cutoffs) > 10000  # one base per clip, over the range
    with pytest.raises(ConfigError, match="compound ladder needs at least 3 steps"):
        plan_ladder("c", "lowpass_noise", 2, 0)


def test_a_lower_step_does_more_damage():
    """The order the ladders assume, measured on a signal: error energy grows down each ladder."""
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((1, SR))).astype(np.float32)
    for name in ("lowpass", "noise_white", "clipping", "noise_shaped", "lowpass_noise"):
        errors = [float(np.mean((apply(f, x, SR, p, rng_seed=1) - x) ** 2)) for _, f, p in plan_ladder("c", name, 5, 0)]
        assert errors == sorted(errors, reverse=True), name


def test_unknown_ladders_and_too_many_steps_are_errors():
    assert resolve_ladders("all") == tuple(LADDERS)
    with pytest.raises(ConfigError, match="unknown ladder"):
        resolve_ladders("mp2")  # the held-out codecs have none
    with pytest.raises(ConfigError, match="at least 2 steps"):
        plan_ladder("c", "lowpass", 1, 0)
    with pytest.raises(ConfigError, match="needs at least"):
        plan_ladder("c", "mp3", 9, 0)
    from deepaq.data.build import BuildConfig

    with pytest.raises(ConfigError, match="needs at least"):  # before any work starts
        BuildConfig(codecs=(), ladders=("mp3",), ladder_steps=9).check()


def test_build_data_writes_ladders_and_the_manifest_names_them(tmp_path):
    from deepaq.data.build import BuildConfig, build_dataset
    from deepaq.data.manifest import read_manifest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        sf.write(corpus / f"{name}.wav", (0.1 * rng.standard_normal((int(1.2 * SR), 2))).astype(np.float32), SR)
    config = BuildConfig(clip_seconds=1, max_clips_per_source=1, codecs=(), visqol=False, split_ratios=(1, 1, 0),
                         ladders=("lowpass", "mp3"), ladder_steps=3)
    summary = build_dataset([corpus], tmp_path / "ds", config, workers=1)
    frame = read_manifest(tmp_path / "ds")
    assert summary.errors == 0 and len(frame) == summary.clips * (1 + 2 * 3)
    steps = frame[frame["ladder"] != ""]
    assert set(steps["ladder"]) == {"lowpass", "mp3"} and set(steps["ladder_step"]) == {0, 1, 2}
    assert (frame[frame["codec"] == "clean"]["ladder_step"] == -1).all()
    mp3 = steps[steps["ladder"] == "mp3"].sort_values(["clip_id", "ladder_step"])
    for _, rows in mp3.groupby("clip_id"):
        kbps = [json.loads(p)["bitrate_kbps"] for p in rows["params"]]
        assert list(rows["bitrate_kbps"]) == kbps == sorted(kbps)


def test_sampler_adds_whole_ladders_to_every_batch():
    from deepaq.data.dataset import ClipBatchSampler

    clips, clean, ladders = [], [], []
    for c in ("a", "b", "c"):
        clips += [c] * 8
        clean += [True] + [False] * 7
        ladders += [""] * 4 + [f"{c}/lowpass"] * 4  # clean, 3 other items, a ladder of 4 steps
    sampler = ClipBatchSampler(clips, clean, clips_per_batch=1, items_per_clip=4, seed=0,
                               ladders=ladders, ladders_per_batch=2)
    batches = list(sampler)
    assert len(batches) == 3
    seen_ladders = []
    for batch in batches:
        main = [i for i in batch[:4]]
        assert clean[main[0]] and all(not ladders[i] for i in main)
        rest = batch[4:]
        assert len(rest) == 2 * 5
        for group in (rest[:5], rest[5:]):
            assert clean[group[0]] and {ladders[i] for i in group[1:]} == {f"{clips[group[0]]}/lowpass"}
            seen_ladders.append(ladders[group[1]])
    assert set(seen_ladders) == {"a/lowpass", "b/lowpass", "c/lowpass"}  # a shuffled cycle
    plain = list(ClipBatchSampler(clips, clean, 1, 4, seed=0, ladders=ladders))  # 0 per batch: items mix in
    assert sorted(i for b in plain for i in b if not clean[i]) == [i for i, c in enumerate(clean) if not c]


def test_ladder_term_ranks_only_within_each_ladder():
    from deepaq.losses import deepaq_loss, distance_rank_loss

    clips = torch.tensor([0, 0, 0, 0, 1, 1])
    is_clean = torch.tensor([True, False, False, False, True, False])
    ladders = torch.tensor([0, 1, 1, 2, 0, 3])  # items 1, 2: one ladder; 3 and 5 alone in theirs
    steps = torch.tensor([math.nan, 0.0, 1.0, 4.0, math.nan, 0.0])
    e = torch.zeros(6, 2)
    e[1, 0], e[2, 0], e[3, 0], e[5, 0] = 1.0, 3.0, 5.0, 0.1  # step 1 is farther than step 0: wrong order
    loss = distance_rank_loss(e, steps, clips, is_clean, pair_groups=ladders)
    assert float(loss) == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(3.0 - 1.0))))
    nan = torch.full((6,), math.nan)
    total, parts = deepaq_loss(e, nan, nan, bitrate_weight=0.0, clips=clips, is_clean=is_clean,
                               ladders=ladders, ladder_steps=steps, ladder_weight=0.5)
    assert parts["loss_ladder"] == pytest.approx(float(loss)) and float(total) == pytest.approx(0.5 * float(loss))
    right = e.clone()
    right[2, 0] = 0.5  # the ladder's own embeddings (e.g. of time parts) in the right order
    _, own = deepaq_loss(e, nan, nan, bitrate_weight=0.0, clips=clips, is_clean=is_clean, ladders=ladders,
                         ladder_steps=steps, ladder_weight=0.5, ladder_embeddings=right)
    assert own["loss_ladder"] == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(0.5 - 1.0))))
    both, views = deepaq_loss(e, nan, nan, bitrate_weight=0.0, clips=clips, is_clean=is_clean, ladders=ladders,
                              ladder_steps=steps, ladder_weight=0.5, ladder_embeddings=right, ladder_window_weight=2.0)
    assert views["loss_ladder_window"] == pytest.approx(float(loss))  # the whole-window view, wrong order
    assert float(both) == pytest.approx(0.5 * own["loss_ladder"] + 2.0 * float(loss))


def test_validation_reports_the_share_of_ladder_steps_in_order():
    from deepaq.train import validation_metrics

    def row(clip, ladder, step, distance):
        return {"clip_id": clip, "codec": "bandlimit", "visqol": math.nan, "bitrate": math.nan,
                "ladder": f"{clip}/{ladder}" if ladder else "", "ladder_step": step, "distance": distance}

    records = [row("a", "lowpass", 0, 3.0), row("a", "lowpass", 1, 2.0), row("a", "lowpass", 2, 2.5),
               row("b", "lowpass", 1, 1.0), row("b", "lowpass", 0, 4.0), row("b", "", math.nan, 9.0)]
    rho, n = validation_metrics(records)["ladders"]
    assert n == 3 and rho == pytest.approx(2 / 3)
    assert "ladders" not in validation_metrics(records[-1:])
