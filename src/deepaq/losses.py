"""Rank-N-Contrast (Zha et al., NeurIPS 2023) and the DeePAQ training loss.

For anchor i and another candidate j, S(i, j) = {k != i : |y_i - y_k| >= |y_i - y_j|} (ties
included) and s(a, b) = -||f(a) - f(b)||_2 / tau; then

    L_i = -1/(N_i - 1) * sum_{j != i} log( exp(s_ij) / sum_{k in S(i,j)} exp(s_ik) ).

The denominators are computed for all (i, j) at once with an [anchors, N, N] mask (fine for
batches of a few hundred) and a masked log-sum-exp, which is the stable form of the
reference implementation's "subtract the row max, then exp".

DeePAQ loss: L = 1/N * [ sum_i L^visqol_i + w * sum_{i coded} L^bitrate_i ], w = 1 in the paper.
How items enter the bitrate term (label: log2 of the kbps, L1 distance):
  * coded items (finite bitrate) are anchors and candidates;
  * clean items (bitrate = +inf, "the best rank") are candidates only, placed one octave above
    the highest coded bitrate of the batch: next to the best coded items, farthest from the
    worst. They are not anchors (the paper sums over coded items).
    Why not +inf itself: a clean item would then lie farther in label from every coded
    anchor than any coded item, i.e. 8 kbps would have to be closer to 128 kbps than the
    clean signal is, which drives the clean embedding away from all coded ones; the
    distance to the clean item, the quality score, then stops following the bitrate (seen:
    within-clip Spearman with bitrate fell from 0.93 untrained to 0.73 after one epoch).
    Why log2: with kbps and the clean item at a finite rank above the top, 8 kbps would
    still be nearer to 128 kbps than the clean item is (120 < 128);
  * items with no bitrate (NaN, e.g. low-pass anchors) take no part in the bitrate term.
Every item with a finite ViSQOL label is anchor and candidate of the ViSQOL term.

Further teacher labels (e.g. the 2f-model's MMS or PEAQ's ODG of each item against its clean
reference, `deepaq.data.teachers`) each add one term of the same form as the ViSQOL term,
with its own weight: L += w_t / N * sum_{i labelled by t} L^t_i. The clean item carries the
teacher's self-score (2f: 100, the top of its scale), a finite best rank.

Rank-N-Contrast orders embeddings; the score is the distance of a degraded item to its own
clean item, compared across clips. `distance_rank_loss` asks that of the score directly:
over every pair of items of a batch (any clips) whose teacher labels differ, the better one
should lie nearer to its clean item, L = mean softplus((d_better - d_worse) / scale).
The ladder term is the same ranking within each ladder (one family at severities of known
order on one clip, `deepaq.degradations.ladders`) by its steps: labels no teacher gives.
`nmr_rank_loss` is the ranking for the non-matching-reference mode: each item's distance is
its mean distance to the clean items of the batch's *other* clips (what NMR scoring measures
against a bank), and the better item of every pair should again lie nearer.
"""

from __future__ import annotations

import torch

from deepaq.models.distance import PairDistance

DEFAULT_TEMPERATURE = 2.0


def rnc_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE,
             anchors: torch.Tensor | None = None, candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Per-anchor Rank-N-Contrast losses `[A]` for features `[N, D]` and labels `[N]`.

    `candidates` (bool `[N]`, default all) are the items j and k may range over; `anchors`
    (bool `[N]`, default = candidates) are the i; anchors outside the candidates are ignored.
    An anchor with no other candidate gets loss 0. Labels may be +inf for candidates.
    """
    n = features.shape[0]
    everyone = torch.ones(n, dtype=torch.bool, device=features.device)
    cand = everyone if candidates is None else candidates.to(torch.bool)
    anch = cand if anchors is None else anchors.to(torch.bool) & cand
    idx = anch.nonzero().squeeze(1)
    cols = torch.arange(n, device=features.device)
    valid = cand[None, :] & (cols[None, :] != idx[:, None])  # [A, N] allowed j and k
    logits = -torch.linalg.vector_norm(features[idx, None, :] - features[None, :, :], dim=-1) / temperature
    dist = (labels[idx, None] - labels[None, :]).abs()  # [A, N]; clean vs coded = inf
    # in_s[a, j, k]: k is in S(a, j). k == j is always set so rows of invalid j stay finite.
    in_s = (valid[:, None, :] & (dist[:, None, :] >= dist[:, :, None])) | torch.eye(n, dtype=torch.bool,
                                                                                      device=features.device)
    masked = torch.where(in_s, logits[:, None, :], torch.full_like(logits[:, None, :], float("-inf")))
    log_prob = logits - torch.logsumexp(masked, dim=-1)  # [A, N] log( exp(s_aj) / sum_S exp(s_ak) )
    log_prob = torch.where(valid, log_prob, torch.zeros_like(log_prob))
    return -log_prob.sum(dim=1) / valid.sum(dim=1).clamp(min=1)


def bitrate_labels(bitrate: torch.Tensor) -> torch.Tensor:
    """Bitrate-term labels: log2(kbps); clean (+inf) one octave above the top coded bitrate; NaN stays."""
    coded = torch.isfinite(bitrate)
    labels = torch.log2(bitrate.clamp_min(1e-3))
    top = labels[coded].max() if coded.any() else labels.new_tensor(0.0)
    return torch.where(torch.isposinf(bitrate), top + 1.0, labels)


def deepaq_loss(embeddings: torch.Tensor, visqol: torch.Tensor, bitrate: torch.Tensor,
                temperature: float = DEFAULT_TEMPERATURE, bitrate_weight: float = 1.0,
                teachers: dict[str, tuple[torch.Tensor, float]] | None = None, visqol_weight: float = 1.0,
                bitrate_groups: torch.Tensor | None = None, clips: torch.Tensor | None = None,
                is_clean: torch.Tensor | None = None, rank_weight: float = 0.0, rank_scale: float = 1.0,
                ladders: torch.Tensor | None = None, ladder_steps: torch.Tensor | None = None,
                ladder_weight: float = 0.0, distance: PairDistance = PairDistance(),
                ladder_embeddings: torch.Tensor | None = None,
                committee: torch.Tensor | None = None, nmr_weight: float = 0.0,
                ladder_window_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The DeePAQ loss of a batch and its parts (for logging), see the module docstring.

    `teachers` maps a label name to `(labels [N] with NaN where missing, weight)`.
    `bitrate_groups` (int `[N]`, e.g. a code per codec) ranks bitrates only within a group,
    with every clean item a candidate of each group: in a batch that mixes codecs, equal
    bitrates of two codecs are not equal quality.
    `rank_weight` adds, for each teacher, `rank_weight * w_t * distance_rank_loss` over the
    batch's `clips` (int `[N]`) and their clean items (`is_clean`); with a `committee` target
    (`[N]`, NaN where missing, `deepaq.data.dataset.committee_target`) one such term ranks by it
    instead.
    `ladder_weight` adds `ladder_weight * distance_rank_loss` by `ladder_steps` (NaN outside
    ladders) over pairs of the same ladder (`ladders`, int `[N]`). Both rank the model's pair
    `distance` (`deepaq.models.distance`); Rank-N-Contrast keeps the paper's L2.
    `ladder_embeddings` (default `embeddings`) are what the ladder term ranks: e.g. the same
    items' embeddings of time parts where the other terms see whole windows;
    `ladder_window_weight` then adds the same ladder term on `embeddings` too (both views).
    `nmr_weight` adds `nmr_weight * w_t * nmr_rank_loss` by the same labels as the ranking term.
    """
    n = embeddings.shape[0]
    total = embeddings.new_zeros(())
    parts = {"loss_visqol": 0.0, "loss_bitrate": 0.0}
    labelled = {"visqol": (visqol, visqol_weight), **(teachers or {})}
    for name, (labels, weight) in labelled.items():
        if not weight:
            continue
        terms = rnc_loss(embeddings, labels, temperature, candidates=torch.isfinite(labels))
        total = total + weight * terms.sum() / n
        parts[f"loss_{name}"] = float(terms.sum().detach()) / n
    ranked_by = {"committee": (committee, 1.0)} if committee is not None else (teachers or {})
    for name, (labels, weight) in ranked_by.items():
        if rank_weight and weight:
            rank = distance_rank_loss(embeddings, labels, clips, is_clean, rank_scale, distance=distance)
            total = total + rank_weight * weight * rank
            parts[f"loss_rank_{name}"] = float(rank.detach())
        if nmr_weight and weight:
            nmr = nmr_rank_loss(embeddings, labels, clips, is_clean, rank_scale, distance=distance)
            total = total + nmr_weight * weight * nmr
            parts[f"loss_nmr_{name}"] = float(nmr.detach())
    ladder_views = [("loss_ladder", embeddings if ladder_embeddings is None else ladder_embeddings, ladder_weight)]
    if ladder_embeddings is not None:
        ladder_views.append(("loss_ladder_window", embeddings, ladder_window_weight))
    for key, ranked, weight in ladder_views:
        if weight and ladders is not None:
            ladder = distance_rank_loss(ranked, ladder_steps, clips, is_clean, rank_scale, pair_groups=ladders,
                                        distance=distance)
            total = total + weight * ladder
            parts[key] = float(ladder.detach())
    if bitrate_weight:
        coded, clean = torch.isfinite(bitrate), torch.isposinf(bitrate)
        groups = torch.zeros_like(bitrate, dtype=torch.long) if bitrate_groups is None else bitrate_groups
        bitrate_sum = embeddings.new_zeros(())
        for group in torch.unique(groups[coded]):
            members = coded & (groups == group)
            candidates = members | clean
            labels = bitrate_labels(torch.where(candidates, bitrate, torch.full_like(bitrate, float("nan"))))
            bitrate_sum = bitrate_sum + rnc_loss(embeddings, labels, temperature, anchors=members,
                                                 candidates=candidates).sum()
        total = total + bitrate_weight * bitrate_sum / n
        parts["loss_bitrate"] = float(bitrate_sum.detach()) / n
    return total, parts


def distance_rank_loss(embeddings: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, is_clean: torch.Tensor,
                       scale: float = 1.0, pair_groups: torch.Tensor | None = None,
                       distance: PairDistance = PairDistance()) -> torch.Tensor:
    """Pairwise ranking of distances to each item's own clean item by `labels` (higher = better).

    `groups` (int `[N]`) names each item's clip; `is_clean` marks the clean item of each
    group (the groups of a batch each hold one). Items with a NaN label, and groups without
    a clean item, take no part. With `pair_groups` (int `[N]`), only pairs in the same
    pair group are ranked. `distance` is the model's pair distance (deepaq.models.distance).
    Returns 0 when no pair is ordered.
    """
    clean_of = {int(g): i for i, (g, c) in enumerate(zip(groups.tolist(), is_clean.tolist())) if c}
    keep = [i for i, g in enumerate(groups.tolist()) if int(g) in clean_of and bool(torch.isfinite(labels[i]))]
    if len(keep) < 2:
        return embeddings.new_zeros(())
    idx = torch.tensor(keep, device=embeddings.device)
    clean_idx = torch.tensor([clean_of[int(groups[i])] for i in keep], device=embeddings.device)
    d = distance(embeddings[idx] - embeddings[clean_idx], torch.linalg.vector_norm)
    y = labels[idx]
    better = y[:, None] > y[None, :]  # [i, j]: i should be nearer its clean item than j
    if pair_groups is not None:
        p = pair_groups[idx]
        better = better & (p[:, None] == p[None, :])
    return _ranked_pairs(d, better, scale)


def nmr_rank_loss(embeddings: torch.Tensor, labels: torch.Tensor, groups: torch.Tensor, is_clean: torch.Tensor,
                  scale: float = 1.0, distance: PairDistance = PairDistance()) -> torch.Tensor:
    """Pairwise ranking, by `labels` (higher = better), of each item's mean distance to the
    clean items of the *other* groups (clips) of the batch: the NMR distance, with the batch's
    other clean clips as the bank. Clean items take part (their own clip's clean item is
    themselves, never in their bank). Items with a NaN label take no part; returns 0 when no
    pair is ordered or the batch has fewer than two clean items.
    """
    clean = is_clean.nonzero().flatten()
    keep = torch.isfinite(labels).nonzero().flatten()
    if len(clean) < 2 or len(keep) < 2:
        return embeddings.new_zeros(())
    d = distance(embeddings[keep][:, None] - embeddings[clean][None], torch.linalg.vector_norm)  # [k, c]
    other = (groups[keep][:, None] != groups[clean][None]).to(d.dtype)
    has_bank = other.sum(1) > 0
    d = (d * other).sum(1) / other.sum(1).clamp(min=1)
    y = labels[keep]
    return _ranked_pairs(d, (y[:, None] > y[None, :]) & has_bank[:, None] & has_bank[None, :], scale)


def _ranked_pairs(d: torch.Tensor, better: torch.Tensor, scale: float) -> torch.Tensor:
    """Mean softplus((d_i - d_j) / scale) over the pairs with `better[i, j]` (i should lie nearer); 0 if none."""
    if not better.any():
        return d.new_zeros(())
    return torch.nn.functional.softplus((d[:, None] - d[None, :]) / scale)[better].mean()
