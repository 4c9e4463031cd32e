"""Fixed-length analysis windows over a stream of audio chunks, and their pooling weights.

Windows have the model's length and start every `hop` samples. When the last regular
window stops short of the end, one more window is placed flush with the end, so every
window the network sees has its training length and no sample is left out. Audio shorter
than one window becomes a single window of its own length (the network averages over
time, so no padding is needed), provided it reaches the minimum.

Pooling weight of a window (`pooling_weights`): every sample of the signal carries weight 1,
shared equally by the windows that cover it. The weights add up to the signal's length, so a
sample counts the same wherever it lies, and the end window counts only for the audio it adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from deepaq.errors import AudioError


@dataclass(frozen=True)
class WindowSpec:
    """Window length and hop in samples, and the shortest audio accepted."""

    length: int
    hop: int
    min_length: int

    @classmethod
    def from_seconds(cls, window_s: float, sample_rate: int, overlap: float = 0.5,
                     min_seconds: float = 1.0) -> "WindowSpec":
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        length = int(round(window_s * sample_rate))
        hop = max(1, int(round(length * (1.0 - overlap))))
        return cls(length, hop, min(length, int(round(min_seconds * sample_rate))))


class Windower:
    """Cut `[channels, n]` chunks into window batches `[B, channels, L]`; remembers starts."""

    def __init__(self, spec: WindowSpec, name: str | None = None):
        self.spec = spec
        self.name = name
        self.starts: list[int] = []
        self.total = 0  # samples seen, final once `batches` is exhausted

    def batches(self, chunks: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
        """Yield window batches; `self.starts` lists each window's first sample, in order."""
        length, hop = self.spec.length, self.spec.hop
        buf: np.ndarray | None = None
        offset = 0  # absolute index of buf[:, 0]
        next_start = 0
        last_end = 0
        pending: list[np.ndarray] = []
        for chunk in chunks:
            if chunk.shape[1] == 0:
                continue
            buf = chunk if buf is None or buf.shape[1] == 0 else np.concatenate([buf, chunk], axis=1)
            self.total += chunk.shape[1]
            while next_start + length <= self.total:
                s = next_start - offset
                pending.append(buf[:, s:s + length])
                self.starts.append(next_start)
                last_end = next_start + length
                next_start += hop
                if len(pending) == batch_size:
                    yield np.stack(pending)
                    pending = []
            keep = max(0, self.total - length)  # the next window and the end window lie in here
            buf = buf[:, keep - offset:]
            offset = keep
        if buf is None or self.total == 0:
            raise AudioError(self.name, "contains no audio samples")
        if self.total < length:
            if self.total < self.spec.min_length:
                raise AudioError(self.name, f"is too short: {self.total} samples after alignment, "
                                            f"at least {self.spec.min_length} are needed")
            self.starts.append(0)
            yield buf[np.newaxis]
            return
        if last_end < self.total:
            pending.append(buf[:, buf.shape[1] - length:])
            self.starts.append(self.total - length)
        if pending:
            yield np.stack(pending)

    def weights(self) -> np.ndarray:
        """Pooling weights of the windows (in samples); call after `batches` is exhausted."""
        return pooling_weights(np.asarray(self.starts), min(self.spec.length, self.total), self.total)


def pooling_weights(starts: np.ndarray, length: int, total: int) -> np.ndarray:
    """Each sample weighs 1, split equally among the windows `[start, start+length)` covering it.

    `starts` must be sorted; the result sums to the number of covered samples.
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.minimum(starts + length, total)
    bounds = np.unique(np.concatenate([starts, ends]))
    weights = np.zeros(len(starts))
    for a, b in zip(bounds[:-1], bounds[1:]):
        first = np.searchsorted(ends, b, side="left")  # windows ending at or after b
        last = np.searchsorted(starts, a, side="right")  # windows starting at or before a
        if last > first:
            weights[first:last] += (b - a) / (last - first)
    return weights
