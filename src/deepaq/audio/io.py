"""Read, validate and write audio files.

Every reader returns float32 `[channels, samples]` and the sample rate. soundfile
(libsndfile) reads WAV, FLAC, OGG/Vorbis, Opus-in-Ogg and MP3; everything else that
FFmpeg decodes (M4A/AAC, raw AAC, AC-3, ...) goes through PyAV. Problems are raised as
`AudioError` naming the file and the problem.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from deepaq.errors import AudioError

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 768000
# A signal whose peak stays below this (about -120 dBFS) counts as silent.
SILENCE_PEAK = 1e-6
# Full scale is 1.0; a peak beyond this (+120 dB) is not audio in that convention, and
# filtering it (resampling, downmixing) in float32 could overflow to infinity.
MAX_PEAK = 1e6


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a file to float32 `[channels, samples]` and its sample rate, validated."""
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise AudioError(path, "is an empty file (0 bytes)")
    try:
        with sf.SoundFile(path) as f:
            # 16-bit PCM is read as integers: converting them here is ~10x faster than libsndfile's
            # float conversion, and gives the same values (sample / 32768)
            data = f.read(dtype="int16" if f.subtype == "PCM_16" else "float32", always_2d=True)
            sr = f.samplerate
        x = data.T
    except (sf.LibsndfileError, RuntimeError, TypeError):
        x, sr = _read_with_pyav(path)
    return validate_audio(x, sr, source=path), int(sr)


def _read_with_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(path, "has no audio stream")
            stream = container.streams.audio[0]
            sr = stream.codec_context.sample_rate
            channels = stream.codec_context.channels
            # Convert every decoded frame to planar float at the stream's own rate and layout.
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=sr)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except AudioError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(path, f"not an audio file FFmpeg can decode ({exc.__class__.__name__}: {exc})") from None
    if not chunks:
        raise AudioError(path, "contains no audio samples")
    x = np.concatenate(chunks, axis=1).astype(np.float32)
    return x.reshape(channels, -1) if x.shape[0] != channels else x, int(sr)


def validate_audio(
    x: np.ndarray,
    sample_rate: int,
    source: str | os.PathLike | None = None,
    min_seconds: float = 0.0,
) -> np.ndarray:
    """Check shape, rate, length, finiteness and silence; return float32 `[channels, samples]`.

    1-D input is taken as mono; integer samples are scaled to [-1, 1) (full scale 2^(bits-1)).
    The result is C-contiguous. Raises `AudioError` with the source's name and the problem.
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise AudioError(source, f"samples must be real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise AudioError(source, f"expected [channels, samples], got an array of shape {arr.shape}")
    if arr.shape[0] > 64 and arr.shape[1] <= 64:
        raise AudioError(source, f"expected [channels, samples], got shape {arr.shape}: transpose it")
    if arr.shape[0] == 0:
        raise AudioError(source, "has no channels")
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool):
        if not (isinstance(sample_rate, float) and float(sample_rate).is_integer()):
            raise AudioError(source, f"sample rate must be a whole number of Hz, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    if sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(source, f"sample rate {sample_rate} Hz is below the minimum {MIN_SAMPLE_RATE} Hz")
    if sample_rate > MAX_SAMPLE_RATE:
        raise AudioError(source, f"sample rate {sample_rate} Hz is above the maximum {MAX_SAMPLE_RATE} Hz")
    if arr.dtype.kind in "iu":
        arr = _int_to_float(arr)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.shape[1] == 0:
        raise AudioError(source, "contains no audio samples (zero length)")
    peak = max(float(arr.max()), -float(arr.min()))  # NaN propagates; two passes, no temporaries
    if not math.isfinite(peak):
        raise AudioError(source, "contains NaN or infinite samples")
    if peak > MAX_PEAK:
        raise AudioError(source, f"peak sample {peak:.3g} is beyond {MAX_PEAK:g} (full scale is 1.0): not float audio")
    seconds = arr.shape[1] / sample_rate
    if seconds < min_seconds:
        raise AudioError(source, f"is {seconds:.3f} s long; at least {min_seconds:g} s are needed")
    if peak < SILENCE_PEAK:
        raise AudioError(source, "is silent (every sample is zero or below -120 dBFS)")
    return arr


def _int_to_float(arr: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 C-contiguous, full scale 2^(bits-1); unsigned samples centred first."""
    bits = 8 * arr.dtype.itemsize
    offset = 0 if arr.dtype.kind == "i" else 2 ** (bits - 1)
    # up to 16 bits every value is exact in float32; wider integers are scaled in float64
    work = np.float32 if bits <= 16 else np.float64
    scale = work(1.0 / 2 ** (bits - 1))  # a power of two: exact
    if offset == 0:  # one pass, written C-contiguous whatever the input's layout
        return np.multiply(arr, scale, dtype=work, order="C").astype(np.float32, copy=False)
    out = np.subtract(arr, offset, dtype=work, order="C")
    out *= scale
    return out.astype(np.float32, copy=False)


def write_audio(
    path: str | os.PathLike, x: np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write `[channels, samples]` float audio as WAV or FLAC (chosen by suffix).

    The default subtype is PCM_16; pass "PCM_24" for more headroom. The file is written to
    a temporary name first and renamed, so a crash never leaves a half-written file.
    """
    path = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC"}.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(path, "can only write .wav or .flac")
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    sf.write(tmp, np.clip(arr.T, -1.0, 1.0), int(sample_rate), subtype=subtype or "PCM_16", format=fmt)
    os.replace(tmp, path)
    return path
