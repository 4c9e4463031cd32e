"""Time alignment of full-reference pairs by cross-correlation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from scipy import fft

from deepaq.audio.resample import to_mono
from deepaq.errors import AlignmentError

# Below this normalised cross-correlation at the best lag, the two signals are taken to
# share no content within the search range. Unrelated 5 s signals score about 0.01; every
# codec of deepaq.codecs down to 8 kbps scored 0.19 or more on the ViSQOL test music.
MIN_CORRELATION = 0.1


@dataclass(frozen=True)
class AlignedPair:
    """Reference and degraded, delay-compensated and trimmed to their common length."""

    reference: np.ndarray
    degraded: np.ndarray
    delay_samples: int  # positive: the degraded signal lags the reference
    correlation: float  # normalised cross-correlation at that delay


def estimate_delay(
    reference: np.ndarray,
    degraded: np.ndarray,
    max_delay: int,
    analysis_samples: int | None = None,
) -> tuple[int, float]:
    """Lag (in samples) of `degraded` behind `reference`, and the normalised peak height.

    Both are `[channels, samples]`; channels are averaged for the estimate. Only the first
    `analysis_samples` of each are used, which keeps memory bounded on long files.
    """
    r = _mono(reference, analysis_samples)
    d = _mono(degraded, analysis_samples)
    ahead, behind = min(max_delay, r.size - 1), min(max_delay, d.size - 1)
    values = _correlation(r, d, ahead, behind)
    peak = int(np.argmax(np.abs(values)))
    # energies by pairwise float32 sums (accurate to ~1e-7); the peak itself carries the FFT's
    # ~1e-6 relative error, far below what MIN_CORRELATION has to tell apart
    energy = math.sqrt(float(np.square(r).sum()) * float(np.square(d).sum()))
    return peak - ahead, (abs(float(values[peak])) / energy if energy > 0 else 0.0)


def _mono(x: np.ndarray, samples: int | None) -> np.ndarray:
    """The first `samples` of the channel mean as float32 (no copy for mono float32 input)."""
    return to_mono(x[:, :samples])[0].astype(np.float32, copy=False)


def _correlation(r: np.ndarray, d: np.ndarray, ahead: int, behind: int) -> np.ndarray:
    """sum_n d[n + lag] * r[n] for lag = -ahead .. +behind, by real FFTs (float32).

    The circular correlation is just long enough that no lag in the range wraps around
    (about half the length a full linear correlation needs).
    """
    n = _fft_length(max(r.size + behind, d.size + ahead))
    spectrum = fft.rfft(r, n)
    np.conjugate(spectrum, out=spectrum)
    spectrum *= fft.rfft(d, n)
    xc = fft.irfft(spectrum, n, overwrite_x=True)
    return np.concatenate([xc[n - ahead :], xc[: behind + 1]]) if ahead else xc[: behind + 1]


def _fft_length(n: int) -> int:
    """The shortest length >= n of the form m * 2^k, m in {1, 3, 5, 9, 15, 27, 45, 135}.

    Lengths with many factors of two are the fast ones: for n = 528,000 (10 s + 1 s at 48 kHz)
    this gives 552,960 = 135 * 2^12, whose real FFT took 4.7 ms here against 7.2 ms for
    scipy's next_fast_len choice 531,441 = 3^12.
    """
    return min(m << max(0, math.ceil(math.log2(n / m))) for m in (1, 3, 5, 9, 15, 27, 45, 135))


def align_pair(
    reference: np.ndarray,
    degraded: np.ndarray,
    sample_rate: int,
    *,
    max_delay_s: float = 1.0,
    analysis_s: float = 60.0,
    names: tuple[str, str] = ("reference", "degraded"),
) -> AlignedPair:
    """Find the delay of `degraded` within +-max_delay_s, compensate it, trim to common length.

    Raises `AlignmentError` when no lag in the range gives a clear correlation peak.
    """
    max_delay = int(round(max_delay_s * sample_rate))
    lag, corr = estimate_delay(reference, degraded, max_delay, int(analysis_s * sample_rate))
    if corr < MIN_CORRELATION:
        raise AlignmentError(
            names[1],
            f"cannot be aligned with {names[0]} within +-{max_delay_s:g} s "
            f"(best normalised correlation {corr:.3f} < {MIN_CORRELATION})",
        )
    if lag > 0:
        degraded = degraded[:, lag:]
    elif lag < 0:
        reference = reference[:, -lag:]
    n = min(reference.shape[1], degraded.shape[1])
    if n == 0:
        raise AlignmentError(names[1], f"has no overlap with {names[0]} after removing a delay of {lag} samples")
    return AlignedPair(reference[:, :n], degraded[:, :n], lag, corr)


# Following a delay that changes within a pair (a jitter buffer that grows or shrinks, a cut,
# an inserted gap): block by block, the degraded signal is searched within +-FOLLOW_JUMP_S of
# the current delay, and the delay moves only for a clear, large jump, so that phase drift of
# a re-synthesis or the periodicity of a held tone never moves it (ViSQOL and PESQ align
# patches or utterances for the same reason).
FOLLOW_BLOCK_S = 0.5
FOLLOW_JUMP_S = 0.1
FOLLOW_MIN_JUMP_S = 0.005  # smaller shifts barely change 94 ms parts or PEAQ's 42 ms frames
FOLLOW_MIN_PEAK = 0.5  # normalised correlation at the new delay, at least ...
FOLLOW_MARGIN = 0.3  # ... and this much above the correlation at the current delay
FOLLOW_UNIQUE = 0.05  # ... and above every lag more than 1 ms away (a held tone matches at each period)
FOLLOW_SEARCH_RATE = 12000  # Hz: the search sums samples down to about this rate (4 at 48 kHz)


def follow_delay(reference: Iterator[np.ndarray], degraded: Iterator[np.ndarray], sample_rate: int,
                 jumps: list[int] | None = None) -> Iterator[np.ndarray]:
    """`[ref channels + deg channels, n]` chunks of two aligned streams, the degraded one
    re-aligned block by block where its delay jumps (see above); ends with the shorter stream.

    Each jump found (in samples, + = the degraded signal fell further behind) is appended to
    `jumps`. The block where a jump happens is compared at the delay before it, so a cut or a
    gap still counts as damage there, about as much as a dropout of the same length.
    """
    block, reach = int(FOLLOW_BLOCK_S * sample_rate), int(FOLLOW_JUMP_S * sample_rate)
    min_jump, step = int(FOLLOW_MIN_JUMP_S * sample_rate), max(1, sample_rate // FOLLOW_SEARCH_RATE)
    ref, deg = _Samples(reference), _Samples(degraded)
    start, delay = 0, 0  # block start in the reference; degraded index = reference index + delay
    while True:
        r = ref.read(start, start + block)
        if r.shape[1] == 0:
            return
        if r.shape[1] == block and start + delay - reach >= 0:
            around = deg.read(start + delay - reach, start + delay + block + reach)
            if around.shape[1] == block + 2 * reach:
                jump = _local_jump(to_mono(r)[0], to_mono(around)[0], reach, min_jump, step)
                if jump and jumps is not None:
                    jumps.append(jump)
                delay += jump
        d = deg.read(start + delay, start + delay + r.shape[1])
        if d.shape[1] == 0:
            return
        yield np.concatenate([r[:, : d.shape[1]], d], axis=0)
        if d.shape[1] < r.shape[1]:
            return
        start += block
        ref.forget_before(start)
        deg.forget_before(start + delay - 2 * reach)  # the next block may move back by up to `reach`


def _local_jump(r: np.ndarray, around: np.ndarray, reach: int, min_jump: int, step: int) -> int:
    """How far the best match of block `r` in `around` (`reach` samples more on each side)
    lies from the middle, if it is a clear, large jump; else 0. The search runs on every
    `step`-th sample's sum (jumps are >= `min_jump`), then the lag is refined at the full rate."""
    n = r.size
    here = around[reach : reach + n]
    if _normalised_dot(r, here) > 1.0 - FOLLOW_MARGIN:
        return 0  # no lag can beat the current one by the margin (a correlation is at most 1)
    rc, ac, reach_c = _decimated(r, step), _decimated(around, step), reach // step
    corr = _correlations(rc, ac, reach_c)
    best = int(np.argmax(corr))
    near = max(1, min_jump // (5 * step))  # 1 ms
    others = np.concatenate([corr[: max(0, best - near)], corr[best + near + 1 :]])
    clear = (corr[best] >= FOLLOW_MIN_PEAK and corr[best] >= corr[reach_c] + FOLLOW_MARGIN
             and corr[best] >= (others.max() if others.size else -1.0) + FOLLOW_UNIQUE)
    if not clear or abs(best - reach_c) * step < min_jump:
        return 0
    lags = range(max(0, (best - 1) * step), min(2 * reach, (best + 1) * step) + 1)
    return max(lags, key=lambda k: _normalised_dot(r, around[k : k + n])) - reach


def _decimated(x: np.ndarray, step: int) -> np.ndarray:
    """Sums of `step` samples (a crude low-pass and down-sampling, enough to find a lag)."""
    n = x.size // step * step
    return x[:n].reshape(-1, step).sum(axis=1)


def _correlations(r: np.ndarray, around: np.ndarray, reach: int) -> np.ndarray:
    """Normalised correlation of `r` with `around` at each of its `2 * reach + 1` offsets."""
    n = r.size
    xc = _correlation(r, around, 0, 2 * reach)
    cumulative = np.concatenate([[0.0], np.cumsum(np.square(around, dtype=np.float64))])
    energy = (cumulative[n : n + 2 * reach + 1] - cumulative[: 2 * reach + 1]) * float(np.dot(r, r))
    return xc / np.sqrt(np.maximum(energy, 1e-30))


def _normalised_dot(a: np.ndarray, b: np.ndarray) -> float:
    energy = float(np.dot(a, a)) * float(np.dot(b, b))
    return float(np.dot(a, b)) / math.sqrt(energy) if energy > 0.0 else 0.0


class _Samples:
    """A stream of `[channels, n]` chunks read by absolute sample index, forgetting the past."""

    def __init__(self, chunks: Iterator[np.ndarray]):
        self._chunks = iter(chunks)
        self._buffer: np.ndarray | None = None
        self._start = 0  # absolute index of the buffer's first sample

    def read(self, a: int, b: int) -> np.ndarray:
        """Samples `[a, b)`, fewer at the end of the stream (`a` not before what was forgotten)."""
        while self._buffer is None or self._start + self._buffer.shape[1] < b:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer = chunk if self._buffer is None else np.concatenate([self._buffer, chunk], axis=1)
        if self._buffer is None:
            return np.zeros((1, 0), np.float32)
        return self._buffer[:, max(0, a - self._start) : max(0, b - self._start)]

    def forget_before(self, a: int) -> None:
        if self._buffer is not None and a > self._start:
            cut = min(a - self._start, self._buffer.shape[1])
            self._buffer, self._start = self._buffer[:, cut:], self._start + cut
