"""The registry of degradation families: their parameters, checks, samplers and `apply`.

A family is one kind of damage (a codec, a noise, an effect) with named parameters. Each
declares its parameters (default, range or choices), a sampler that draws realistic
settings from good to very bad, and a function that does the work. `Family.apply` checks
the input and the parameters, then calls it with a generator seeded from `rng_seed`, so a
result depends only on the input, the parameters and the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from deepaq.errors import ConfigError, DeepaqError

Worker = Callable[[np.ndarray, int, dict[str, Any], np.random.Generator], np.ndarray]
Sampler = Callable[[np.random.Generator], dict[str, Any]]


@dataclass(frozen=True)
class Param:
    """One parameter: its default, and either a numeric range or a set of choices."""

    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    doc: str = ""

    def check(self, family: str, name: str, value: Any) -> Any:
        """The value in its canonical type, or ConfigError naming the family and parameter."""
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(f"{family}: parameter {name}={value!r} must be one of {', '.join(map(str, self.choices))}")
            return value
        if self.low is None and self.high is None:  # free-form (nested params, optional signals)
            return value
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{family}: parameter {name}={value!r} is not a number") from None
        if not math.isfinite(number) or not (self.low <= number <= self.high):
            raise ConfigError(f"{family}: parameter {name}={value!r} must lie between {self.low:g} and {self.high:g}")
        return int(number) if isinstance(self.default, int) and number.is_integer() else number


@dataclass(frozen=True)
class Family:
    name: str
    group: str  # codec, noise, effect, room, separation, vocoder
    what: str  # one line: what it does
    imitates: str  # one line: what real-world damage it stands for
    params: dict[str, Param]
    work: Worker
    sampler: Sampler
    kbps: Callable[[dict[str, Any]], float] | None = None  # the bitrate of a setting, where defined
    max_channels: int = 2

    def resolve(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in, every value checked; unknown names are an error."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(
                f"{self.name}: unknown parameter {', '.join(unknown)}; it takes {', '.join(self.params) or 'none'}"
            )
        return {k: p.check(self.name, k, params.get(k, p.default)) for k, p in self.params.items()}

    def apply(self, x: np.ndarray, sample_rate: int, params: dict[str, Any] | None, rng_seed: int) -> np.ndarray:
        """Degrade `[channels, samples]` float audio; same shape, sample-aligned, float32."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] == 0:
            raise ConfigError(f"{self.name}: input must be [channels, samples] with samples, got shape {x.shape}")
        if not 1 <= x.shape[0] <= self.max_channels:
            raise ConfigError(f"{self.name}: takes 1 to {self.max_channels} channels, got {x.shape[0]}")
        if not np.isfinite(x).all():
            raise ConfigError(f"{self.name}: input holds NaN or infinite samples")
        resolved = self.resolve(params)
        y = self.work(x, int(sample_rate), resolved, np.random.default_rng(rng_seed))
        if y.shape != x.shape or not np.isfinite(y).all():  # a bug in a family, never the user's input
            raise DeepaqError(f"{self.name}: produced shape {y.shape} or non-finite samples for input {x.shape}")
        return np.ascontiguousarray(y, dtype=np.float32)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Realistic settings, good to very bad; always valid for `apply`."""
        return self.resolve(self.sampler(rng))

    def bitrate_kbps(self, params: dict[str, Any] | None) -> float:
        """The bitrate of these settings where one is defined, else NaN."""
        return float(self.kbps(self.resolve(params))) if self.kbps is not None else math.nan


@dataclass
class Registry:
    families: dict[str, Family] = field(default_factory=dict)

    def add(self, family: Family) -> Family:
        if family.name in self.families:
            raise ValueError(f"degradation family {family.name} registered twice")
        self.families[family.name] = family
        return family

    def get(self, name: str) -> Family:
        try:
            return self.families[name]
        except KeyError:
            raise ConfigError(f"unknown degradation family {name!r}; choose from {', '.join(self.families)}") from None


REGISTRY = Registry()


def family(
    name: str,
    group: str,
    what: str,
    imitates: str,
    params: dict[str, Param],
    sampler: Sampler,
    **extra: Any,
) -> Callable[[Worker], Worker]:
    """Decorator: register the decorated worker as family `name`."""

    def register(work: Worker) -> Worker:
        REGISTRY.add(Family(name, group, what, imitates, params, work, sampler, **extra))
        return work

    return register


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A draw uniform in log(value): as many values per octave at the low end as at the high."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def signal_param(source: Any, sample_rate: int, where: str) -> np.ndarray:
    """A parameter that is a signal: a path (read and resampled to `sample_rate`) or an array
    at that rate, as [channels, samples]; ConfigError (naming `where`) if empty, silent or bad."""
    if isinstance(source, (str, Path)):
        import warnings

        from deepaq.audio import load_audio

        with warnings.catch_warnings():  # 44.1 kHz speech brought to 48 kHz on purpose
            warnings.filterwarnings("ignore", message=".*upsampling from")
            x, _ = load_audio(source, sample_rate=sample_rate, mono=False)
    else:
        try:
            x = np.asarray(source, dtype=np.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a path or an array of samples") from None
        x = x[None, :] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[1] == 0 or not np.isfinite(x).all() or rms(x) == 0:
        raise ConfigError(f"{where} must be a path or a [channels, samples] array, not empty, silent or non-finite")
    return x


def looped(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of [channels, samples] x from a random offset, looping around its end."""
    start = int(rng.integers(0, x.shape[1]))
    reps = int(np.ceil((n + start) / x.shape[1]))
    return np.tile(x, (1, reps))[:, start : start + n]


def sample_pair(names, rng: np.random.Generator) -> dict[str, Any]:
    """Two different families of `names`, each with its own sampled settings: a series' parameters."""
    first, second = (str(n) for n in rng.choice(list(names), size=2, replace=False))
    return {"first": first, "first_params": REGISTRY.get(first).sample(rng),
            "second": second, "second_params": REGISTRY.get(second).sample(rng)}


def apply_in_series(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator, where: str) -> np.ndarray:
    """Family `p["first"]` then `p["second"]` (each with its `*_params`) on x; `where` names the caller in errors."""
    for which in ("first", "second"):
        if not isinstance(p[f"{which}_params"], dict):
            raise ConfigError(f"{where}: parameter {which}_params must be a mapping of {p[which]}'s parameters")
    seeds = rng.integers(0, 2**32, size=2)
    y = REGISTRY.get(p["first"]).apply(x, sr, p["first_params"], int(seeds[0]))
    return REGISTRY.get(p["second"]).apply(y, sr, p["second_params"], int(seeds[1]))
