"""Real codecs, in-process: encode and decode through PyAV's bundled FFmpeg.

`degrade(x, sr, codec, bitrate_kbps)` returns the decoded signal sample-aligned with the
input and of the same length. Encoder delay and padding are compensated with a constant
per codec setting, measured once on a fixed calibration signal (the way gapless players
use the encoder's known priming length), never on the content being coded.

Bitrates are the encoder's nominal (target) bitrates. Where a format cannot carry the
bitrate at the input rate (MP3 below 32 kbps at 48 kHz), the signal is coded at a lower
rate first, as LAME does on its own; `codec_sample_rate` says which.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import signal

from deepaq.audio.align import estimate_delay
from deepaq.audio.resample import resample
from deepaq.errors import CodecError


@dataclass(frozen=True)
class CodecSpec:
    encoder: str  # FFmpeg encoder name
    container: str  # FFmpeg muxer the packets are written to
    min_kbps: float
    max_kbps: float


CODECS: dict[str, CodecSpec] = {
    "opus": CodecSpec("libopus", "ogg", 6, 510),
    "mp3": CodecSpec("libmp3lame", "mp3", 8, 320),
    "aac": CodecSpec("aac", "adts", 8, 512),
    "mp2": CodecSpec("mp2", "mp2", 32, 384),
    "ac3": CodecSpec("ac3", "ac3", 32, 640),
}
# The paper's grid (kbps) for Opus, MP3 and AAC.
PAPER_BITRATES = (16, 32, 48, 64, 80, 96, 128)
# Rates Opus accepts as input; others are resampled to 48 kHz for coding.
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def codec_sample_rate(codec: str, bitrate_kbps: float, sample_rate: int) -> int:
    """The rate the signal is coded at for this codec and bitrate."""
    if codec == "opus":
        return sample_rate if sample_rate in _OPUS_RATES else 48000
    if codec == "mp3" and bitrate_kbps < 32 and sample_rate > 24000:
        return 24000  # MPEG-2 Layer III: 8-160 kbps
    if codec in ("mp2", "ac3") and sample_rate not in (32000, 44100, 48000):
        return 48000
    return sample_rate


def degrade(x: np.ndarray, sample_rate: int, codec: str, bitrate_kbps: float) -> np.ndarray:
    """Encode and decode `[channels, samples]` float audio; same shape, sample-aligned."""
    spec = _spec(codec, bitrate_kbps)
    x = np.asarray(x, dtype=np.float32)
    channels = x.shape[0]
    if channels not in (1, 2):
        raise CodecError(f"{codec}: only mono and stereo input can be coded, got {channels} channels")
    coding_rate = codec_sample_rate(codec, bitrate_kbps, sample_rate)
    delay = _codec_delay(codec, float(bitrate_kbps), coding_rate, channels)
    y = round_trip(resample(x, sample_rate, coding_rate), coding_rate, spec, bitrate_kbps)
    y = resample(y, coding_rate, sample_rate)
    delay = int(round(delay * sample_rate / coding_rate))
    return fit_length(y[:, delay:], x.shape[1])


def lowpass(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """MUSHRA anchor: zero-phase 10th-order Butterworth low-pass (no delay)."""
    if not 0 < cutoff_hz < sample_rate / 2:
        raise CodecError(f"low-pass cutoff {cutoff_hz} Hz must lie between 0 and {sample_rate / 2} Hz")
    sos = signal.butter(10, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1).astype(np.float32)


def apply_condition(x: np.ndarray, sample_rate: int, codec: str, setting: float | None = None) -> np.ndarray:
    """One test condition: "clean" (unchanged), "lowpass" (setting = cutoff in Hz) or a codec
    of CODECS (setting = bitrate in kbps)."""
    if codec == "clean":
        return x
    if codec == "lowpass":
        return lowpass(x, sample_rate, setting)
    return degrade(x, sample_rate, codec, setting)


def codec_versions() -> dict[str, str]:
    """Versions of PyAV and the FFmpeg libraries that did the coding, for provenance."""
    import av

    versions = {"av": av.__version__}
    for lib, ver in av.library_versions.items():
        versions[lib] = ".".join(str(v) for v in ver)
    return versions


def _spec(codec: str, bitrate_kbps: float) -> CodecSpec:
    try:
        spec = CODECS[codec]
    except KeyError:
        raise CodecError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}") from None
    if not spec.min_kbps <= bitrate_kbps <= spec.max_kbps:
        raise CodecError(
            f"{codec}: bitrate {bitrate_kbps:g} kbps is outside {spec.min_kbps:g}-{spec.max_kbps:g} kbps"
        )
    return spec


def round_trip(
    x: np.ndarray, sample_rate: int, spec: CodecSpec, bitrate_kbps: float | None, options: dict[str, str] | None = None
) -> np.ndarray:
    """Encode and decode through `spec`'s encoder and container, uncompensated (decoder delay
    and padding included). `options` are the encoder's private FFmpeg options; `bitrate_kbps`
    None leaves the encoder's own rate (fixed-rate formats)."""
    import av

    layout = "mono" if x.shape[0] == 1 else "stereo"
    buffer = io.BytesIO()
    try:
        with av.open(buffer, mode="w", format=spec.container) as out:
            stream = out.add_stream(spec.encoder, rate=sample_rate, layout=layout, options=dict(options or {}))
            if bitrate_kbps is not None:
                stream.bit_rate = int(bitrate_kbps * 1000)
            ctx = stream.codec_context
            to_encoder = av.AudioResampler(
                format=ctx.format.name, layout=layout, rate=sample_rate, frame_size=ctx.frame_size or None
            )
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = 0
            for chunk in (*to_encoder.resample(frame), *to_encoder.resample(None)):
                for packet in stream.encode(chunk):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        buffer.seek(0)
        with av.open(buffer, mode="r", format=spec.container) as inp:
            to_float = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
            chunks = [f.to_ndarray() for frame in inp.decode(audio=0) for f in to_float.resample(frame)]
            chunks += [f.to_ndarray() for f in to_float.resample(None)]
    except av.codec.codec.UnknownCodecError:
        raise CodecError(f"{spec.encoder}: this PyAV build ({av.__version__}) has no such encoder in its FFmpeg "
                         f"(PyAV 18.1.1's wheels leave out libopencore_amrnb: pip install 'av<18.1.1')") from None
    except av.error.FFmpegError as exc:
        rate = "its own bitrate" if bitrate_kbps is None else f"{bitrate_kbps:g} kbps"
        extra = "".join(f", {k}={v}" for k, v in (options or {}).items())
        raise CodecError(f"{spec.encoder} at {rate}, {sample_rate} Hz, {layout}{extra}: {exc}") from None
    return np.concatenate(chunks, axis=1).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _codec_delay(codec: str, bitrate_kbps: float, sample_rate: int, channels: int) -> int:
    """Samples the decoder output lags its input, measured on a fixed calibration signal."""
    return calibrated_delay(lambda probe: round_trip(probe, sample_rate, CODECS[codec], bitrate_kbps), sample_rate, channels)


def calibrated_delay(code: Callable[[np.ndarray], np.ndarray], sample_rate: int, channels: int) -> int:
    """Samples by which `code(x)` lags x, measured on a fixed band-limited noise burst
    (never on the content being coded); callers cache it per codec setting."""
    rng = np.random.default_rng(0)
    n = sample_rate * 2
    burst = rng.standard_normal(n)
    sos = signal.butter(4, [200, 2500], btype="band", fs=sample_rate, output="sos")
    burst = signal.sosfilt(sos, burst) * signal.windows.tukey(n, 0.2)
    probe = np.zeros(n + sample_rate, dtype=np.float32)
    probe[sample_rate // 2 : sample_rate // 2 + n] = 0.3 * burst / np.abs(burst).max()
    probe = np.tile(probe, (channels, 1))
    decoded = code(probe)
    lag, _ = estimate_delay(probe, decoded, max_delay=sample_rate // 4)
    return max(lag, 0)


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """`y` cut or zero-padded to n samples."""
    if y.shape[1] >= n:
        return np.ascontiguousarray(y[:, :n])
    return np.pad(y, ((0, 0), (0, n - y.shape[1])))
