"""Scorer: windows and pooling, full reference and NMR, cache, banks, mapping, errors.

A tiny random compact model (a real checkpoint written with save_model) stands in for the
shipped one; real audio comes from the ViSQOL test data beside the checkout.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from deepaq.audio import read_audio, write_audio
from deepaq.errors import AudioError, ConfigError
from deepaq.mapping import fit_mapping
from deepaq.scoring import EmbeddingBank, Scorer
from deepaq.scoring.windows import Windower, WindowSpec, pooling_weights

from conftest import save_tiny_model

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def scorer(model_dir, tmp_path):
    return Scorer(model_dir, cache_dir=tmp_path / "cache")


def excerpt(path, seconds: float, start_s: float = 0.0):
    x, sr = read_audio(path)
    a = int(start_s * sr)
    return x[:, a:a + int(seconds * sr)], sr


# ---- windows and pooling -----------------------------------------------------------------

def test_pooling_weights_share_each_sample_equally():
    # windows of 10 every 5 over 27 samples: starts 0, 5, 10, 15 and an end window at 17
    w = pooling_weights(np.array([0, 5, 10, 15, 17]), 10, 27)
    # window 1: samples 0-4 alone (5) + 5-9 shared by two (2.5); the end window: 17-19 shared
    # by three (1), 20-24 by two (2.5), 25-26 alone (2)
    np.testing.assert_allclose(w, [7.5, 5.0, 4.5, 4.5, 5.5])
    assert w.sum() == pytest.approx(27)
    assert pooling_weights(np.array([0]), 7, 7).tolist() == [7]


def test_windower_is_the_same_for_any_chunking():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1234)).astype(np.float32)
    spec = WindowSpec(200, 100, 50)
    whole = Windower(spec)
    a = np.concatenate(list(whole.batches([x], 4)))
    split = Windower(spec)
    b = np.concatenate(list(split.batches((x[:, i:i + 37] for i in range(0, 1234, 37)), 3)))
    assert whole.starts == split.starts == [*range(0, 1001, 100), 1034]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[-1, 0], x[0, -200:])
    assert whole.weights().sum() == pytest.approx(1234)


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 50), hop_frac=st.floats(0.05, 1.0), total=st.integers(1, 400), chunk=st.integers(1, 90))
def test_windows_cover_every_sample_and_weights_sum_to_the_length(length, hop_frac, total, chunk):
    spec = WindowSpec(length, max(1, int(length * hop_frac)), 1)
    x = np.arange(total, dtype=np.float32)[np.newaxis]
    w = Windower(spec)
    windows = np.concatenate(list(w.batches((x[:, i:i + chunk] for i in range(0, total, chunk)), 5)))
    starts = np.asarray(w.starts)
    assert np.all(np.diff(starts) > 0) and w.total == total
    for start, win in zip(starts, windows):  # each window is the audio at its start
        np.testing.assert_array_equal(win[0], x[0, start:start + len(win[0])])
    covered = np.zeros(total, bool)
    for start in starts:
        covered[start:start + min(length, total)] = True
    assert covered.all()
    assert w.weights().sum() == pytest.approx(total) and np.all(w.weights() > 0)


def test_short_audio_is_one_window_and_too_short_is_an_error():
    spec = WindowSpec(200, 100, 50)
    w = Windower(spec, "clip.wav")
    batches = list(w.batches([np.ones((1, 120), np.float32)], 8))
    assert [b.shape for b in batches] == [(1, 1, 120)]
    with pytest.raises(AudioError, match="clip.wav.*too short"):
        list(Windower(spec, "clip.wav").batches([np.ones((1, 40), np.float32)], 8))


# ---- full reference ----------------------------------------------------------------------

def test_window_overlap_comes_from_the_model_unless_given(model_dir, tmp_path):
    assert Scorer(model_dir, cache_dir=False).spec.hop == 24_000  # no window_overlap stored: 50 % of 1 s
    back_to_back = save_tiny_model(tmp_path / "no-overlap", window_overlap=0.0)
    assert Scorer(back_to_back, cache_dir=False).spec.hop == 48_000
    assert Scorer(back_to_back, cache_dir=False, overlap=0.75).spec.hop == 12_000


def test_full_reference_on_real_pair(scorer, visqol_testdata):
    ref, deg = visqol_testdata / "guitar48_stereo.wav", visqol_testdata / "guitar48_stereo_64kbps_aac.wav"
    r = scorer.score(reference=ref, degraded=deg)
    assert r.mode == "full-reference" and r.distance > 0
    assert r.distance_direction == "lower is better" and r.quality is None
    assert (r.model_id, r.model_version, r.sample_rate) == ("tiny-test", "1", 48000)
    assert 0 < r.delay_samples < 48000 and r.duration_s == pytest.approx(12.45, abs=0.05)
    weights = np.array([w.weight_s for w in r.windows])
    assert weights.sum() == pytest.approx(r.duration_s)
    assert np.dot(weights, [w.distance for w in r.windows]) / weights.sum() == pytest.approx(r.distance)
    assert scorer.score(reference=ref, degraded=ref).distance == pytest.approx(0.0, abs=1e-6)


def test_arrays_delay_and_keyword_only(scorer, visqol_testdata):
    x, sr = excerpt(visqol_testdata / "sopr48_stereo.wav", 4.0)
    delayed = np.concatenate([np.zeros((2, 1200), np.float32), x], axis=1)
    r = scorer.score(reference=(x, sr), degraded=(delayed, sr))
    assert r.delay_samples == 1200 and r.distance == pytest.approx(0.0, abs=1e-6)
    y, _ = excerpt(visqol_testdata / "sopr48_stereo_256kbps_aac.wav", 4.0)
    assert scorer.score(reference=(x, sr), degraded=(y, sr)).distance > 0
    with pytest.raises(TypeError):
        scorer.score((x, sr), (y, sr))


def test_streamed_long_file_matches_whole_file(model_dir, tmp_path, visqol_testdata):
    ref, deg = visqol_testdata / "ravel48_stereo.wav", visqol_testdata / "ravel48_stereo_128kbps_opus.wav"
    whole = Scorer(model_dir, cache_dir=False).score(reference=ref, degraded=deg)
    streamed = Scorer(model_dir, cache_dir=False, stream_above_s=1.0).score(reference=ref, degraded=deg)
    assert streamed.delay_samples == whole.delay_samples
    assert streamed.distance == pytest.approx(whole.distance, rel=1e-5)
    assert len(streamed.windows) == len(whole.windows)


def test_model_rate_resampling_and_stereo(model_dir, tmp_path, visqol_testdata):
    x, sr = excerpt(visqol_testdata / "glock48_stereo.wav", 3.0)
    y, _ = excerpt(visqol_testdata / "glock48_stereo_48kbps_aac.wav", 3.0)
    write_audio(tmp_path / "ref 44k.flac", x, sr)  # name with a space
    import soxr

    z = soxr.resample(y.T, sr, 44100).T.astype(np.float32)
    sf.write(tmp_path / "dég.wav", z.T, 44100)  # another rate, non-ASCII name
    scorer = Scorer(model_dir, cache_dir=False)
    with pytest.warns(UserWarning, match="upsampling from 44100 Hz to 48000 Hz"):
        r = scorer.score(reference=tmp_path / "ref 44k.flac", degraded=tmp_path / "dég.wav")
    assert r.sample_rate == 48000 and r.distance > 0
    stereo = Scorer(model_dir, cache_dir=False, mono=False).score(reference=(x, sr), degraded=(y, sr))
    assert stereo.distance > 0 and stereo.distance != pytest.approx(r.distance)


# ---- cache -------------------------------------------------------------------------------

def test_cache_reuses_windows_and_follows_the_model(model_dir, tmp_path, visqol_testdata):
    x, sr = excerpt(visqol_testdata / "steely48_stereo.wav", 3.0)
    y, _ = excerpt(visqol_testdata / "steely48_stereo_lp7.wav", 3.0)
    cold = Scorer(model_dir, cache_dir=tmp_path / "c")
    first = cold.score(reference=(x, sr), degraded=(y, sr))
    assert cold.cache.hits == 0 and cold.cache.misses > 0
    warm = Scorer(model_dir, cache_dir=tmp_path / "c")
    assert warm.score(reference=(x, sr), degraded=(y, sr)).distance == pytest.approx(first.distance, abs=1e-7)
    assert warm.cache.misses == 0 and warm.cache.hits == cold.cache.misses
    other = Scorer(save_tiny_model(tmp_path / "v2", seed=1, version="2"), cache_dir=tmp_path / "c")
    other.score(reference=(x, sr), degraded=(y, sr))
    assert other.cache.hits == 0
    assert (tmp_path / "c" / "embeddings.sqlite").is_file()


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    from deepaq.cache import default_cache_dir

    monkeypatch.setenv("DEEPAQ_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("DEEPAQ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "deepaq"


# ---- NMR and banks -----------------------------------------------------------------------

@pytest.fixture
def ref_folder(tmp_path, visqol_testdata):
    folder = tmp_path / "clean refs"
    for name in ("castanets48_stereo", "harpsichord48_stereo", "moonlight48_stereo"):
        write_audio(folder / f"{name}.flac", *excerpt(visqol_testdata / f"{name}.wav", 3.0))
    return folder


def test_nmr_against_folder_and_saved_bank(scorer, ref_folder, tmp_path, visqol_testdata):
    deg = excerpt(visqol_testdata / "guitar48_stereo_64kbps_aac.wav", 3.0)
    by_folder = scorer.score(degraded=deg, nmr_bank=ref_folder)
    assert by_folder.mode == "nmr" and by_folder.delay_samples is None
    assert sorted(by_folder.reference_distances) == ["castanets48_stereo.flac", "harpsichord48_stereo.flac",
                                                     "moonlight48_stereo.flac"]
    assert by_folder.distance == pytest.approx(np.mean(list(by_folder.reference_distances.values())))
    bank = scorer.load_bank(ref_folder)
    bank.save(tmp_path / "bank.safetensors")
    loaded = EmbeddingBank.load(tmp_path / "bank.safetensors")
    np.testing.assert_allclose(loaded.file_embeddings, bank.file_embeddings)
    assert scorer.score(degraded=deg, nmr_bank=tmp_path / "bank.safetensors").distance == \
        pytest.approx(by_folder.distance)
    # a reference's own windows are in the bank: NMR of that reference has one zero-ish term
    own = scorer.embed(ref_folder / "castanets48_stereo.flac")
    assert own.embedding.shape == (16,)
    np.testing.assert_allclose(own.embedding, bank.file_embeddings[0], rtol=1e-5, atol=1e-6)


def test_bank_errors_and_default_bank(model_dir, scorer, ref_folder, tmp_path):
    with pytest.raises(ConfigError, match="needs a reference bank"):
        scorer.score(degraded=ref_folder / "castanets48_stereo.flac")
    with pytest.raises(ConfigError, match="ships no default NMR bank"):
        scorer.load_bank("default")
    (tmp_path / "junk.safetensors").write_bytes(b"not a bank")
    with pytest.raises(ConfigError, match="junk.safetensors"):
        scorer.load_bank(tmp_path / "junk.safetensors")
    other = Scorer(save_tiny_model(tmp_path / "v9", version="9"), cache_dir=False)
    other.load_bank(ref_folder).save(tmp_path / "v9" / "bank.safetensors")
    with pytest.raises(ConfigError, match="another model"):
        scorer.load_bank(tmp_path / "v9" / "bank.safetensors")
    assert len(other.load_bank("default")) == 3
    retrained = Scorer(save_tiny_model(tmp_path / "same name", seed=5), cache_dir=False)  # same id and version
    with pytest.raises(ConfigError, match="weights"):
        retrained.load_bank(scorer.load_bank(ref_folder))


# ---- mapping -----------------------------------------------------------------------------

def test_mapping_gives_quality_and_model_folder_mapping_is_default(model_dir, tmp_path, visqol_testdata):
    mapping = fit_mapping([0.0, 0.1, 0.2, 0.4, 0.8], [5.0, 4.5, 3.8, 2.5, 1.2], kind="cubic")
    mapping.save(tmp_path / "map.json")
    x, sr = excerpt(visqol_testdata / "strauss48_stereo.wav", 3.0)
    y, _ = excerpt(visqol_testdata / "strauss48_stereo_lp35.wav", 3.0)
    r = Scorer(model_dir, cache_dir=False, mapping=tmp_path / "map.json").score(reference=(x, sr), degraded=(y, sr))
    assert r.quality == pytest.approx(float(mapping(r.distance)))
    assert r.quality_direction == "higher is better"
    assert all(w.quality == pytest.approx(float(mapping(w.distance))) for w in r.windows)
    shipped = save_tiny_model(tmp_path / "with_map")
    mapping.save(shipped / "mapping.json")
    assert Scorer(shipped, cache_dir=False).mapping is not None
    assert Scorer(shipped, cache_dir=False, mapping=False).mapping is None
    (tmp_path / "bad.json").write_text(json.dumps({"kind": "spline"}))
    with pytest.raises(ConfigError, match="bad.json"):
        Scorer(model_dir, cache_dir=False, mapping=tmp_path / "bad.json")


# ---- errors ------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors_and_batches_go_on(scorer, tmp_path, visqol_testdata):
    good = visqol_testdata / "sopr48_stereo.wav"
    with pytest.raises(AudioError, match="missing.wav.*not found"):
        scorer.score(reference=good, degraded=tmp_path / "missing.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(48000 * 2, np.float32), 48000)
    with pytest.raises(AudioError, match="silent"):
        scorer.score(reference=tmp_path / "silent.wav", degraded=good)
    x, sr = excerpt(good, 0.5)
    with pytest.raises(AudioError, match="too short"):
        scorer.score(reference=(x, sr), degraded=(x, sr))
    noise = np.random.default_rng(0).standard_normal((2, 48000 * 2)).astype(np.float32) * 0.1
    y, _ = excerpt(good, 2.0)
    with pytest.raises(AudioError, match="cannot be aligned"):
        scorer.score(reference=(y, sr), degraded=(noise, sr))
    out = scorer.score_batch([(tmp_path / "missing.wav", good), ((y, sr), (y, sr))])
    assert isinstance(out[0], AudioError) and out[1].distance == pytest.approx(0.0, abs=1e-6)


# ---- public API --------------------------------------------------------------------------

def test_public_api_is_lazy_and_scores(model_dir, tmp_path, monkeypatch, visqol_testdata):
    import subprocess
    import sys

    code = "import sys, deepaq; print('torch' in sys.modules, 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == \
        ["False", "False"]
    import deepaq

    monkeypatch.setenv("DEEPAQ_CACHE_DIR", str(tmp_path / "cache"))
    x, sr = excerpt(visqol_testdata / "moonlight48_stereo.wav", 3.0)
    y, _ = excerpt(visqol_testdata / "moonlight48_stereo_128kbps_aac.wav", 3.0)
    r = deepaq.score(reference=(x, sr), degraded=(y, sr), model=str(model_dir))
    assert r.distance > 0 and r.model_id == "tiny-test"
    assert deepaq.embed((x, sr), model=str(model_dir)).embedding.shape == (16,)
    if importlib.util.find_spec("torch") is not None:  # a core install has no torch model to load
        from deepaq.models import DeepaqNet

        assert isinstance(deepaq.load_model(model_dir), DeepaqNet)
    assert (tmp_path / "cache" / "embeddings.sqlite").is_file()


def test_l1_models_score_the_l1_distance_in_both_modes(model_dir, tmp_path, visqol_testdata):
    """A model trained with `[model] distance = "l1"` scores |e_ref - e_deg|_1; the same weights
    with the default score the L2 distance. One 1 s window per signal, so file = window embedding."""
    l1_dir = save_tiny_model(tmp_path / "l1", distance="l1")
    ref, sr = excerpt(visqol_testdata / "guitar48_stereo.wav", 1.0, start_s=2.0)
    deg = (0.7 * ref + 0.01 * np.random.default_rng(0).standard_normal(ref.shape)).astype(np.float32)  # no delay
    l2, l1 = (Scorer(folder, cache_dir=False, align_level=False) for folder in (model_dir, l1_dir))
    diff = l1.embed((ref, sr)).embedding - l1.embed((deg, sr)).embedding
    np.testing.assert_allclose(diff, l2.embed((ref, sr)).embedding - l2.embed((deg, sr)).embedding, atol=1e-6)
    assert l1.score(reference=(ref, sr), degraded=(deg, sr)).distance == pytest.approx(np.abs(diff).sum(), rel=1e-5)
    assert l2.score(reference=(ref, sr), degraded=(deg, sr)).distance == pytest.approx(np.linalg.norm(diff), rel=1e-5)
    bank = l1.make_bank([(ref, sr)], names=["ref"])
    assert l1.score(degraded=(deg, sr), nmr_bank=bank).distance == pytest.approx(np.abs(diff).sum(), rel=1e-5)


def test_an_unknown_model_distance_is_an_error(tmp_path):
    from deepaq.errors import ModelError

    with pytest.raises(ModelError, match="distance 'cosine'"):
        Scorer(save_tiny_model(tmp_path / "bad", distance="cosine"), cache_dir=False)


def test_level_is_reported_and_aligned_by_default(model_dir, visqol_testdata):
    """A pure gain of -6 dB: reported as the level difference; aligned away by default (scored
    like the reference itself), scored as a change with `align_level=False`."""
    ref, sr = excerpt(visqol_testdata / "guitar48_stereo.wav", 3.0)
    quieter = (ref * 10 ** (-6 / 20)).astype(np.float32)
    aligned = Scorer(model_dir, cache_dir=False).score(reference=(ref, sr), degraded=(quieter, sr))
    as_is = Scorer(model_dir, cache_dir=False, align_level=False).score(reference=(ref, sr), degraded=(quieter, sr))
    assert aligned.level_db == pytest.approx(-6.0, abs=0.01) and aligned.level_aligned
    assert as_is.level_db == pytest.approx(-6.0, abs=0.01) and not as_is.level_aligned
    assert aligned.distance < 1e-3 < as_is.distance


# ---- fusion with the 2f-model ------------------------------------------------------------

def test_fusion_mixes_the_mapped_distance_with_the_2f_model(model_dir, tmp_path, visqol_testdata):
    """A model folder with fusion.json: quality = (1 - w) * mapped distance + w * 2f MMS of the
    aligned pair; `fusion=False` or no mapping leaves the network alone."""
    from deepaq.baselines.peaq.core import evaluate_2f
    from deepaq.scoring.fusion import Fusion

    folder = save_tiny_model(tmp_path / "fused")
    fit_mapping([0.0, 0.1, 0.2, 0.4, 0.8], [100.0, 80.0, 60.0, 40.0, 20.0], kind="cubic").save(folder / "mapping.json")
    Fusion(0.25).save(folder / "fusion.json")
    ref, sr = excerpt(visqol_testdata / "guitar48_stereo.wav", 4.0)
    deg = np.clip(ref * 4.0, -0.3, 0.3)  # clipped: the 2f-model hears it
    fused = Scorer(folder, cache_dir=False).score(reference=(ref, sr), degraded=(deg, sr))
    alone = Scorer(folder, cache_dir=False, fusion=False).score(reference=(ref, sr), degraded=(deg, sr))
    assert alone.mms_2f is None and alone.quality == alone.model_quality == pytest.approx(fused.model_quality)
    assert fused.quality == pytest.approx(0.75 * fused.model_quality + 0.25 * fused.mms_2f)
    assert fused.mms_2f < 90.0
    # the meter reads the pair the network scores: mono, level aligned, at 48 kHz
    mono_ref, mono_deg = ref.mean(0, keepdims=True), deg.mean(0, keepdims=True)
    gain = 10 ** (-fused.level_db / 20)
    assert fused.mms_2f == pytest.approx(evaluate_2f(mono_ref, mono_deg * gain), abs=0.5)
    assert [w.quality for w in fused.windows] == [w.quality for w in alone.windows]  # windows: the network's
    assert Scorer(folder, cache_dir=False, mapping=False).fusion is None
    (folder / "fusion.json").write_text('{"twof_weight": 2}')
    with pytest.raises(ConfigError, match="fusion.json"):
        Scorer(folder, cache_dir=False)


def test_soft_maximum_fusion(tmp_path):
    """With a temperature the fused quality is a weighted soft maximum: equal parts give that
    value, a large disagreement gives the higher part less t * log(its weight), weights 0 and 1
    give one part alone, and it never falls below the average; the file keeps the temperature."""
    from deepaq.scoring.fusion import Fusion

    soft = Fusion(0.8, 10.0)
    assert soft.combine(55.0, 55.0) == pytest.approx(55.0)
    assert soft.combine(20.0, 95.0) == pytest.approx(95.0 + 10 * np.log(0.8), abs=0.01)
    assert soft.combine(95.0, 20.0) == pytest.approx(95.0 + 10 * np.log(0.2), abs=0.05)
    assert Fusion(0.0, 10.0).combine(30.0, 90.0) == pytest.approx(30.0)
    assert Fusion(1.0, 10.0).combine(30.0, 90.0) == pytest.approx(90.0)
    rng = np.random.default_rng(0)
    for q, m in rng.uniform(0, 100, (50, 2)):
        assert soft.combine(q, m) >= Fusion(0.8).combine(q, m) - 1e-9
        assert soft.combine(q, m + 1.0) > soft.combine(q, m)  # increasing in each part
    assert Fusion.load(soft.save(tmp_path / "fusion.json")) == soft
    assert Fusion.load(Fusion(0.65).save(tmp_path / "avg.json")) == Fusion(0.65, None)
    (tmp_path / "bad.json").write_text('{"twof_weight": 0.5, "temperature": -1}')
    with pytest.raises(ConfigError, match="bad.json"):
        Fusion.load(tmp_path / "bad.json")


def test_fusion_ceiling_above_the_2f_model(tmp_path):
    """A ceiling keeps the fused quality at most c points above the 2f MMS: it binds only where
    the network is far milder than the 2f-model, and the file keeps it."""
    from deepaq.scoring.fusion import Fusion

    soft, capped = Fusion(0.8, 10.0), Fusion(0.8, 10.0, 25.0)
    assert capped.combine(95.0, 30.0) == pytest.approx(55.0)
    assert soft.combine(95.0, 30.0) > 70.0
    for q, m in [(60.0, 50.0), (20.0, 90.0), (80.0, 70.0)]:
        assert capped.combine(q, m) == soft.combine(q, m)
    assert Fusion(0.5, None, 0.0).combine(90.0, 40.0) == pytest.approx(40.0)
    assert Fusion.load(capped.save(tmp_path / "fusion.json")) == capped
    assert "at most 25 above" in capped.describe()
    (tmp_path / "bad.json").write_text('{"twof_weight": 0.5, "temperature": 10, "ceiling": -3}')
    with pytest.raises(ConfigError, match="bad.json"):
        Fusion.load(tmp_path / "bad.json")


def test_long_pairs_are_measured_in_segments(monkeypatch, visqol_testdata):
    """Past SEGMENT_S the 2f MMS is the duration-weighted mean over segments of the pair less
    EDGE_S at each end; a silent segment PEAQ cannot measure is left out, and a pair with none
    gives None."""
    from deepaq.baselines.peaq.core import evaluate_2f
    from deepaq.scoring import fusion

    monkeypatch.setattr(fusion, "SEGMENT_S", 2.0)
    ref, sr = excerpt(visqol_testdata / "guitar48_stereo.wav", 5.0)
    ref = ref[:1]
    deg = (ref + 0.01 * np.random.default_rng(0).standard_normal(ref.shape)).astype(np.float32)
    meter = fusion.TwofMeter(sr, "ref")
    for a in range(0, ref.shape[1], 30_000):  # chunks that straddle the segments
        meter.add(np.concatenate([ref[:, a:a + 30_000], deg[:, a:a + 30_000]]))
    edge, n = int(fusion.EDGE_S * sr), 2 * sr
    ref, deg = ref[:, edge:-edge], deg[:, edge:-edge]
    parts = [(evaluate_2f(ref[:, a:a + n], deg[:, a:a + n]), min(n, ref.shape[1] - a)) for a in (0, n, 2 * n)]
    assert meter.mms() == pytest.approx(sum(s * k for s, k in parts) / sum(k for _, k in parts))
    silent = fusion.TwofMeter(sr, "quiet")
    silent.add(np.zeros((2, 3 * sr), np.float32))
    assert silent.mms() is None


def test_the_2f_part_leaves_out_the_edges(visqol_testdata):
    """The pair's first and last EDGE_S do not reach the 2f-model: a damage confined to them
    leaves the MMS of a clean pair, the same damage inside the pair lowers it."""
    from deepaq.scoring import fusion

    ref, sr = excerpt(visqol_testdata / "guitar48_stereo.wav", 4.0)
    ref = ref[:1]
    edge = int(fusion.EDGE_S * sr)

    def mms(deg):
        meter = fusion.TwofMeter(sr, "ref")
        meter.add(np.concatenate([ref, deg]))
        return meter.mms()

    at_end, inside = ref.copy(), ref.copy()
    at_end[:, -edge:] = 0.0
    inside[:, sr:sr + edge] = 0.0
    assert mms(at_end) == pytest.approx(mms(ref.copy()), abs=0.5)
    assert mms(inside) < mms(ref.copy()) - 5.0
    small = fusion.TwofMeter(sr, "ref")  # chunks shorter than an edge: the same MMS
    for a in range(0, ref.shape[1], edge // 3):
        small.add(np.concatenate([ref[:, a:a + edge // 3], inside[:, a:a + edge // 3]]))
    assert small.mms() == pytest.approx(mms(inside))


def test_a_delay_that_jumps_within_the_pair_is_followed(model_dir, visqol_testdata):
    """40 ms of silence inserted 3.23 s into 5.5 s of speech: after that block the pair is
    aligned again (the jump is reported), so the last window compares the same samples; at a
    constant delay it compares them 40 ms apart."""
    speech, sr = read_audio(visqol_testdata / "CA01_01.wav")  # 2.7 s
    ref = np.concatenate([speech, speech], axis=1)
    at, gap = int(3.23 * sr), int(0.04 * sr)
    deg = np.concatenate([ref[:, :at], np.zeros((ref.shape[0], gap), np.float32), ref[:, at:-gap]], axis=1)
    followed = Scorer(model_dir, cache_dir=False).score(reference=(ref, sr), degraded=(deg, sr))
    constant = Scorer(model_dir, cache_dir=False, follow_delay=False).score(reference=(ref, sr), degraded=(deg, sr))
    assert followed.delay_jumps == (int(0.04 * 48000),) and constant.delay_jumps == ()
    assert followed.windows[-1].start_s >= 4.0
    assert followed.windows[-1].distance < 1e-6 < constant.windows[-1].distance
