"""Degradation families listeners are asked about, for building training sets.

Each family (codecs, noise, effects, ...) is registered by its group's module with its
parameters; this package exposes the registry and three calls:

- `apply(family, x, sample_rate, params, rng_seed)`: the degraded signal, same shape as x,
  sample-aligned, deterministic for given params and seed;
- `sample_condition(family, rng)`: realistic parameters, good to very bad quality;
- `plan_conditions(clip_id, n, families, seed)`: n (suffix, family, params) for one clip,
  deterministic from clip_id and seed.

MP2 and AC-3 are in `HELD_OUT_FAMILIES`, outside `TRAINING_FAMILIES`, to measure how a model
trained without them generalises to unseen codecs. The table in docs/data.md lists them all.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from deepaq.degradations import chain, codecs, effects, noise, room, separation, vocoder  # noqa: F401  (they register their families)
from deepaq.degradations.registry import REGISTRY, Family, Param
from deepaq.errors import ConfigError

FAMILIES: dict[str, Family] = REGISTRY.families
HELD_OUT_FAMILIES: tuple[str, ...] = ("mp2", "ac3")
TRAINING_FAMILIES: tuple[str, ...] = tuple(name for name in FAMILIES if name not in HELD_OUT_FAMILIES)


def get(family: str) -> Family:
    """The family called `family`, or ConfigError listing the known ones."""
    return REGISTRY.get(family)


def apply(family: str, x: np.ndarray, sample_rate: int, params: dict[str, Any] | None = None, rng_seed: int = 0) -> np.ndarray:
    """Degrade `[channels, samples]` float audio with one family; same shape, sample-aligned."""
    return get(family).apply(x, sample_rate, params, rng_seed)


def sample_condition(family: str, rng: np.random.Generator) -> dict[str, Any]:
    """Parameters for `family` drawn from realistic ranges (good to very bad quality)."""
    return get(family).sample(rng)


def resolve_families(spec: str | Sequence[str]) -> tuple[str, ...]:
    """"all" -> TRAINING_FAMILIES; "a,b" or ["a", "b"] -> checked names, in the given order."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if names == ["all"]:
        return TRAINING_FAMILIES
    for name in names:
        get(name)
    if len(set(names)) != len(names):
        raise ConfigError(f"degradation families {', '.join(names)} list one twice")
    return tuple(names)


def plan_conditions(clip_id: str, n: int, families: Sequence[str], seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    """n conditions `(suffix, family, params)` for one clip, deterministic from clip_id and seed.

    Families are drawn without replacement while they last (then the pool starts again), so a
    clip's conditions spread over the families. Each condition's parameters come from its own
    generator, so the i-th condition does not change when n grows. Suffixes are
    `dg<i>_<family>`: file-name safe and unique per clip.
    """
    if n < 0:
        raise ConfigError(f"conditions per clip must be 0 or more, got {n}")
    families = resolve_families(families)
    if n and not families:
        raise ConfigError("no degradation families to draw conditions from")
    key = int.from_bytes(hashlib.sha256(f"{seed}:{clip_id}".encode()).digest()[:8], "little")
    order: list[str] = []
    rounds = np.random.default_rng([key, 0])
    while len(order) < n:
        order += [families[i] for i in rounds.permutation(len(families))]
    return [
        (f"dg{i:02d}_{name}", name, sample_condition(name, np.random.default_rng([key, 1, i])))
        for i, name in enumerate(order[:n])
    ]


def condition_seed(clip_id: str, suffix: str, seed: int) -> int:
    """The `rng_seed` the dataset builder applies a planned condition with (stable across runs)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{clip_id}:{suffix}".encode()).digest()[:4], "little")


__all__ = [
    "FAMILIES",
    "HELD_OUT_FAMILIES",
    "TRAINING_FAMILIES",
    "Family",
    "Param",
    "apply",
    "condition_seed",
    "get",
    "plan_conditions",
    "resolve_families",
    "sample_condition",
]
