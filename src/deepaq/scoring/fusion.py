"""The full-reference score that also reads the 2f-model.

A model folder may ship `fusion.json` (`{"twof_weight": w, "temperature": t, "ceiling": c}`):
its full-reference `quality` then mixes the mapped network quality q with the 2f-model's MMS m,
both on the same 0-100 MUSHRA-like scale (the mapping is fitted onto the 2f-model's scale):

    t * log((1 - w) * exp(q / t) + w * exp(m / t))     a weighted soft maximum (t in quality points)
    (1 - w) * q + w * m                                 without a temperature (its limit for large t)

and with a ceiling, never more than c points above m: the network may lift a verdict the
2f-model condemns (separation residue), but not wave through damage the 2f-model hears as
grave (dropouts and echo in speech, which the network is lenient on).

The network and the 2f-model (two MOVs of our PEAQ Basic) err on different material: each
falsely condemns some damage that listeners barely mind (the network vocoder re-synthesis, the
2f-model separation residue). The soft maximum lets the milder of the two verdicts win where
they disagree by much more than t, which followed listeners better than the average on every
dev test held out in turn; form, weight and temperature are chosen by leave-one-test-out
(model card). The 2f-model reads the same aligned, level-aligned pair the network scores, at
48 kHz.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepaq.errors import AudioError, ConfigError

FILE_NAME = "fusion.json"
TWOF_RATE = 48_000
SEGMENT_S = 60.0  # longer pairs: the 2f MMS of each minute, averaged by duration (bounded memory)
EDGE_S = 0.05  # the 2f part leaves out this much at each end of the pair (TwofMeter)


@dataclass(frozen=True)
class Fusion:
    """How a model's full-reference quality mixes its mapped distance with the 2f-model's MMS."""

    twof_weight: float
    temperature: float | None = None  # None: the weighted average
    ceiling: float | None = None  # at most this many points above the 2f MMS; None: no limit

    def __post_init__(self):
        if not 0.0 <= self.twof_weight <= 1.0:
            raise ConfigError(f"fusion twof_weight must be in [0, 1], got {self.twof_weight!r}")
        if self.temperature is not None and not 0.0 < self.temperature < 1e6:
            raise ConfigError(f"fusion temperature must be a positive number of quality points, "
                              f"got {self.temperature!r}")
        if self.ceiling is not None and not 0.0 <= self.ceiling <= 100.0:
            raise ConfigError(f"fusion ceiling must be 0-100 quality points, got {self.ceiling!r}")

    def combine(self, model_quality: float, mms: float) -> float:
        w, t = self.twof_weight, self.temperature
        if t is None:
            fused = (1.0 - w) * model_quality + w * mms
        else:
            with np.errstate(divide="ignore"):  # a weight of 0 or 1: log(0) = -inf drops that side
                fused = float(t * np.logaddexp(np.log1p(-w) + model_quality / t, np.log(w) + mms / t))
        return fused if self.ceiling is None else min(fused, mms + self.ceiling)

    def describe(self) -> str:
        """One line for version strings, reports and cache keys."""
        if self.temperature is None:
            text = f"average with the 2f-model (weight {self.twof_weight:g}"
        else:
            text = f"soft maximum with the 2f-model (weight {self.twof_weight:g}, temperature {self.temperature:g}"
        text += "" if self.ceiling is None else f", at most {self.ceiling:g} above it"
        return text + f"; 2f without the first and last {EDGE_S * 1000:g} ms)"

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Fusion":
        try:
            data = json.loads(Path(path).read_text())
            temperature, ceiling = data.get("temperature"), data.get("ceiling")
            return cls(float(data["twof_weight"]), None if temperature is None else float(temperature),
                       None if ceiling is None else float(ceiling))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError) as exc:
            raise ConfigError(f"{path}: not a usable fusion file ({exc})") from None

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        data = {"twof_weight": self.twof_weight}
        if self.temperature is not None:
            data["temperature"] = self.temperature
        if self.ceiling is not None:
            data["ceiling"] = self.ceiling
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path


class TwofMeter:
    """Collects the aligned `[2 * channels, n]` chunks of one pair (reference channels first)
    and gives the 2f-model's MMS of the pair less `EDGE_S` at each end; pairs longer than
    `SEGMENT_S` are measured in segments (bounded memory) whose scores are averaged by duration.

    Why the edges go: the 2f-model's ADB averages over the frames it finds distorted, so near
    transparency one frame decides it, and the frame at a cut or at a codec's padding is the
    one (MP2 at 256 kbps of a 10 s excerpt: one distorted frame, the last, MMS 54; without the
    last 21 ms, 100)."""

    def __init__(self, sample_rate: int, name: str):
        self.sample_rate, self.name = sample_rate, name
        self._edge = int(round(EDGE_S * sample_rate))
        self._to_skip = self._edge
        self._parts: list[np.ndarray] = []
        self._held = 0
        self._scores: list[tuple[float, int]] = []  # (MMS, samples)

    def add(self, chunk: np.ndarray) -> None:
        skip = min(self._to_skip, chunk.shape[1])
        self._to_skip -= skip
        self._parts.append(chunk[:, skip:])
        self._held += chunk.shape[1] - skip
        limit = int(SEGMENT_S * self.sample_rate)
        while self._held >= limit + self._edge:  # the last `edge` samples may be the pair's end
            held = np.concatenate(self._parts, axis=1)
            self._measure(held[:, :limit])
            self._parts, self._held = [held[:, limit:]], held.shape[1] - limit

    def mms(self) -> float | None:
        """The MMS, or None when PEAQ finds no segment it can measure (e.g. a reference too
        quiet for its data boundaries, or a pair no longer than its two edges): the quality is
        then the network's alone."""
        if self._held > self._edge:
            self._measure(np.concatenate(self._parts, axis=1)[:, : self._held - self._edge])
        self._parts, self._held = [], 0
        total = sum(n for _, n in self._scores)
        return sum(s * n for s, n in self._scores) / total if total else None

    def _measure(self, pair: np.ndarray) -> None:
        from deepaq.audio import resample
        from deepaq.baselines.peaq.core import evaluate_2f

        n = pair.shape[1]
        if self.sample_rate != TWOF_RATE:
            pair = resample(pair, self.sample_rate, TWOF_RATE)
        c = pair.shape[0] // 2
        try:
            self._scores.append((evaluate_2f(pair[:c], pair[c:], self.name), n))
        except AudioError:  # too short or too quiet for PEAQ: this segment has no MMS
            pass
