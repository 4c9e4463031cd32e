"""Rank-N-Contrast against a plain loop written from the formula, gradients, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from deepaq.losses import bitrate_labels, deepaq_loss, rnc_loss


def loop_rnc(f, y, tau, anchors, candidates):
    """The formula, one term at a time (slow, obvious)."""
    losses = []
    for i in anchors:
        others = [j for j in candidates if j != i]
        total = 0.0
        for j in others:
            s = lambda k: -torch.linalg.vector_norm(f[i] - f[k]) / tau  # noqa: E731
            s_set = [k for k in others if abs(y[i] - y[k]) >= abs(y[i] - y[j])]
            total = total - (s(j) - torch.log(sum(torch.exp(s(k)) for k in s_set)))
        losses.append(total / len(others) if others else torch.tensor(0.0, dtype=f.dtype))
    return torch.stack(losses)


def test_matches_loop_with_ties():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (12,), generator=g).to(torch.float64)  # many ties
    for tau in (2.0, 0.5):
        torch.testing.assert_close(rnc_loss(f, y, tau), loop_rnc(f, y, tau, range(12), range(12)),
                                   rtol=0, atol=1e-6)


def test_bitrate_labels_put_clean_one_octave_above_the_top():
    b = torch.tensor([16, 32, 32, 128, float("inf"), float("inf"), float("nan"), 64], dtype=torch.float64)
    labels = bitrate_labels(b)
    torch.testing.assert_close(labels[[0, 1, 3, 4, 5, 7]], torch.tensor([4.0, 5, 7, 8, 8, 6], dtype=torch.float64))
    assert torch.isnan(labels[6])


def test_bitrate_term_clean_items_are_candidates_at_the_top():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(8, 4, generator=g, dtype=torch.float64)
    b = torch.tensor([16, 32, 32, 128, float("inf"), float("inf"), float("nan"), 64], dtype=torch.float64)
    _, parts = deepaq_loss(f, torch.full((8,), float("nan"), dtype=torch.float64), b)
    want = loop_rnc(f, bitrate_labels(b), 2.0, [0, 1, 2, 3, 7], [0, 1, 2, 3, 4, 5, 7]).sum() / 8
    assert parts["loss_bitrate"] == pytest.approx(float(want))


def test_clean_embedding_next_to_the_best_bitrate_is_what_the_loss_wants():
    # a line 8 -> 16 -> ... -> 128 -> clean, against the same line with clean beyond 8 kbps
    b = torch.tensor([8.0, 16, 32, 64, 128, float("inf")])
    line = torch.arange(6.0)[:, None] * torch.tensor([[1.0, 0.0]])
    clean_at_the_wrong_end = line.clone()
    clean_at_the_wrong_end[5, 0] = -1.0
    nan = torch.full((6,), float("nan"))
    assert deepaq_loss(line, nan, b)[0] < deepaq_loss(clean_at_the_wrong_end, nan, b)[0]


def test_total_loss_parts_and_no_bitrate_ablation():
    g = torch.Generator().manual_seed(2)
    f = torch.randn(6, 3, generator=g, dtype=torch.float64)
    v = torch.tensor([4.7, 3.0, 2.1, 4.7, 3.9, 1.5], dtype=torch.float64)
    b = torch.tensor([float("inf"), 32, 16, float("inf"), 64, float("nan")], dtype=torch.float64)
    total, parts = deepaq_loss(f, v, b)
    lv = loop_rnc(f, v, 2.0, range(6), range(6)).sum() / 6
    lb = loop_rnc(f, bitrate_labels(b), 2.0, [1, 2, 4], [0, 1, 2, 3, 4]).sum() / 6
    torch.testing.assert_close(total, lv + lb, rtol=0, atol=1e-6)
    assert parts["loss_visqol"] == pytest.approx(float(lv)) and parts["loss_bitrate"] == pytest.approx(float(lb))
    only_visqol, parts = deepaq_loss(f, v, b, bitrate_weight=0.0)
    torch.testing.assert_close(only_visqol, lv, rtol=0, atol=1e-6)
    assert parts["loss_bitrate"] == 0.0


def test_gradcheck():
    g = torch.Generator().manual_seed(3)
    f = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.tensor([1.0, 2.0, 2.0, 3.5, 5.0], dtype=torch.float64)
    b = torch.tensor([16.0, 32.0, float("inf"), 32.0, float("nan")], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: deepaq_loss(x, v, b)[0], (f,))


def test_all_equal_labels_and_tiny_batches():
    f = torch.zeros(5, 4, requires_grad=True)
    loss = rnc_loss(f, torch.full((5,), 3.0))
    # every j shares one denominator over all others: -log(1 / 4) per anchor
    torch.testing.assert_close(loss, torch.full((5,), math.log(4)))
    loss.sum().backward()
    assert torch.isfinite(f.grad).all()
    g = torch.randn(5, 4, requires_grad=True)
    total, _ = deepaq_loss(g, torch.full((5,), 3.0), torch.full((5,), float("inf")))
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(g.grad).all()
    single = rnc_loss(torch.randn(1, 4), torch.tensor([1.0]))
    assert single.tolist() == [0.0]


def test_loss_prefers_label_ordered_embeddings():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    ordered = y[:, None] * torch.tensor([[1.0, 0.0]])
    shuffled = y[[3, 0, 4, 1, 2], None] * torch.tensor([[1.0, 0.0]])
    assert rnc_loss(ordered, y).mean() < rnc_loss(shuffled, y).mean()


def test_bitrate_groups_rank_within_each_group_with_clean_items_in_every_group():
    torch.manual_seed(0)
    f = torch.randn(7, 4)
    bitrate = torch.tensor([8.0, 64.0, 128.0, 8.0, 32.0, math.inf, math.inf])
    groups = torch.tensor([0, 0, 0, 1, 1, -1, -1])
    nan = torch.full((7,), math.nan)
    _, parts = deepaq_loss(f, nan, bitrate, bitrate_groups=groups)
    expected = 0.0
    for g in (0, 1):
        members = groups == g
        cand = members | torch.isposinf(bitrate)
        labels = bitrate_labels(torch.where(cand, bitrate, nan))
        expected += float(rnc_loss(f, labels, anchors=members, candidates=cand).sum())
    assert parts["loss_bitrate"] == pytest.approx(expected / 7)
    _, mixed = deepaq_loss(f, nan, bitrate)  # one group: 8 kbps of codec 1 ranks beside 8 kbps of codec 0
    assert mixed["loss_bitrate"] != pytest.approx(parts["loss_bitrate"])


def test_distance_rank_loss_orders_distances_to_each_items_own_clean_item_across_clips():
    from deepaq.losses import distance_rank_loss

    groups = torch.tensor([0, 0, 0, 1, 1])
    is_clean = torch.tensor([True, False, False, True, False])
    labels = torch.tensor([100.0, 80.0, 20.0, 100.0, 50.0])  # clip 1's item lies between clip 0's two
    base = torch.zeros(5, 2)
    base[3] = torch.tensor([10.0, 10.0])  # clips far apart: only distances to their own clean count

    def at(distances):
        e = base.clone()
        for i, d in zip((1, 2, 4), distances):
            e[i] = e[3 if i == 4 else 0] + torch.tensor([d, 0.0])
        return e

    right = distance_rank_loss(at((1.0, 3.0, 2.0)), labels, groups, is_clean)
    wrong = distance_rank_loss(at((3.0, 1.0, 0.5)), labels, groups, is_clean)
    assert right < wrong
    e = at((2.0, 2.0, 2.0)).requires_grad_(True)
    distance_rank_loss(e, labels, groups, is_clean).backward()
    assert e.grad[1, 0] > 0 > e.grad[2, 0]  # the better item is pulled in, the worse pushed out
    nan = torch.full((5,), math.nan)
    assert distance_rank_loss(e, nan, groups, is_clean) == 0


def test_nmr_rank_loss_orders_distances_to_the_other_clips_clean_items():
    from deepaq.losses import nmr_rank_loss

    groups = torch.tensor([0, 0, 0, 1, 1])
    is_clean = torch.tensor([True, False, False, True, False])
    labels = torch.tensor([100.0, 80.0, 20.0, 100.0, 50.0])
    e = torch.zeros(5, 2)
    e[3] = torch.tensor([10.0, 0.0])  # clip 1's clean item: the bank of clip 0's items
    # clip 0's items by their distance to clip 1's clean item: the better (80) nearer, then the worse (20)
    e[1], e[2] = torch.tensor([8.0, 0.0]), torch.tensor([4.0, 0.0])
    right = nmr_rank_loss(e, labels, groups, is_clean)
    e[1], e[2] = torch.tensor([4.0, 0.0]), torch.tensor([8.0, 0.0])
    wrong = nmr_rank_loss(e, labels, groups, is_clean)
    assert right < wrong  # [8, 0] lies 2 from the bank, [4, 0] 6
    e = e.clone().requires_grad_(True)
    nmr_rank_loss(e, labels, groups, is_clean).backward()
    assert e.grad[3].abs().sum() > 0  # the bank's clean items move too
    assert nmr_rank_loss(e, torch.full((5,), math.nan), groups, is_clean) == 0
    assert nmr_rank_loss(e, labels, groups, torch.tensor([True, False, False, False, False])) == 0  # no bank


def _two_clips(seed: int):
    """A batch of two clips (clean + two degraded each): embeddings, clips, clean flags, MMS, NaNs."""
    torch.manual_seed(seed)
    clips = torch.tensor([0, 0, 0, 1, 1, 1])
    is_clean = torch.tensor([True, False, False, True, False, False])
    mms = torch.tensor([100.0, 60.0, 20.0, 100.0, 40.0, 80.0])
    return torch.randn(6, 4), clips, is_clean, mms, torch.full((6,), math.nan)


@pytest.mark.parametrize("term", ["rank", "nmr"])
def test_deepaq_loss_adds_the_rank_and_nmr_terms_per_teacher(term):
    from deepaq.losses import distance_rank_loss, nmr_rank_loss

    f, clips, is_clean, mms, nan = _two_clips(1)
    base, _ = deepaq_loss(f, nan, nan, teachers={"mms_2f": (mms, 2.0)}, bitrate_weight=0.0)
    total, parts = deepaq_loss(f, nan, nan, teachers={"mms_2f": (mms, 2.0)}, bitrate_weight=0.0,
                               clips=clips, is_clean=is_clean, **{f"{term}_weight": 0.5})
    value = (distance_rank_loss if term == "rank" else nmr_rank_loss)(f, mms, clips, is_clean)
    other = "nmr" if term == "rank" else "rank"
    assert f"loss_{other}_mms_2f" not in parts and parts[f"loss_{term}_mms_2f"] == pytest.approx(float(value))
    assert float(total) == pytest.approx(float(base) + 0.5 * 2.0 * float(value))


def test_a_committee_target_replaces_the_per_teacher_rank_terms():
    """With a committee target the ranking term ranks by it once; Rank-N-Contrast stays per teacher."""
    from deepaq.losses import distance_rank_loss

    f, clips, is_clean, mms, nan = _two_clips(2)
    visqol = torch.tensor([4.7, 2.0, 3.0, 4.7, 1.5, 4.0])
    committee = torch.tensor([1.0, 0.4, 0.3, 1.0, 0.0, 0.7])
    teachers = {"mms_2f": (mms, 1.0), "visqol_mos": (visqol, 1.0)}
    base, _ = deepaq_loss(f, nan, nan, teachers=teachers, bitrate_weight=0.0)
    total, parts = deepaq_loss(f, nan, nan, teachers=teachers, bitrate_weight=0.0, clips=clips, is_clean=is_clean,
                               rank_weight=0.5, committee=committee)
    assert "loss_rank_mms_2f" not in parts and "loss_rank_visqol_mos" not in parts
    rank = distance_rank_loss(f, committee, clips, is_clean)
    assert parts["loss_rank_committee"] == pytest.approx(float(rank))
    assert float(total) == pytest.approx(float(base) + 0.5 * float(rank))


def test_committee_target_is_the_mean_percentile_rank_of_the_teachers_that_labelled_an_item():
    from deepaq.data.dataset import committee_target

    labels = {"a": {"mms_2f": 10.0, "pesq_wb": 4.0}, "b": {"mms_2f": 50.0}, "c": {"mms_2f": 90.0, "pesq_wb": 2.0},
              "d": {}}
    target = committee_target(["a", "b", "c", "d"], labels, ("mms_2f", "pesq_wb"))
    # mms ranks a 0, b 0.5, c 1; PESQ (speech items a and c only) ranks c 0, a 1
    assert target[:3] == pytest.approx([0.5, 0.5, 0.5]) and math.isnan(target[3])
    assert committee_target(["a"], labels, ()) is None


def test_distance_rank_loss_ranks_the_models_distance():
    """An L1 distance ranks L1 distances: item 1 is nearer its clean item than item 2 in L2, farther in L1."""
    from deepaq.losses import distance_rank_loss
    from deepaq.models.distance import PairDistance

    groups, is_clean = torch.tensor([0, 0, 0]), torch.tensor([True, False, False])
    e = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.6, 0.0]])  # L2 1.41 vs 1.6; L1 2.0 vs 1.6
    item1_better, item2_better = torch.tensor([100.0, 80.0, 20.0]), torch.tensor([100.0, 20.0, 80.0])
    l2 = [distance_rank_loss(e, y, groups, is_clean) for y in (item1_better, item2_better)]
    l1 = [distance_rank_loss(e, y, groups, is_clean, distance=PairDistance("l1")) for y in (item1_better, item2_better)]
    assert l2[0] < l2[1] and l1[0] > l1[1]
