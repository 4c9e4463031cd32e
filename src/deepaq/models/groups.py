"""Channel groups: block-diagonal weights that keep frequency regions apart up to the distance.

A backbone with `channel_groups = G > 1` splits its `H` hidden channels into G equal groups,
each computed from its own frequency region only (`deepaq.models.compact`, setting
`region_edges_hz`); the head then maps group g of every pooled hidden state to group g of
the embedding only, so each region has its own part of the embedding and its own distance:
damage in one region (noise below 7 kHz) is not blended with damage in another (a missing
top octave) into one vector, where the two can partly cancel. The squared L2 distance is the
sum of the regions' squared distances; the "regions" distance (`deepaq.models.distance`)
sums the distances themselves. A weight is kept at zero outside its blocks by a fixed 0/1 mask.
No torch here: the numpy scoring path imports it.
"""

from __future__ import annotations

import numpy as np


def channel_group(n: int, groups: int) -> np.ndarray:
    """The group of each of `n` channels cut into `groups` equal consecutive groups."""
    return np.arange(n) * groups // n


def block_mask(out_groups: np.ndarray, in_groups: np.ndarray) -> np.ndarray:
    """`[out, in]` float32: 1 where the output and the input channel share a group."""
    return (np.asarray(out_groups)[:, None] == np.asarray(in_groups)[None, :]).astype(np.float32)


def head_mask(embed_dim: int, num_hidden_states: int, hidden_size: int, groups: int) -> np.ndarray:
    """`[embed_dim, L * H]` mask of the head: pooled inputs are ordered state by state, and
    input `l * H + h` belongs to the group of channel h."""
    inputs = np.tile(channel_group(hidden_size, groups), num_hidden_states)
    return block_mask(channel_group(embed_dim, groups), inputs)
