"""Two degradations of any families in series: damage on top of damage.

Real signals meet several damages at once (a band-limited call with line noise, a low-pass
stream re-coded). The compound ladders (`deepaq.degradations.ladders`) use it for an order
no single family gives: more of a second damage on top of the same first one is worse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepaq.degradations.registry import REGISTRY, Param, apply_in_series, family, sample_pair
from deepaq.errors import ConfigError

# chain itself, and the codecs held out of training (deepaq.degradations.HELD_OUT_FAMILIES)
_NOT_CHAINED = ("chain", "mp2", "ac3")


def _sample_chain(rng: np.random.Generator) -> dict[str, Any]:
    return sample_pair(sorted(n for n in REGISTRY.families if n not in _NOT_CHAINED), rng)


@family(
    "chain", "effect", "two degradations of any families in series (the second on the first's output)",
    "several damages at once: a band-limited call with line noise, a low-passed stream re-coded",
    {
        "first": Param("bandlimit", doc="a family name (not chain); sampled: two different families"),
        "first_params": Param({}, doc="the first family's parameters"),
        "second": Param("noise_shaped", doc="a family name (not chain)"),
        "second_params": Param({}, doc="the second family's parameters"),
    },
    _sample_chain,
)
def _chain(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    for which in ("first", "second"):
        if p[which] == "chain":
            raise ConfigError(f"chain: parameter {which} cannot be chain itself")
    return apply_in_series(x, sr, p, rng, "chain")
