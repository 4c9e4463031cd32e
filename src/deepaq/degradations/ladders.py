"""Ladders: one degradation family at several severities whose order is known.

A lower low-pass corner, a lower SNR, a lower clipping threshold or a lower bitrate is worse,
whatever the content. A ladder is such a family and parameter; `plan_ladder` draws its steps
for one clip, worst to best. The dataset builder writes them (`build-data --ladders`) and
training ranks a clip's steps by their order (`[loss] ladder_weight`): a label that needs no
teacher and is certain, where a teacher's scores of nearly equal steps are noise.

Steps are spread over the ladder's range, one per stratum, each drawn in the middle half of
its stratum, so two steps are never closer than half a stratum; discrete settings (codec
bitrates) are indices into their list, drawn the same way. Each clip gets its own draw, so
training sees the whole range, not a few fixed settings. A fine ladder (`span` < 1) spreads
its steps over a window of that share of the range, placed at random per clip: nearby
settings (a few dB of in-band noise, bitrates within an octave) that must still be ordered.
A compound ladder (`base`) puts its steps on top of one setting of another family, drawn
per clip, with that base damage alone as its best step: more noise on top of the same
low-pass is worse, and no noise better still (family `chain`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from deepaq.errors import ConfigError


@dataclass(frozen=True)
class Ladder:
    family: str
    param: str
    low: float = 0.0  # continuous range of the parameter
    high: float = 0.0
    log: bool = True  # strata equal in log(value) (frequencies, bitrates) or in value (dB)
    higher_is_better: bool = True
    values: tuple[float, ...] = ()  # discrete settings, ascending; used instead of low/high
    fixed: dict[str, Any] = field(default_factory=dict)  # the family's other parameters
    span: float = 1.0  # share of the (continuous) range one clip's steps cover, placed at random
    base: Ladder | None = None  # compound: the steps on top of one setting of this, drawn per clip

    def draw(self, rng: np.random.Generator) -> float:
        """One setting anywhere in the (continuous) range: a compound ladder's base."""
        return float(round(self._at(np.array([rng.random()]))[0], 2))

    def _at(self, positions: np.ndarray) -> list[float]:
        """The continuous range's values at `positions` in [0, 1] (equal steps in log(value) or value)."""
        if self.log:
            return list(np.exp(np.log(self.low) + positions * (np.log(self.high) - np.log(self.low))))
        return list(self.low + positions * (self.high - self.low))

    def check_steps(self, steps: int) -> None:
        """ConfigError unless the ladder can have `steps` distinct steps."""
        if steps < 2 + (self.base is not None):
            raise ConfigError(f"a {'compound ' if self.base else ''}ladder needs at least "
                              f"{2 + (self.base is not None)} steps, got {steps}")
        if self.values and steps * 2 > len(self.values):
            raise ConfigError(f"{self.family}: a ladder of {steps} steps needs at least {2 * steps} settings")

    def settings(self, steps: int, rng: np.random.Generator) -> list[float]:
        """`steps` values of the parameter, worst to best."""
        self.check_steps(steps)
        positions = (np.arange(steps) + 0.25 + 0.5 * rng.random(steps)) / steps  # ascending in [0, 1]
        if self.span < 1:
            positions = rng.uniform(0, 1 - self.span) + self.span * positions
        if self.values:
            picked = [self.values[int(round(p * (len(self.values) - 1)))] for p in positions]
        else:
            picked = self._at(positions)
        picked = [float(round(v, 2)) for v in picked]
        return picked if self.higher_is_better else picked[::-1]


_MP3_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)

# MP2 and AC-3 stay out (the unseen codecs of benchmarks/bench_ladders.py); so do its exact settings:
# the draws are continuous, and the benchmark's references are not in the corpus.
LADDERS: dict[str, Ladder] = {
    "lowpass": Ladder("bandlimit", "high_hz", 2000.0, 20000.0, fixed={"kind": "lowpass", "order": 8}),
    "noise_white": Ladder("noise_white", "snr_db", 0.0, 50.0, log=False),
    "noise_pink": Ladder("noise_pink", "snr_db", 0.0, 50.0, log=False),
    "clipping": Ladder("clipping", "clip_db", 0.3, 30.0, higher_is_better=False, fixed={"mode": "hard"}),
    "mp3": Ladder("mp3", "bitrate_kbps", values=tuple(float(b) for b in _MP3_KBPS)),
    "aac": Ladder("aac", "bitrate_kbps", 24.0, 256.0),
    "eac3": Ladder("eac3", "bitrate_kbps", 48.0, 384.0),
    "vorbis": Ladder("vorbis", "quality", 0.3, 8.0),
    # damage local in time, at realistic call impairments: more dropouts of a fixed length, a
    # louder echo, more lost packets (concealed by libopus)
    "dropouts": Ladder("dropouts", "per_second", 1.0, 10.0, higher_is_better=False, fixed={"length_ms": 40.0}),
    "echo": Ladder("echo", "gain_db", -40.0, -3.0, log=False, higher_is_better=False,
                   fixed={"delay_ms": 120.0, "repeats": 2}),
    "packet_loss": Ladder("opus_loss", "loss_rate", 0.01, 0.4, higher_is_better=False,
                          fixed={"bitrate_kbps": 48.0, "application": "voip", "frame_ms": 20,
                                 "burst_packets": 1.5, "fec": 0}),
    # fine ladders: steps close together, where the audio bandwidth stays the same and only the
    # in-band noise changes (the low-bitrate AC-3 steps of the benchmark are like that)
    "noise_shaped": Ladder("noise_shaped", "snr_db", 0.0, 40.0, log=False, span=0.3),
    "eac3_fine": Ladder("eac3", "bitrate_kbps", 48.0, 384.0, span=0.3),
    # compound: in-band noise on one low-pass per clip, the low-pass alone best (as a low-bitrate
    # codec's steps at the same audio bandwidth)
    "lowpass_noise": Ladder("noise_shaped", "snr_db", 0.0, 40.0, log=False,
                            base=Ladder("bandlimit", "high_hz", 3000.0, 12000.0, fixed={"kind": "lowpass", "order": 8})),
}


def resolve_ladders(spec: str | Sequence[str]) -> tuple[str, ...]:
    """"all" -> every ladder; "a,b" or ["a", "b"] -> checked names."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if names == ["all"]:
        return tuple(LADDERS)
    unknown = [n for n in names if n not in LADDERS]
    if unknown:
        raise ConfigError(f"unknown ladder {', '.join(unknown)}; choose from {', '.join(LADDERS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"ladders {', '.join(names)} list one twice")
    return tuple(names)


def plan_ladder(clip_id: str, name: str, steps: int, seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    """`(suffix, family, params)` of one ladder's steps for one clip, worst to best.

    Deterministic from the clip, the ladder and the seed. Suffixes are `ld_<ladder>_<step>`.
    """
    ladder = LADDERS[resolve_ladders([name])[0]]
    key = int.from_bytes(hashlib.sha256(f"{seed}:{clip_id}:ladder:{name}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(key)
    if ladder.base is None:
        values = ladder.settings(steps, rng)
        return [(f"ld_{name}_{i}", ladder.family, {**ladder.fixed, ladder.param: v}) for i, v in enumerate(values)]
    base = ladder.base
    base_params = {**base.fixed, base.param: base.draw(rng)}
    plan = [(f"ld_{name}_{i}", "chain", {"first": base.family, "first_params": base_params, "second": ladder.family,
                                         "second_params": {**ladder.fixed, ladder.param: v}})
            for i, v in enumerate(ladder.settings(steps - 1, rng))]
    return plan + [(f"ld_{name}_{steps - 1}", base.family, base_params)]
