"""Audio for scoring as a stream of `[channels, n]` chunks at the model's rate.

Short inputs (and arrays, and formats only FFmpeg decodes) are loaded whole with
`deepaq.audio.load_audio` and come as one chunk. Files that libsndfile reads and that last
longer than `STREAM_ABOVE_S` are decoded block by block, downmixed and resampled with a
streaming soxr resampler (bit-identical to the one-shot resampler), so a 1-hour file never
sits in memory. Full-reference pairs are aligned on their first minute and then streamed
side by side with the delay removed.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf

from deepaq.audio import AudioSource, align_pair, follow_delay, load_audio
from deepaq.audio.io import SILENCE_PEAK
from deepaq.errors import AudioError

STREAM_ABOVE_S = 300.0
BLOCK_S = 10.0
ANALYSIS_S = 60.0  # audio used to find the delay of a pair


def source_name(source: AudioSource) -> str:
    """The file name of a path source, "<array>" for in-memory audio."""
    return "<array>" if isinstance(source, tuple) else str(source)


def audio_chunks(source: AudioSource, sample_rate: int, *, mono: bool = True,
                 stream_above_s: float = STREAM_ABOVE_S) -> Iterator[np.ndarray]:
    """Float32 `[channels, n]` chunks of `source` at `sample_rate`, validated."""
    info = _soundfile_info(source)
    if info is None or info.frames / info.samplerate <= stream_above_s:
        yield load_audio(source, sample_rate=sample_rate, mono=mono)[0]
        return
    yield from _stream_file(Path(source), info, sample_rate, mono)


def _soundfile_info(source: AudioSource):
    if isinstance(source, tuple):
        return None
    try:
        return sf.info(str(source))
    except Exception:  # missing, unreadable or not libsndfile's: load_audio reports it
        return None


def _stream_file(path: Path, info, sample_rate: int, mono: bool) -> Iterator[np.ndarray]:
    import soxr

    channels = 1 if mono else info.channels
    resampler = None
    if info.samplerate < sample_rate:
        warnings.warn(f"{path}: upsampling from {info.samplerate} Hz to {sample_rate} Hz", stacklevel=2)
    if info.samplerate != sample_rate:
        resampler = soxr.ResampleStream(info.samplerate, sample_rate, channels, dtype="float32", quality="HQ")
    peak = 0.0
    blocksize = int(BLOCK_S * info.samplerate)
    try:
        for block in sf.blocks(str(path), blocksize=blocksize, dtype="float32", always_2d=True):
            if not np.isfinite(block).all():
                raise AudioError(path, "contains NaN or infinite samples")
            peak = max(peak, float(np.max(np.abs(block), initial=0.0)))
            x = block.mean(axis=1, keepdims=True, dtype=np.float32) if mono and block.shape[1] > 1 else block
            if resampler is not None:
                x = resampler.resample_chunk(np.ascontiguousarray(x))
            yield np.ascontiguousarray(x.T)
    except sf.LibsndfileError as exc:
        raise AudioError(path, f"cannot be decoded ({exc})") from None
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)
        yield np.ascontiguousarray(tail.T)
    if peak < SILENCE_PEAK:
        raise AudioError(path, "is silent (every sample is zero or below -120 dBFS)")


def _take(chunks: Iterator[np.ndarray], samples: int) -> list[np.ndarray]:
    """Pull chunks until they hold at least `samples` samples (or the stream ends)."""
    taken, n = [], 0
    for chunk in chunks:
        taken.append(chunk)
        n += chunk.shape[1]
        if n >= samples:
            break
    return taken


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    """The chunks as one array (the chunk itself when there is only one: no copy)."""
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=1)


def _skip(chunks: Iterable[np.ndarray], samples: int) -> Iterator[np.ndarray]:
    for chunk in chunks:
        if samples >= chunk.shape[1]:
            samples -= chunk.shape[1]
            continue
        yield chunk[:, samples:]
        samples = 0


def _zip_chunks(a: Iterator[np.ndarray], b: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """`[ca + cb, n]` chunks holding both streams side by side; stops with the shorter."""
    pa = pb = None
    while True:
        if pa is None or pa.shape[1] == 0:
            pa = next(a, None)
        if pb is None or pb.shape[1] == 0:
            pb = next(b, None)
        if pa is None or pb is None:
            return
        n = min(pa.shape[1], pb.shape[1])
        yield np.concatenate([pa[:, :n], pb[:, :n]], axis=0)
        pa, pb = pa[:, n:], pb[:, n:]


def aligned_chunks(reference: AudioSource, degraded: AudioSource, sample_rate: int, *, mono: bool = True,
                   max_delay_s: float = 1.0, stream_above_s: float = STREAM_ABOVE_S, align_level: bool = True,
                   jumps: list[int] | None = None) -> tuple[Iterator[np.ndarray], int, float | None]:
    """Chunks `[2 * channels, n]` (reference channels first) with the delay removed, the delay,
    and the level of the degraded signal relative to the reference in dB.

    The delay (in samples at `sample_rate`, positive when the degraded signal lags) is found
    with `align_pair` on the first minute of both signals, and the level difference (mean power,
    all channels) on the same minute once aligned; the pair then streams on, trimmed to the
    length they share. With `align_level` the degraded signal is scaled by the opposite gain, as
    ViSQOL does, so a pure level change is not scored as damage (it is still reported). The
    level is None when either signal is silent there; then nothing is scaled. With a `jumps`
    list the delay is then followed where it jumps within the pair (`deepaq.audio.follow_delay`,
    each jump appended to the list); without one it stays constant.
    """
    names = (source_name(reference), source_name(degraded))
    ref = audio_chunks(reference, sample_rate, mono=mono, stream_above_s=stream_above_s)
    deg = audio_chunks(degraded, sample_rate, mono=mono, stream_above_s=stream_above_s)
    max_delay = int(round(max_delay_s * sample_rate))
    head_r = _take(ref, int(ANALYSIS_S * sample_rate))
    head_d = _take(deg, int(ANALYSIS_S * sample_rate) + max_delay)
    r, d = _joined(head_r), _joined(head_d)
    if r.shape[0] != d.shape[0]:
        raise AudioError(names[1], f"has {d.shape[0]} channels but {names[0]} has {r.shape[0]}")
    delay = align_pair(r, d, sample_rate, max_delay_s=max_delay_s, analysis_s=ANALYSIS_S, names=names).delay_samples
    level = level_difference_db(r[:, max(0, -delay):], d[:, max(0, delay):])
    del r, d
    ref = _skip(itertools.chain(head_r, ref), max(0, -delay))
    deg = _skip(itertools.chain(head_d, deg), max(0, delay))
    if align_level and level is not None:
        gain = np.float32(10.0 ** (-level / 20.0))
        deg = (chunk * gain for chunk in deg)
    return (_zip_chunks(ref, deg) if jumps is None else follow_delay(ref, deg, sample_rate, jumps)), delay, level


def level_difference_db(reference: np.ndarray, degraded: np.ndarray) -> float | None:
    """Mean power of `degraded` over `reference` in dB, on the length both share (None if either is silent)."""
    n = min(reference.shape[1], degraded.shape[1])
    p_ref = float(np.mean(np.square(reference[:, :n], dtype=np.float64))) if n else 0.0
    p_deg = float(np.mean(np.square(degraded[:, :n], dtype=np.float64))) if n else 0.0
    if p_ref <= SILENCE_PEAK ** 2 or p_deg <= SILENCE_PEAK ** 2:
        return None
    return 10.0 * float(np.log10(p_deg / p_ref))
