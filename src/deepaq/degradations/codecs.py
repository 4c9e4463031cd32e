"""Codec families: the encoders PyAV's bundled FFmpeg ships, beyond deepaq.codecs' grid.

Everything is coded in-process through `deepaq.codecs.round_trip` and compensated for the
codec's delay with a constant measured once per setting on a fixed calibration signal
(`deepaq.codecs.calibrated_delay`), so outputs stay sample-aligned with their input.
Narrow-band codecs (G.722, G.726, AMR-NB, mSBC) code at their own rate, mono, one channel
at a time; the result is brought back to the input rate with `deepaq.audio.resample`.

The grid's codecs (opus, mp3, aac) and the held-out ones (mp2, ac3) are families too, so
they can be sampled at any bitrate and used in tandem chains.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from deepaq.audio.resample import resample
from deepaq.codecs import CODECS, CodecSpec, calibrated_delay, codec_sample_rate, degrade, fit_length, round_trip
from deepaq.degradations.registry import REGISTRY, Param, Worker, apply_in_series, family, log_uniform, sample_pair
from deepaq.errors import CodecError, ConfigError

Options = tuple[tuple[str, str], ...]  # hashable encoder options, for the delay cache


def code(
    x: np.ndarray,
    sample_rate: int,
    spec: CodecSpec,
    kbps: float | None,
    options: dict[str, str] | None = None,
    *,
    coding_rate: int | None = None,
    mono_only: bool = False,
    stereo_only: bool = False,
    preroll: int = 0,
) -> np.ndarray:
    """Code `x` with `spec` at `coding_rate` (default: the input rate); same shape, aligned.

    `mono_only` codes each channel as its own mono stream; `stereo_only` codes mono input as
    two equal channels and averages them back. `preroll` zeros (at the coding rate) go before
    the signal, for codecs whose decoder drops the first samples (a negative delay). A little
    silence always follows the signal, so the encoder's last frame holds no signal to lose.
    """
    coding_rate = coding_rate or sample_rate
    opts: Options = tuple(sorted((options or {}).items()))
    z = resample(x, sample_rate, coding_rate)
    if mono_only and z.shape[0] > 1:
        y = np.concatenate([_aligned(z[c : c + 1], coding_rate, spec, kbps, opts, preroll) for c in range(z.shape[0])])
    elif stereo_only and z.shape[0] == 1:
        y = _aligned(np.repeat(z, 2, axis=0), coding_rate, spec, kbps, opts, preroll).mean(axis=0, keepdims=True)
    else:
        y = _aligned(z, coding_rate, spec, kbps, opts, preroll)
    return fit_length(resample(np.ascontiguousarray(y, dtype=np.float32), coding_rate, sample_rate), x.shape[1])


def _padded_round_trip(x: np.ndarray, rate: int, spec: CodecSpec, kbps: float | None, opts: Options, preroll: int) -> np.ndarray:
    padded = np.pad(x, ((0, 0), (preroll, rate // 10)))
    return round_trip(padded, rate, spec, kbps, dict(opts))


def _aligned(x: np.ndarray, rate: int, spec: CodecSpec, kbps: float | None, opts: Options, preroll: int) -> np.ndarray:
    delay = _delay(spec, kbps, opts, rate, x.shape[0], preroll)
    return fit_length(_padded_round_trip(x, rate, spec, kbps, opts, preroll)[:, delay:], x.shape[1])


@functools.lru_cache(maxsize=None)
def _delay(spec: CodecSpec, kbps: float | None, opts: Options, rate: int, channels: int, preroll: int) -> int:
    """The lag of `_padded_round_trip`'s output (its preroll included), measured once per setting."""
    return calibrated_delay(lambda probe: _padded_round_trip(probe, rate, spec, kbps, opts, preroll), rate, channels)


def _kbps_range(rng: np.random.Generator, low: float, high: float) -> float:
    return round(log_uniform(rng, low, high))


def _bitrate(p: dict[str, Any]) -> float:
    return p["bitrate_kbps"]


def _bitrate_family(
    name: str, what: str, imitates: str, spec: CodecSpec, default: float, low: float, high: float
) -> Callable[[Worker], Worker]:
    """`family` for a codec set by its bitrate alone: `spec`'s range, sampled log-uniform in low-high kbps."""
    return family(
        name, "codec", what, imitates,
        {"bitrate_kbps": Param(default, spec.min_kbps, spec.max_kbps, doc=f"sampled {low:g}-{high:g}, log-uniform")},
        lambda rng: {"bitrate_kbps": float(_kbps_range(rng, low, high))},
        kbps=_bitrate,
    )


# ---------------------------------------------------------------- the grid's codecs and the held-out ones

_GRID_SAMPLING = {"opus": (8, 128), "mp3": (16, 192), "aac": (16, 160), "mp2": (32, 256), "ac3": (64, 320)}
_GRID_IMITATES = {
    "opus": "Opus streaming and WebRTC at any bitrate",
    "mp3": "MP3 files and streams",
    "aac": "AAC (FFmpeg's native encoder) in streaming and broadcast",
    "mp2": "MPEG-1 Layer II broadcast (DAB, DVB); held out of training",
    "ac3": "Dolby Digital (DVD, broadcast); held out of training",
}


# MPEG-1 Layer II and AC-3 frames carry only these bitrates (kbps)
_STANDARD_KBPS = {
    "mp2": (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    "ac3": (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640),
}


def _grid_family(name: str) -> None:
    spec = CODECS[name]
    low, high = _GRID_SAMPLING[name]
    standard = tuple(float(b) for b in _STANDARD_KBPS.get(name, ()))
    what = f"{spec.encoder} at a bitrate (deepaq.codecs)"

    def work(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        return degrade(x, sr, name, p["bitrate_kbps"])

    if not standard:
        _bitrate_family(name, what, _GRID_IMITATES[name], spec, 64.0, low, high)(work)
        return
    pool = [b for b in standard if low <= b <= high]
    family(
        name, "codec", what, _GRID_IMITATES[name],
        {"bitrate_kbps": Param(128.0, choices=standard, doc=f"a standard bitrate in {low}-{high}, equal chance")},
        lambda rng: {"bitrate_kbps": float(rng.choice(pool))}, kbps=_bitrate,
    )(work)


for _name in _GRID_SAMPLING:
    _grid_family(_name)


# ---------------------------------------------------------------- perceptual codecs

VORBIS = CodecSpec("vorbis", "ogg", 0, 0)
EAC3 = CodecSpec("eac3", "eac3", 48, 640)
WMAV2 = CodecSpec("wmav2", "asf", 24, 320)
_AC3_RATES = (32000, 44100, 48000)


@family(
    "vorbis", "codec", "FFmpeg's native Vorbis encoder at a fixed quality (VBR)",
    "Ogg Vorbis files and game audio",
    {"quality": Param(3.0, 0.3, 10.0, doc="FFmpeg qscale; sampled 0.3-6, log-uniform (lower is worse)")},
    lambda rng: {"quality": round(log_uniform(rng, 0.3, 6.0), 2)},
)
def _vorbis(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    # the native encoder is "experimental" and stereo only; its quality is set through qscale
    options = {"strict": "experimental", "flags": "+qscale", "global_quality": str(round(p["quality"] * 118))}
    return code(x, sr, VORBIS, None, options, stereo_only=True)


@_bitrate_family("eac3", "Dolby Digital Plus (E-AC-3) at a bitrate", "streaming services and broadcast (DD+)",
                 EAC3, 96.0, 48, 192)
def _eac3(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return code(x, sr, EAC3, p["bitrate_kbps"], coding_rate=sr if sr in _AC3_RATES else 48000)


@_bitrate_family("wmav2", "Windows Media Audio 2 at a bitrate", "WMA files and old Windows streams",
                 WMAV2, 64.0, 24, 128)
def _wmav2(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return code(x, sr, WMAV2, p["bitrate_kbps"], preroll=4096)  # its decoder drops the first 2048 samples


# ---------------------------------------------------------------- Bluetooth

SBC = CodecSpec("sbc", "sbc", 32, 512)
SBC_RATES = (16000, 32000, 44100, 48000)
APTX = {"aptx": CodecSpec("aptx", "aptx", 0, 0), "aptx_hd": CodecSpec("aptx_hd", "aptx_hd", 0, 0)}


@family(
    "sbc", "codec", "Bluetooth SBC: A2DP at a bitrate, or mSBC (16 kHz mono, 64 kbps)",
    "Bluetooth headphones (A2DP) and headsets (HFP wide-band speech)",
    {
        "mode": Param("a2dp", choices=("a2dp", "msbc"), doc="a2dp (chance 0.8) or msbc"),
        "bitrate_kbps": Param(229.0, SBC.min_kbps, SBC.max_kbps, doc="A2DP only; sampled 96-345 (stereo), log-uniform"),
    },
    lambda rng: {"mode": "msbc", "bitrate_kbps": 64.0} if rng.random() < 0.2 else
                {"mode": "a2dp", "bitrate_kbps": float(_kbps_range(rng, 96, 345))},
    kbps=lambda p: 64.0 if p["mode"] == "msbc" else p["bitrate_kbps"],
)
def _sbc(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    if p["mode"] == "msbc":
        return code(x, sr, SBC, None, {"msbc": "1"}, coding_rate=16000, mono_only=True)
    rate = sr if sr in SBC_RATES else 48000
    return code(x, sr, SBC, p["bitrate_kbps"], coding_rate=rate)


@family(
    "aptx", "codec", "Bluetooth aptX or aptX HD (fixed 4:1 ADPCM in sub-bands)",
    "Bluetooth headphones with aptX",
    {"variant": Param("aptx", choices=tuple(APTX), doc="aptx (chance 0.7) or aptx_hd")},
    lambda rng: {"variant": "aptx" if rng.random() < 0.7 else "aptx_hd"},
    kbps=lambda p: 384.0 if p["variant"] == "aptx" else 576.0,  # at 48 kHz stereo
)
def _aptx(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return code(x, sr, APTX[p["variant"]], None, coding_rate=sr if sr in SBC_RATES else 48000, stereo_only=True)


# ---------------------------------------------------------------- telephony

G722 = CodecSpec("g722", "g722", 64, 64)
G726 = CodecSpec("g726", "wav", 16, 40)
AMRNB = CodecSpec("libopencore_amrnb", "amr", 4.75, 12.2)
AMRNB_MODES = (4.75, 5.15, 5.9, 6.7, 7.4, 7.95, 10.2, 12.2)  # kbps
ADPCM = {"ms": CodecSpec("adpcm_ms", "wav", 0, 0), "ima_wav": CodecSpec("adpcm_ima_wav", "wav", 0, 0)}
ADPCM_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000)


@family(
    "g722", "codec", "ITU-T G.722 sub-band ADPCM, 16 kHz mono, 64 kbps",
    "wide-band (HD voice) VoIP and DECT phones",
    {}, lambda rng: {}, kbps=lambda p: 64.0,
)
def _g722(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return code(x, sr, G722, None, coding_rate=16000, mono_only=True)


@family(
    "g726", "codec", "ITU-T G.726 ADPCM, 8 kHz mono, 2-5 bits per sample (16-40 kbps)",
    "narrow-band telephony, DECT and voice mail",
    {"bits": Param(4, 2, 5, doc="bits per sample, uniform 2-5 (kbps = 8 x bits)")},
    lambda rng: {"bits": int(rng.integers(2, 6))},
    kbps=lambda p: 8.0 * p["bits"],
)
def _g726(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return code(x, sr, G726, 8.0 * p["bits"], coding_rate=8000, mono_only=True)


@family(
    "amrnb", "codec", "AMR-NB (opencore), 8 kHz mono, one of its eight modes",
    "GSM/UMTS mobile calls",
    {"bitrate_kbps": Param(12.2, choices=AMRNB_MODES, doc="a mode, uniform over the eight")},
    lambda rng: {"bitrate_kbps": float(rng.choice(AMRNB_MODES))},
    kbps=_bitrate,
)
def _amrnb(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return code(x, sr, AMRNB, p["bitrate_kbps"], coding_rate=8000, mono_only=True)


@family(
    "adpcm", "codec", "4-bit IMA or Microsoft ADPCM at a coding rate",
    "game and embedded audio, WAV voice recorders",
    {
        "variant": Param("ima_wav", choices=tuple(ADPCM), doc="ms or ima_wav, equal chance"),
        "coding_rate": Param(22050, choices=ADPCM_RATES, doc="Hz; uniform over 8000-48000"),
    },
    lambda rng: {"variant": str(rng.choice(tuple(ADPCM))), "coding_rate": int(rng.choice(ADPCM_RATES))},
)
def _adpcm(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return code(x, sr, ADPCM[p["variant"]], None, coding_rate=p["coding_rate"])


# ---------------------------------------------------------------- Opus for speech

OPUS = CodecSpec("libopus", "ogg", 6, 510)
OPUS_BANDWIDTH_HZ = {"narrowband": 4000, "mediumband": 6000, "wideband": 8000, "superwideband": 12000}


@family(
    "opus_voip", "codec", "Opus, application voip (SILK), capped audio bandwidth, 6-12 kbps",
    "WebRTC/VoIP calls on poor links",
    {
        "bitrate_kbps": Param(8.0, 6, 24, doc="sampled 6-12, log-uniform"),
        "bandwidth": Param("wideband", choices=tuple(OPUS_BANDWIDTH_HZ), doc="narrow/medium/wide band (equal chance)"),
    },
    lambda rng: {"bitrate_kbps": round(log_uniform(rng, 6, 12), 1),
                 "bandwidth": str(rng.choice(("narrowband", "mediumband", "wideband")))},
    kbps=_bitrate,
)
def _opus_voip(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    options = {"application": "voip", "cutoff": str(OPUS_BANDWIDTH_HZ[p["bandwidth"]])}
    return code(x, sr, OPUS, p["bitrate_kbps"], options, coding_rate=codec_sample_rate("opus", 0, sr))


# ---------------------------------------------------------------- tandem coding

TANDEM_CODECS = ("opus", "mp3", "aac", "vorbis", "eac3", "wmav2", "sbc", "aptx", "g722", "g726", "amrnb", "adpcm", "opus_voip")


@family(
    "tandem", "codec", "two codecs in series (decode, re-encode)",
    "transcoding chains: a call bridged between networks, a stream re-encoded for Bluetooth",
    {
        "first": Param("amrnb", choices=TANDEM_CODECS, doc="two different codecs, equal chance"),
        "first_params": Param({}, doc="the first codec's parameters (sampled as that family)"),
        "second": Param("opus", choices=TANDEM_CODECS),
        "second_params": Param({}, doc="the second codec's parameters"),
    },
    lambda rng: sample_pair(TANDEM_CODECS, rng),
)
def _tandem(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    return apply_in_series(x, sr, p, rng, "tandem")


# ---------------------------------------------------------------- Opus packet loss, concealed by libopus

# FFmpeg's Opus decoders (native and libopus) cannot be told that a packet is missing: a gap is
# simply not decoded. So the packets PyAV's libopus encoder writes are decoded here with the
# libopus library PyAV bundles, called directly (ctypes), which runs libopus' own packet loss
# concealment (decode with no data) or its in-band FEC (decode the next packet's redundancy).
OPUS_FRAME_MS = (10, 20, 40)


@functools.lru_cache(maxsize=1)
def _libopus() -> Any:
    import ctypes
    import ctypes.util
    from pathlib import Path

    import av

    here = Path(av.__file__).resolve().parent
    found = sorted(p for d in (here.parent / "av.libs", here / ".dylibs", here.parent / "av.libs.d")
                   if d.is_dir() for p in d.glob("*opus*"))
    name = str(found[0]) if found else ctypes.util.find_library("opus")
    if not name:
        raise CodecError("opus_loss: libopus was found neither beside PyAV's FFmpeg nor on the system")
    lib = ctypes.CDLL(name)
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.opus_decode_float.restype = ctypes.c_int
    lib.opus_decode_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                      ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_int]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    return lib


def _opus_packets(x: np.ndarray, rate: int, kbps: float, opts: Options) -> tuple[list[bytes], int]:
    """PyAV's libopus encoder: the packets, and the samples each one holds."""
    import av

    layout = "mono" if x.shape[0] == 1 else "stereo"
    try:
        enc = av.CodecContext.create("libopus", "w")
        enc.sample_rate, enc.layout, enc.format, enc.bit_rate = rate, layout, "flt", int(kbps * 1000)
        enc.options = dict(opts)
        enc.open()
        to_encoder = av.AudioResampler(format="flt", layout=layout, rate=rate, frame_size=enc.frame_size)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        packets = [p for chunk in (*to_encoder.resample(frame), *to_encoder.resample(None)) for p in enc.encode(chunk)]
        packets += enc.encode(None)
    except av.error.FFmpegError as exc:
        raise CodecError(f"opus_loss: libopus at {kbps:g} kbps, {rate} Hz, {layout}: {exc}") from None
    return [bytes(p) for p in packets], enc.frame_size


def _opus_decode(packets: list[bytes], lost: np.ndarray, frame: int, rate: int, channels: int, fec: bool) -> np.ndarray:
    """libopus decoding; a lost packet is concealed (or recovered from the next one's FEC)."""
    import ctypes

    lib = _libopus()
    err = ctypes.c_int(0)
    dec = lib.opus_decoder_create(rate, channels, ctypes.byref(err))
    if err.value != 0 or not dec:
        raise CodecError(f"opus_loss: opus_decoder_create failed with libopus error {err.value}")
    pcm = (ctypes.c_float * (frame * channels))()
    out = []
    try:
        for i, data in enumerate(packets):
            if not lost[i]:
                n = lib.opus_decode_float(dec, data, len(data), pcm, frame, 0)
            elif fec and i + 1 < len(packets) and not lost[i + 1]:
                n = lib.opus_decode_float(dec, packets[i + 1], len(packets[i + 1]), pcm, frame, 1)
            else:
                n = lib.opus_decode_float(dec, None, 0, pcm, frame, 0)
            if n < 0:
                raise CodecError(f"opus_loss: libopus could not decode packet {i} (error {n})")
            out.append(np.ctypeslib.as_array(pcm)[: n * channels].reshape(n, channels).T.copy())
    finally:
        lib.opus_decoder_destroy(dec)
    return np.concatenate(out, axis=1)


def _opus_round_trip(x: np.ndarray, rate: int, kbps: float, opts: Options, lost: np.ndarray | None) -> np.ndarray:
    packets, frame = _opus_packets(x, rate, kbps, opts)
    mask = np.zeros(len(packets), dtype=bool) if lost is None else np.resize(lost, len(packets))
    fec = dict(opts).get("fec") == "1"
    return _opus_decode(packets, mask, frame, rate, x.shape[0], fec)


@functools.lru_cache(maxsize=None)
def _opus_delay(rate: int, kbps: float, opts: Options, channels: int) -> int:
    return calibrated_delay(lambda probe: _opus_round_trip(probe, rate, kbps, opts, None), rate, channels)


def gilbert_losses(rng: np.random.Generator, n: int, rate: float, burst: float) -> np.ndarray:
    """n packets lost (True) or not by a two-state Gilbert model: `rate` of them lost on
    average, in runs of `burst` packets on average; at least one lost."""
    leave = 1.0 / burst  # lost -> received
    enter = min(1.0, rate * leave / max(1e-9, 1 - rate))  # received -> lost, for a stationary loss rate
    lost = np.zeros(n, dtype=bool)
    state = rng.random() < rate
    for i, u in enumerate(rng.random(n)):
        lost[i] = state
        state = (u >= leave) if state else (u < enter)
    if not lost.any():
        lost[rng.integers(0, n)] = True
    return lost


@family(
    "opus_loss", "codec", "Opus with lost packets, concealed by libopus' own PLC (optionally its in-band FEC)",
    "VoIP and WebRTC calls over lossy networks",
    {
        "bitrate_kbps": Param(24.0, 6, 256, doc="sampled 12-64, log-uniform"),
        "loss_rate": Param(0.1, 0.005, 0.6, doc="fraction of packets lost; sampled 0.02-0.3, log-uniform"),
        "burst_packets": Param(1.5, 1.0, 10.0, doc="mean run of lost packets; sampled 1-3"),
        "application": Param("voip", choices=("voip", "audio"), doc="equal chance"),
        "fec": Param(0, choices=(0, 1), doc="in-band forward error correction; chance 0.3"),
        "frame_ms": Param(20, choices=OPUS_FRAME_MS, doc="packet length; 10, 20 (chance 0.6) or 40"),
    },
    lambda rng: {
        "bitrate_kbps": float(_kbps_range(rng, 12, 64)), "loss_rate": round(log_uniform(rng, 0.02, 0.3), 3),
        "burst_packets": round(float(rng.uniform(1, 3)), 2), "application": str(rng.choice(("voip", "audio"))),
        "fec": int(rng.random() < 0.3), "frame_ms": int(rng.choice(OPUS_FRAME_MS, p=(0.2, 0.6, 0.2))),
    },
    kbps=_bitrate,
)
def _opus_loss(x: np.ndarray, sr: int, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    rate = codec_sample_rate("opus", 0, sr)
    opts = {"application": p["application"], "frame_duration": str(p["frame_ms"])}
    if p["fec"]:
        opts.update(fec="1", packet_loss=str(max(1, round(100 * p["loss_rate"]))))
    options: Options = tuple(sorted(opts.items()))
    z = np.pad(resample(x, sr, rate), ((0, 0), (0, rate // 10)))
    delay = _opus_delay(rate, p["bitrate_kbps"], options, x.shape[0])
    frame = rate * p["frame_ms"] // 1000
    n_packets = -(-(z.shape[1] + delay) // frame) + 1
    lost = gilbert_losses(rng, n_packets, p["loss_rate"], p["burst_packets"])
    y = _opus_round_trip(z, rate, p["bitrate_kbps"], options, lost)[:, delay:]
    return fit_length(resample(fit_length(y, z.shape[1])[:, : z.shape[1] - rate // 10], rate, sr), x.shape[1])
