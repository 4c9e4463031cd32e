"""deepaq.degradations: every family on real short clips, with real codecs; and build-data with them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfilt

from deepaq import degradations as dg
from deepaq.audio import estimate_delay
from deepaq.errors import CodecError, ConfigError

SR = 48_000
# families that need optional packages (the [train] extra); skipped where those are missing
OPTIONAL = {"world": "pyworld"}


def _music(seconds: float, channels: int, seed: int = 0) -> np.ndarray:
    """Decaying harmonic notes over a little noise: tonal and broadband, like the corpus."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros((channels, n))
    for onset in range(0, n, SR // 4):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        env = np.where(t >= onset / SR, np.exp(-5 * (t - onset / SR)), 0)
        for h in range(1, 10):
            x += rng.uniform(0.3, 1, size=(channels, 1)) * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h
    x += 0.01 * rng.standard_normal((channels, n))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _broadband(seconds: float, channels: int, seed: int = 1) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, int(seconds * SR)))).astype(np.float32)


def _families() -> list[str]:
    names = []
    for name in dg.FAMILIES:
        module = OPTIONAL.get(name)
        names.append(pytest.param(name, marks=pytest.mark.skipif(
            module is not None and not _importable(module), reason=f"{module} not installed")))
    return names


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def clips() -> dict[int, np.ndarray]:
    return {2: _music(1.0, 2), 1: _music(1.0, 1, seed=3)}


@pytest.mark.parametrize("name", _families())
def test_family_keeps_shape_is_finite_deterministic_and_changes_the_signal(name, clips):
    params = dg.sample_condition(name, np.random.default_rng(7))
    json.dumps(params)  # sampled settings go into the manifest as JSON
    for channels, x in clips.items():
        y = dg.apply(name, x, SR, params, rng_seed=11)
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all(), (name, channels)
        assert np.array_equal(y, dg.apply(name, x, SR, params, rng_seed=11)), f"{name} is not deterministic"
        assert np.abs(y - x).max() > 1e-3, f"{name} left the signal unchanged"


CODEC_FAMILIES = [n for n, f in dg.FAMILIES.items() if f.group == "codec"]
PHASE_DISPERSIVE = {"opus", "aac", "opus_voip", "opus_loss", "amrnb", "tandem"}
DISPERSIVE_MAX_LAG = 5  # samples at 48 kHz, about 0.1 ms


@pytest.mark.parametrize("name", CODEC_FAMILIES)
def test_codec_families_are_sample_aligned(name):
    """Lag 0 on a broadband signal; codecs whose phase response is not linear (as in
    test_codecs: Opus, FFmpeg's AAC; also AMR-NB's CELP, and chains holding them) within 5 samples."""
    x = _broadband(1.0, 2)
    rng = np.random.default_rng(0)
    for _ in range(2):
        params = dg.sample_condition(name, rng)
        lag, corr = estimate_delay(x, dg.apply(name, x, SR, params, 0), max_delay=SR // 10)
        limit = DISPERSIVE_MAX_LAG if name in PHASE_DISPERSIVE else 0
        assert abs(lag) <= limit, f"{name} {params}: lag {lag} (correlation {corr:.2f})"


def test_noise_families_hit_the_requested_snr(clips):
    x = clips[2]
    for name in ("noise_white", "noise_pink", "noise_babble", "noise_shaped"):
        for snr in (0.0, 12.5, 35.0):
            noise = dg.apply(name, x, SR, {"snr_db": snr}, 3) - x
            measured = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(noise.astype(np.float64) ** 2))
            assert abs(measured - snr) < 0.5, (name, snr, measured)


def test_shaped_noise_follows_the_signal_spectrum():
    """Noise only where the signal has energy: none above a low-passed signal's band, none in its silences."""
    rng = np.random.default_rng(4)
    x = sosfilt(butter(8, 3000, fs=SR, output="sos"), rng.standard_normal(SR))[None, :].astype(np.float32)
    x[:, SR // 2 : SR // 2 + 4800] = 0  # 100 ms of silence
    noise = dg.apply("noise_shaped", x, SR, {"snr_db": 10}, 0) - x
    spectrum = np.abs(np.fft.rfft(noise[0])) ** 2
    f = np.fft.rfftfreq(SR, 1 / SR)
    assert spectrum[f > 6000].sum() < 1e-4 * spectrum[f < 3000].sum()
    silence = noise[0, SR // 2 + 1200 : SR // 2 + 3600]  # away from the edges of the 1024-sample frames
    assert np.sqrt(np.mean(silence**2)) < 1e-3 * np.sqrt(np.mean(noise**2))


def test_chain_applies_the_second_family_to_the_first_ones_output(clips):
    x = clips[2]
    params = {"first": "bandlimit", "first_params": {"kind": "lowpass", "high_hz": 4000.0},
              "second": "noise_shaped", "second_params": {"snr_db": 10.0}}
    y = dg.apply("chain", x, SR, params, 5)
    low = dg.apply("bandlimit", x, SR, params["first_params"], 0)
    f = np.fft.rfftfreq(x.shape[1], 1 / SR)
    hf = lambda z: float(np.sum(np.abs(np.fft.rfft(z[0]))[f > 8000] ** 2))  # noqa: E731
    assert hf(y) < 0.05 * hf(x)  # the noise follows the low-passed signal: little above its band
    snr = 10 * np.log10(np.sum(low.astype(np.float64) ** 2) / np.sum((y - low).astype(np.float64) ** 2))
    assert abs(snr - 10.0) < 0.5
    with pytest.raises(ConfigError, match="chain: parameter second cannot be chain"):
        dg.apply("chain", x, SR, {**params, "second": "chain"}, 0)
    with pytest.raises(ConfigError, match="unknown degradation family 'nope'"):
        dg.apply("chain", x, SR, {**params, "first": "nope"}, 0)
    sampled = [dg.sample_condition("chain", np.random.default_rng(i)) for i in range(40)]
    assert all(p["first"] != p["second"] and {p["first"], p["second"]}.isdisjoint({"chain", *dg.HELD_OUT_FAMILIES})
               for p in sampled)


def test_babble_from_given_talkers(clips, tmp_path):
    x = clips[1]
    talker = _music(0.7, 1, seed=9)
    sf.write(tmp_path / "talker.wav", talker[0], SR)
    y = dg.apply("noise_babble", x, SR, {"snr_db": 5, "talkers": 3, "babble_sources": [str(tmp_path / "talker.wav"), talker]}, 0)
    assert y.shape == x.shape and np.abs(y - x).max() > 0.01
    with pytest.raises(ConfigError, match="noise_babble: parameter babble_sources"):
        dg.apply("noise_babble", x, SR, {"babble_sources": "talker.wav"}, 0)


def test_competing_talker_adds_one_given_voice_at_the_snr(clips):
    x = clips[1]
    talker = np.sin(2 * np.pi * 500 * np.arange(int(0.7 * SR)) / SR)[None]  # 350 whole cycles: loops seamlessly
    y = dg.apply("competing_talker", x, SR, {"snr_db": 12.0, "babble_sources": [talker]}, 0)
    added = (y - x).astype(np.float64)
    assert 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(added ** 2)) == pytest.approx(12.0, abs=0.01)
    power = np.abs(np.fft.rfft(added[0])) ** 2  # the given voice, not a stand-in: all of it at 500 Hz
    peak = int(round(500 * added.shape[1] / SR))
    assert power[peak - 2: peak + 3].sum() > 0.99 * power.sum()
    stand_in = dg.apply("competing_talker", x, SR, {"snr_db": 12.0}, 0)
    assert stand_in.shape == x.shape and not np.allclose(stand_in, y)
    with pytest.raises(ConfigError, match="competing_talker: parameter babble_sources"):
        dg.apply("competing_talker", x, SR, {"babble_sources": []}, 0)


def test_severity_orders_as_expected(clips):
    x = clips[2]
    clipped = [np.mean(np.abs(dg.apply("clipping", x, SR, {"mode": "hard", "clip_db": d}, 0)) >= np.abs(x).max() * 10 ** (-d / 20) - 1e-7)
               for d in (1, 3, 6, 12)]
    assert clipped == sorted(clipped) and clipped[0] < clipped[-1]
    # a lower low-pass cutoff leaves less of the signal
    errors = [np.mean((dg.apply("bandlimit", x, SR, {"kind": "lowpass", "high_hz": hz}, 0) - x) ** 2) for hz in (12000, 6000, 3000)]
    assert errors == sorted(errors)
    # fewer G.726 bits, more error
    errors = [np.mean((dg.apply("g726", x, SR, {"bits": b}, 0) - x) ** 2) for b in (5, 4, 3, 2)]
    assert errors == sorted(errors)


def _error(name: str, x: np.ndarray, params: dict, seed: int = 0) -> float:
    return float(np.mean((dg.apply(name, x, SR, params, seed) - x) ** 2))


def test_more_loss_leakage_and_reverb_do_more_damage(clips):
    x = clips[2]
    base = {"bitrate_kbps": 32, "application": "audio"}
    losses = [np.mean([_error("opus_loss", x, {**base, "loss_rate": r}, seed) for seed in range(3)]) for r in (0.005, 0.1, 0.4)]
    assert losses == sorted(losses), losses
    clean_mask = {"mask_error_db": 0, "holes": 0, "smoothing_bins": 0, "mix_snr_db": 0}
    leaks = [_error("separation", x, {**clean_mask, "leakage_db": d}) for d in (-60, -20, -6)]
    assert leaks == sorted(leaks), leaks
    tails = [_error("reverb", x, {"rt60_s": 0.8, "drr_db": d}) for d in (20, 6, -6)]
    assert tails == sorted(tails), tails


def test_opus_loss_conceals_instead_of_leaving_gaps(clips):
    """libopus' PLC fills a lost packet: the output has no 20 ms stretch of silence."""
    x = clips[1]
    y = dg.apply("opus_loss", x, SR, {"loss_rate": 0.3, "burst_packets": 1, "frame_ms": 20}, 0)
    frames = y[0, : SR // 50 * 50].reshape(50, -1)
    assert np.sqrt(np.mean(frames[1:-1] ** 2, axis=1)).min() > 1e-3


def test_separation_with_a_given_interferer(clips, tmp_path):
    """With the mask at 1 everywhere (leakage 0 dB) the output is the mixture: the signal plus
    the given interferer (a 1 kHz tone, from a file or an array) at mix_snr_db."""
    x = clips[1]
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(SR // 2) / SR)).astype(np.float32)
    sf.write(tmp_path / "tone.wav", tone, SR)
    for interferer in (tone, str(tmp_path / "tone.wav")):
        y = dg.apply("separation", x, SR, {"interferer": interferer, "leakage_db": 0, "mask_error_db": 0, "holes": 0,
                                           "smoothing_bins": 0, "mix_snr_db": 6}, 0)
        rest = (y - x)[0, 2000:-2000]
        assert abs(20 * np.log10(np.sqrt(np.mean(x**2)) / np.sqrt(np.mean(rest**2))) - 6) < 0.2
        spectrum = np.abs(np.fft.rfft(rest))
        assert abs(np.argmax(spectrum) * SR / rest.size - 1000) < 5


@pytest.mark.parametrize("name", [pytest.param("world", marks=pytest.mark.skipif(not _importable("pyworld"), reason="pyworld")),
                                  "griffinlim"])
def test_vocoders_keep_level_and_timing(name, clips):
    """Resynthesis rebuilds the phase, so alignment shows in the energy envelope: within 5 ms."""
    x = clips[1]
    y = dg.apply(name, x, SR, dg.sample_condition(name, np.random.default_rng(2)), 0)
    env = lambda z: np.sqrt(np.mean(z[:, : z.shape[1] // 240 * 240].reshape(1, -1, 240) ** 2, axis=-1))  # noqa: E731
    ex, ey = env(x), env(y)
    lag, corr = estimate_delay(ex - ex.mean(), ey - ey.mean(), max_delay=20)
    assert abs(lag) <= 1 and corr > 0.5
    assert 0.5 < np.sqrt(np.mean(y**2) / np.mean(x**2)) < 2


def test_unknown_family_and_bad_parameters_are_named(clips):
    x = clips[1]
    with pytest.raises(ConfigError, match="unknown degradation family 'gsm'"):
        dg.apply("gsm", x, SR, {}, 0)
    with pytest.raises(ConfigError, match="noise_white: unknown parameter snr"):
        dg.apply("noise_white", x, SR, {"snr": 10}, 0)
    with pytest.raises(ConfigError, match="g726: parameter bits=7 must lie between 2 and 5"):
        dg.apply("g726", x, SR, {"bits": 7}, 0)
    with pytest.raises(ConfigError, match="amrnb: parameter bitrate_kbps=13 must be one of"):
        dg.apply("amrnb", x, SR, {"bitrate_kbps": 13}, 0)
    with pytest.raises(ConfigError, match="bandlimit: parameter high_hz=30000"):
        dg.apply("bandlimit", x, SR, {"kind": "lowpass", "high_hz": 30000}, 0)
    with pytest.raises(ConfigError, match="clipping: parameter mode='loud'"):
        dg.apply("clipping", x, SR, {"mode": "loud"}, 0)
    with pytest.raises(ConfigError, match="tandem: parameter first_params"):
        dg.apply("tandem", x, SR, {"first": "g722", "first_params": 3}, 0)


def test_codec_failures_are_codec_errors(clips):
    from deepaq.degradations.codecs import WMAV2, code

    with pytest.raises(CodecError, match="wmav2 at 8 kbps, 48000 Hz, stereo"):
        code(clips[2], SR, WMAV2, 8)  # below what WMA 2 can carry at 48 kHz


def test_held_out_codecs_stay_out_of_training():
    assert set(dg.HELD_OUT_FAMILIES) == {"mp2", "ac3"}
    assert not set(dg.TRAINING_FAMILIES) & set(dg.HELD_OUT_FAMILIES)
    assert set(dg.TRAINING_FAMILIES) | set(dg.HELD_OUT_FAMILIES) == set(dg.FAMILIES)
    assert dg.resolve_families("all") == dg.TRAINING_FAMILIES


def test_plans_are_deterministic_unique_and_spread():
    plan = dg.plan_conditions("song-abc123-00001000", 6, dg.TRAINING_FAMILIES, seed=0)
    assert plan == dg.plan_conditions("song-abc123-00001000", 6, dg.TRAINING_FAMILIES, seed=0)
    assert plan != dg.plan_conditions("song-abc123-00002000", 6, dg.TRAINING_FAMILIES, seed=0)
    assert plan != dg.plan_conditions("song-abc123-00001000", 6, dg.TRAINING_FAMILIES, seed=1)
    suffixes = [s for s, _, _ in plan]
    assert len(set(suffixes)) == 6 and all(s.replace("_", "").isalnum() for s in suffixes)
    assert len({f for _, f, _ in plan}) == 6  # no family twice while others are left
    assert dg.plan_conditions("song-abc123-00001000", 8, dg.TRAINING_FAMILIES, seed=0)[:6] == plan
    many = dg.plan_conditions("x", 2 * len(dg.TRAINING_FAMILIES), ["clipping", "echo"], seed=0)
    assert {f for _, f, _ in many} == {"clipping", "echo"} and len({s for s, _, _ in many}) == len(many)


def test_bitrates_where_defined():
    assert dg.get("g726").bitrate_kbps({"bits": 3}) == 24
    assert dg.get("amrnb").bitrate_kbps({"bitrate_kbps": 5.9}) == 5.9
    assert math.isnan(dg.get("clipping").bitrate_kbps({}))


def test_build_data_with_sampled_degradations(tmp_path):
    """The grid left out (--codecs ''), two sampled conditions per clip, then a resume."""
    from deepaq.data.build import BuildConfig, build_dataset
    from deepaq.data.manifest import read_manifest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sf.write(corpus / "a.flac", _music(2.5, 2).T, SR)
    sf.write(corpus / "b.wav", _music(2.5, 1, seed=5).T, SR)
    config = BuildConfig(clip_seconds=1, max_clips_per_source=2, codecs=(), visqol=False, split_ratios=(1, 1, 0),
                         degradations=("g726", "clipping", "noise_pink"), per_clip=2)
    summary = build_dataset([corpus], tmp_path / "ds", config, workers=1)
    frame = read_manifest(tmp_path / "ds")
    assert summary.errors == 0 and len(frame) == summary.clips * 3
    degraded = frame[frame["family"] != "clean"]
    assert set(degraded["family"]) <= {"g726", "clipping", "noise_pink"} and (degraded["codec"] == degraded["family"]).all()
    for _, row in degraded.iterrows():
        params = json.loads(row["params"])
        assert dg.get(row["family"]).resolve(params) == params
        assert (row["bitrate_kbps"] == 8 * params["bits"]) if row["family"] == "g726" else math.isnan(row["bitrate_kbps"])
        x, sr = sf.read(tmp_path / "ds" / row["path"], always_2d=True)
        assert sr == SR and x.shape[0] == SR
    before = (tmp_path / "ds" / "manifest.parquet").read_bytes()
    build_dataset([corpus], tmp_path / "ds", config, workers=1)  # resumes: nothing left to do
    assert (tmp_path / "ds" / "manifest.parquet").read_bytes() == before
    with pytest.raises(ConfigError, match="give both"):
        BuildConfig(degradations=("echo",)).check()
    with pytest.raises(ConfigError, match="unknown degradation family"):
        BuildConfig(degradations=("gsm",), per_clip=1).check()


def test_degrade_command_with_a_family(tmp_path):
    import subprocess
    import sys

    from deepaq.audio import read_audio

    src = tmp_path / "in put.wav"
    sf.write(src, _music(1.0, 2).T, SR)
    deepaq = lambda *a: subprocess.run([sys.executable, "-m", "deepaq", "degrade", str(src), *a],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    result = deepaq("--family", "g726", "--param", "bits=3", "-o", str(tmp_path / "g726.flac"))
    assert result.returncode == 0, result.stderr
    assert 'g726 {"bits": 3}' in result.stdout
    x, _ = read_audio(src)
    y, sr = read_audio(tmp_path / "g726.flac")
    assert sr == SR and y.shape == x.shape and np.abs(y - x).max() > 1e-3
    for args, message in ((("--family", "gsm"), "unknown degradation family 'gsm'"),
                          (("--codec", "mp3", "--bitrate", "64", "--param", "bits=3"), "--param belongs to --family")):
        bad = deepaq(*args, "-o", str(tmp_path / "bad.wav"))
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_build_data_draws_interferers_from_a_folder(tmp_path):
    from deepaq.data.build import BuildConfig, build_dataset
    from deepaq.data.manifest import read_manifest

    corpus, talkers = tmp_path / "corpus", tmp_path / "talkers"
    corpus.mkdir(), talkers.mkdir()
    sf.write(corpus / "a.flac", _music(1.5, 2).T, SR)
    for i in range(3):
        sf.write(talkers / f"t{i}.wav", _music(0.8, 1, seed=20 + i).T, 44100)
    config = BuildConfig(clip_seconds=1, max_clips_per_source=1, codecs=(), visqol=False, split_ratios=(1, 0, 0),
                         degradations=("noise_babble", "competing_talker", "separation"), per_clip=3,
                         interferers=(str(talkers),))
    assert build_dataset([corpus], tmp_path / "ds", config, workers=1).errors == 0
    rows = read_manifest(tmp_path / "ds").set_index("family")
    used = {str(talkers.resolve() / f"t{i}.wav") for i in range(3)}
    babble = json.loads(rows.loc["noise_babble", "params"])
    assert babble["babble_sources"] and set(babble["babble_sources"]) <= used
    assert json.loads(rows.loc["separation", "params"])["interferer"] in used
    assert len(json.loads(rows.loc["competing_talker", "params"])["babble_sources"]) == 1
    with pytest.raises(ConfigError, match="no audio files to draw"):
        BuildConfig(degradations=("echo",), per_clip=1, interferers=(str(tmp_path / "none"),)).check()
