"""Audio I/O: every format reads the same way, every bad input is a clear AudioError."""

from __future__ import annotations

import os
import warnings

import av
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deepaq.audio import align_pair, load_audio, read_audio, resample, to_mono, validate_audio, write_audio
from deepaq.errors import AlignmentError, AudioError

SR = 48000


def _tone(seconds: float = 1.0, channels: int = 2, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.tile(x.astype(np.float32), (channels, 1))


def _encode_with_pyav(path, x: np.ndarray, sr: int, encoder: str, container: str | None = None) -> None:
    layout = "stereo" if x.shape[0] == 2 else "mono"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(encoder, rate=sr, layout=layout)
        ctx = stream.codec_context
        rs = av.AudioResampler(format=ctx.format.name, layout=layout, rate=sr, frame_size=ctx.frame_size or None)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = sr, 0
        for chunk in (*rs.resample(frame), *rs.resample(None)):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))


@pytest.mark.parametrize(
    "name, writer",
    [
        ("a.wav", "sf"),
        ("a.flac", "sf"),
        ("a.ogg", "sf"),
        ("a.mp3", ("libmp3lame", "mp3")),
        ("a.m4a", ("aac", "mp4")),
        ("a.aac", ("aac", "adts")),
        ("a.opus", ("libopus", "ogg")),
        ("a.ac3", ("ac3", "ac3")),
    ],
)
def test_reads_every_common_format(tmp_path, name, writer):
    x = _tone()
    path = tmp_path / "dir with space é" / name
    path.parent.mkdir()
    if writer == "sf":
        sf.write(path, x.T, SR)
    else:
        _encode_with_pyav(path, x, SR, *writer)
    y, sr = read_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.shape[0] == 2
    assert abs(y.shape[1] - x.shape[1]) < 0.1 * SR  # codecs may pad a few frames
    assert 0.1 < np.abs(y).max() < 1.0


def test_write_then_read_round_trip(tmp_path):
    x = _tone(0.5)
    for subtype, tol in (("PCM_16", 1e-4), ("PCM_24", 1e-6)):
        path = write_audio(tmp_path / "ü" / f"{subtype}.flac", x, SR, subtype=subtype)
        y, sr = read_audio(path)
        assert sr == SR and np.max(np.abs(y - x)) < tol
    assert not list(tmp_path.rglob(".*tmp*"))  # no temporary files left behind


def test_load_audio_downmixes_resamples_and_warns_on_upsampling(tmp_path):
    x = _tone(1.0, sr=16000)
    path = tmp_path / "low.wav"
    sf.write(path, x.T, 16000)
    with pytest.warns(UserWarning, match="upsampling from 16000 Hz to 24000 Hz"):
        y, sr = load_audio(path, sample_rate=24000)
    assert sr == 24000 and y.shape == (1, 24000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when nothing is upsampled
        stereo, _ = load_audio((_tone(), SR), mono=False, sample_rate=SR)
    assert stereo.shape == (2, SR)


# --- every error case names the file and the problem -------------------------------


def _wav(tmp_path, x, sr=SR, name="bad.wav", subtype=None):
    path = tmp_path / name
    sf.write(path, np.asarray(x).T, sr, subtype=subtype)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        read_audio(tmp_path / "nope.wav")


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        read_audio(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_unreadable_file(tmp_path):
    path = _wav(tmp_path, _tone())
    path.chmod(0)
    with pytest.raises(AudioError, match="permission denied"):
        read_audio(path)


def test_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 100)
    with pytest.raises(AudioError, match=r"notes\.wav: not an audio file"):
        read_audio(path)


def test_empty_file(tmp_path):
    (tmp_path / "cut.flac").write_bytes(b"")
    with pytest.raises(AudioError, match=r"cut\.flac: is an empty file \(0 bytes\)"):
        read_audio(tmp_path / "cut.flac")


def test_zero_length(tmp_path):
    with pytest.raises(AudioError, match=r"bad\.wav: contains no audio samples"):
        read_audio(_wav(tmp_path, np.zeros((2, 0), np.float32)))


def test_shorter_than_minimum(tmp_path):
    path = _wav(tmp_path, _tone(0.05))
    with pytest.raises(AudioError, match=r"bad\.wav: is 0\.050 s long; at least 0\.5 s"):
        load_audio(path, min_seconds=0.5)


def test_silent(tmp_path):
    with pytest.raises(AudioError, match=r"bad\.wav: is silent"):
        read_audio(_wav(tmp_path, np.zeros((1, SR), np.float32)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(tmp_path, bad):
    x = _tone(0.2)
    x[0, 100] = bad
    with pytest.raises(AudioError, match=r"bad\.wav: contains NaN or infinite samples"):
        read_audio(_wav(tmp_path, x, subtype="FLOAT"))
    with pytest.raises(AudioError, match=r"<array>: contains NaN"):
        load_audio((x, SR))


def test_absurd_peak_is_refused_before_resampling_overflows():
    # 2.2e38 resampled 8 -> 48 kHz in float32 used to come back as NaN
    x = np.array([2.2146258e38], np.float32)
    with pytest.raises(AudioError, match=r"<array>: peak sample 2.21e\+38 is beyond"):
        load_audio((x, 8000), sample_rate=48000, mono=False)
    y, _ = load_audio((np.full((1, 800), 3000.0, np.float32), 8000), sample_rate=8000)
    assert np.isfinite(y).all()


def test_sample_rate_below_8k(tmp_path):
    with pytest.raises(AudioError, match=r"bad\.wav: sample rate 4000 Hz is below the minimum 8000 Hz"):
        read_audio(_wav(tmp_path, _tone(sr=4000), sr=4000))


def test_unrelated_signals_cannot_be_aligned():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((1, 2 * SR)).astype(np.float32)
    deg = rng.standard_normal((1, 2 * SR)).astype(np.float32)
    with pytest.raises(AlignmentError, match=r"b\.wav: cannot be aligned with a\.wav within \+-1 s"):
        align_pair(ref, deg, SR, names=("a.wav", "b.wav"))


def _shift(x: np.ndarray, delay: int) -> np.ndarray:
    """Delay (positive) or advance (negative) by zero-padding, same length."""
    pad = np.zeros((x.shape[0], abs(delay)), x.dtype)
    return np.concatenate([pad, x[:, : x.shape[1] - delay]], 1) if delay >= 0 else np.concatenate([x[:, -delay:], pad], 1)


def test_alignment_reports_and_compensates_the_delay():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((2, SR)).astype(np.float32)
    for delay in (0, 123, -4567):
        deg = _shift(ref, delay) * 0.5
        pair = align_pair(ref, deg, SR)
        assert pair.delay_samples == delay
        assert pair.reference.shape == pair.degraded.shape == (2, SR - abs(delay))
        np.testing.assert_allclose(pair.degraded, 0.5 * pair.reference, atol=1e-6)


def test_delay_outside_search_range_is_an_error():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((1, 3 * SR)).astype(np.float32)
    deg = np.concatenate([np.zeros((1, int(1.5 * SR)), np.float32), ref], axis=1)
    with pytest.raises(AlignmentError, match="within"):
        align_pair(ref, deg, SR, max_delay_s=1.0)
    assert align_pair(ref, deg, SR, max_delay_s=2.0).delay_samples == int(1.5 * SR)


# --- property-based: odd shapes, rates, lengths and values --------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int16, np.int32]),
        shape=st.one_of(
            st.tuples(st.integers(0, 3000)),
            st.tuples(st.integers(0, 4), st.integers(0, 3000)),
            st.tuples(st.integers(0, 3000), st.integers(1, 3)),
            st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5)),
        ),
    ),
    sr=st.one_of(st.integers(-10, 200000), st.floats(allow_nan=True), st.sampled_from([8000, 44100, 48000])),
    target=st.sampled_from([None, 16000, 24000, 48000]),
    mono=st.booleans(),
)
def test_any_array_gives_valid_audio_or_a_clear_error(x, sr, target, mono):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, out_sr = load_audio((x, sr), sample_rate=target, mono=mono)
    except AudioError as exc:
        assert str(exc).startswith("<array>: ") and len(str(exc)) > 12
        return
    assert y.dtype == np.float32 and y.ndim == 2 and np.isfinite(y).all()
    assert out_sr == (target or int(sr))
    assert y.shape[0] == 1 if mono else y.shape[0] >= 1


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1000, 20000),
    delay=st.integers(-150, 150),
    gain=st.floats(0.05, 3.0),
    seed=st.integers(0, 2**16),
)
def test_alignment_finds_any_delay_and_gain(n, delay, gain, seed):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((1, n)).astype(np.float32)
    deg = gain * _shift(ref, delay)
    pair = align_pair(ref, deg, 8000, max_delay_s=0.025)
    assert pair.delay_samples == delay
    assert pair.reference.shape == pair.degraded.shape


def test_to_mono_and_resample_shapes():
    x = _tone(0.5)
    assert to_mono(x).shape == (1, x.shape[1])
    assert resample(x, SR, 16000).shape == (2, 8000)
    assert validate_audio(np.ones(100, np.int16) * 1000, SR).shape == (1, 100)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_U8", "PCM_24", "FLOAT"])
def test_integer_pcm_reads_as_libsndfile_floats(tmp_path, subtype):
    # 16-bit PCM is converted by deepaq, not libsndfile: the values must be the same
    rng = np.random.default_rng(4)
    x = np.clip(rng.standard_normal((SR, 2)) * 0.3, -1, 1)
    x[:3, 0] = [-1.0, 0.0, 0.999]
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    y, sr = read_audio(path)
    expected = sf.read(path, dtype="float32", always_2d=True)[0].T
    assert sr == SR and y.dtype == np.float32 and y.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(y, expected)


def test_integer_arrays_scale_to_full_scale_in_any_layout():
    for dtype in (np.int16, np.uint8, np.int32):
        info = np.iinfo(dtype)
        x = np.asfortranarray(np.array([[info.min, info.max], [info.min, info.max]], dtype).T)  # [2, 2], strided
        y = validate_audio(x, SR)
        assert y.flags["C_CONTIGUOUS"] and y.dtype == np.float32
        assert y[0, 0] == -1.0 and 0.99 < y[1, 0] <= 1.0  # int32 full scale rounds to 1.0 in float32


# ---- following a delay that jumps within a pair -------------------------------------------

def _chunks(x: np.ndarray, size: int):
    return (x[:, i:i + size] for i in range(0, x.shape[1], size))


def _speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts of varying length and level: no two stretches alike, as in speech."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    envelope = np.repeat(rng.uniform(0.05, 1.0, n // 2400 + 1), 2400)[:n]
    return (0.3 * envelope * rng.standard_normal(n)).astype(np.float32)[np.newaxis]


def test_follow_delay_follows_an_inserted_gap_and_a_cut():
    from deepaq.audio import follow_delay

    ref = _speech_like(6.0)
    gap, cut = int(0.04 * SR), int(0.03 * SR)
    a, b = int(1.73 * SR), int(4.11 * SR)  # inside blocks, not on their edges
    deg = np.concatenate([ref[:, :a], np.zeros((1, gap), np.float32), ref[:, a:b], ref[:, b + cut:]], axis=1)
    jumps: list[int] = []
    out = np.concatenate(list(follow_delay(_chunks(ref, 48000), _chunks(deg, 7000), SR, jumps)), axis=1)
    assert jumps == [gap, -cut]
    r, d = out[:1], out[1:]
    after = slice(int(5.0 * SR), d.shape[1])  # past both jumps: sample-aligned again
    np.testing.assert_array_equal(d[:, after], r[:, after])
    again: list[int] = []  # any chunking gives the same
    same = np.concatenate(list(follow_delay(_chunks(ref, 1000), _chunks(deg, 333333), SR, again)), axis=1)
    np.testing.assert_array_equal(same, out)
    assert again == jumps


def test_follow_delay_leaves_a_constant_delay_and_phase_drift_alone():
    """Coding noise on a steady delay, and a held tone whose phase drifts by up to 3 ms (as a
    re-synthesis does): no jump, the output is the input side by side."""
    from deepaq.audio import follow_delay

    t = np.arange(int(4.0 * SR)) / SR
    ref = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[np.newaxis]
    drift = 0.003 * np.sin(2 * np.pi * 0.3 * t)
    resynth = (0.5 * np.sin(2 * np.pi * 220 * (t + drift))).astype(np.float32)[np.newaxis]
    noisy = _speech_like(4.0) + 0.05 * np.random.default_rng(1).standard_normal((1, int(4.0 * SR))).astype(np.float32)
    for r, d in ((ref, resynth), (_speech_like(4.0), noisy)):
        jumps: list[int] = []
        out = np.concatenate(list(follow_delay(iter([r]), iter([d]), SR, jumps)), axis=1)
        assert jumps == []
        np.testing.assert_array_equal(out, np.concatenate([r, d], axis=0))
