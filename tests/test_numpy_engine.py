"""The numpy inference path equals the torch model: the shipped weights and random models of
other configs (and LoRA), on real audio, per window, in batches and through the Scorer.

"Equal" is max |numpy - torch| <= 1e-5 * max |torch| over the compared array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepaq.audio import load_audio
from deepaq.errors import ModelError
from deepaq.models import load_numpy_model

torch = pytest.importorskip("torch", reason="the torch model to compare with is in deepaq[train]")

from deepaq.models import DeepaqNet, build_backbone, load_model, save_model  # noqa: E402
from deepaq.scoring import Scorer  # noqa: E402

ASSET = Path(__file__).resolve().parents[1] / "src" / "deepaq" / "assets" / "loop_compus.flac"
OTHER_CONFIG = {"n_fft": 1024, "hop": 480, "n_bands": 40, "band_scale_hz": 500.0, "hidden": 24, "blocks": 4,
                "expansion": 3, "kernel": 3, "dilations": [1, 3], "downsample_after": [1, 3], "floor_db": -90.0}
RTOL = 1e-5


def assert_equal(numpy_out: np.ndarray, torch_out: np.ndarray) -> None:
    assert numpy_out.shape == torch_out.shape
    scale = float(np.abs(torch_out).max())
    assert scale > 0
    assert float(np.abs(numpy_out - torch_out).max()) <= RTOL * scale


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """The bundled real clip at 48 kHz, mono, [1, T]."""
    return load_audio(ASSET, sample_rate=48_000, mono=True)[0]


def both(folder: Path):
    return load_numpy_model(folder), load_model(folder)


def compare(numpy_model, torch_model, batch: np.ndarray, lengths: np.ndarray | None = None) -> None:
    x = torch.from_numpy(batch)
    tl = None if lengths is None else torch.from_numpy(lengths)
    with torch.inference_mode():
        assert_equal(numpy_model.hidden_states(batch), torch_model.backbone(x).numpy())
        assert_equal(numpy_model.pooled(batch, lengths), torch_model.pooled(x, tl).numpy())
        assert_equal(numpy_model.embed(batch, lengths), torch_model.embed(x, tl).numpy())


def windows_of(signal: np.ndarray, length: int, count: int) -> np.ndarray:
    """`count` windows of `length` samples spread over a `[1, T]` signal, as a batch."""
    starts = np.linspace(0, signal.shape[1] - length, count).astype(int)
    return np.stack([signal[0, s:s + length] for s in starts])


def test_shipped_model_equals_torch_on_real_windows_and_batches(music):
    numpy_model, torch_model = both(Path("src/deepaq/weights/deepaq-compact").resolve())
    window = int(numpy_model.info["window_seconds"] * numpy_model.sample_rate)
    compare(numpy_model, torch_model, windows_of(music, window, 1))
    compare(numpy_model, torch_model, windows_of(music, window, 5))
    # a short odd length (odd frame count through both downsamplings) and a padded batch
    batch = windows_of(music, 3 * 1920 * 7 + 1234, 3)
    compare(numpy_model, torch_model, batch)
    compare(numpy_model, torch_model, batch, np.array([batch.shape[1], 50_000, 12_345]))


def random_model(folder: Path, finetune: str = "full", seed: int = 3, segments: int = 1) -> Path:
    torch.manual_seed(seed)
    net = DeepaqNet(build_backbone("compact", OTHER_CONFIG), embed_dim=32, finetune=finetune,
                    info={"model_id": "other", "version": "9", "window_seconds": 1.0, "segments": segments})
    with torch.no_grad():  # LoRA's B starts at zero; give the adapters something to merge
        for name, p in net.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return save_model(net, folder)


def test_envelope_features_equal_torch(tmp_path, music):
    # the optional third feature group (envelope_bands) through both implementations
    torch.manual_seed(5)
    config = {**OTHER_CONFIG, "envelope_bands": 12, "envelope_fft": 160}  # short hop 80: 6 short frames per frame
    net = DeepaqNet(build_backbone("compact", config), embed_dim=32, finetune="full",
                    info={"model_id": "env", "version": "9", "window_seconds": 1.0, "segments": 4})
    numpy_model, torch_model = both(save_model(net, tmp_path / "env"))
    compare(numpy_model, torch_model, windows_of(music, 48_000, 3))
    batch = windows_of(music, 48_000 + 480 * 3 + 77, 3)
    compare(numpy_model, torch_model, batch, np.array([batch.shape[1], 30_000, 9_999]))


def test_frequency_regions_equal_torch(tmp_path, music):
    # channel groups (region_edges_hz): block-diagonal weights and a layer norm per group
    torch.manual_seed(6)
    config = {**OTHER_CONFIG, "region_edges_hz": [2000, 8000], "envelope_bands": 12, "envelope_fft": 160}
    net = DeepaqNet(build_backbone("compact", config), embed_dim=33, finetune="full",
                    info={"model_id": "regions", "version": "9", "window_seconds": 1.0, "segments": 2})
    numpy_model, torch_model = both(save_model(net, tmp_path / "regions"))
    assert numpy_model.backbone.channel_groups == torch_model.backbone.channel_groups == 3
    compare(numpy_model, torch_model, windows_of(music, 48_000, 3))
    batch = windows_of(music, 48_000 + 480 * 3 + 77, 3)
    compare(numpy_model, torch_model, batch, np.array([batch.shape[1], 30_000, 9_999]))


def test_region_distance_sums_the_regions_and_equals_torch(tmp_path, visqol_testdata):
    """distance "regions": each region's L2 over all time parts, summed; same on both backends."""
    torch.manual_seed(7)
    config = {**OTHER_CONFIG, "region_edges_hz": [2000, 8000]}
    net = DeepaqNet(build_backbone("compact", config), embed_dim=33, finetune="full",
                    info={"model_id": "regions", "version": "9", "window_seconds": 1.0, "segments": 2,
                          "distance": "regions"})
    folder = save_model(net, tmp_path / "regions")
    fast, slow = Scorer(folder, backend="numpy", cache_dir=False), Scorer(folder, backend="torch", cache_dir=False)
    d = fast.distance
    assert (d.name, d.groups, d.group_dim) == ("regions", 3, 11)
    a, b = np.random.default_rng(0).normal(size=(2, 5, 2 * 33))
    by_hand = sum(np.sqrt(np.square((a - b).reshape(5, 2, 3, 11)[:, :, g]).sum((1, 2))) for g in range(3))
    np.testing.assert_allclose(d(a - b, np.linalg.norm), by_hand, rtol=1e-12)
    assert not np.allclose(by_hand, np.linalg.norm(a - b, axis=-1))  # not plain L2
    np.testing.assert_allclose(d.between(a, b), [[float(d(x - y, np.linalg.norm)) for y in b] for x in a], rtol=1e-12)
    np.testing.assert_allclose(d(torch.from_numpy(a - b), torch.linalg.vector_norm).numpy(), by_hand, rtol=1e-12)
    ref, deg = visqol_testdata / "guitar48_stereo.wav", visqol_testdata / "guitar48_stereo_64kbps_aac.wav"
    x, y = fast.score(reference=ref, degraded=deg), slow.score(reference=ref, degraded=deg)
    assert abs(x.distance - y.distance) <= RTOL * abs(y.distance)


def test_region_distance_needs_regions(tmp_path):
    net = DeepaqNet(build_backbone("compact", OTHER_CONFIG), embed_dim=16, finetune="full",
                    info={"model_id": "m", "version": "1", "window_seconds": 1.0, "distance": "regions"})
    with pytest.raises(ModelError, match="needs a backbone with frequency regions"):
        Scorer(save_model(net, tmp_path / "m"), backend="numpy", cache_dir=False)


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_random_model_of_another_config_equals_torch(tmp_path, music, finetune):
    numpy_model, torch_model = both(random_model(tmp_path / finetune, finetune))
    assert numpy_model.num_hidden_states == 5 and numpy_model.hidden_size == 24
    compare(numpy_model, torch_model, windows_of(music, 48_000, 4))
    batch = windows_of(music, 48_000 + 480 * 3 + 77, 3)
    compare(numpy_model, torch_model, batch, np.array([batch.shape[1], 30_000, 9_999]))


def test_segment_pooling_equals_torch_and_compares_parts(tmp_path, music):
    numpy_model, torch_model = both(random_model(tmp_path / "m", segments=4))
    batch = windows_of(music, 48_000, 3)
    compare(numpy_model, torch_model, batch)
    compare(numpy_model, torch_model, batch, np.array([48_000, 20_000, 2_000]))  # 2,000: 5 frames, 4 parts
    assert numpy_model.embed(batch).shape == (3, 4 * 32)
    # equal parts average to the whole window's average (100 frames of a 480-sample hop)
    plain = load_numpy_model(random_model(tmp_path / "plain"))
    batch = windows_of(music, 99 * 480, 3)
    parts = numpy_model.pooled(batch)
    assert_equal(parts.mean(axis=1), plain.pooled(batch)[:, 0])


def test_scorer_backends_agree_on_real_pairs(tmp_path, visqol_testdata):
    """Whole files (mono and per channel) through the Scorer's windows and batches."""
    ref, deg = visqol_testdata / "guitar48_stereo.wav", visqol_testdata / "guitar48_stereo_64kbps_aac.wav"
    for mono in (True, False):
        fast = Scorer(backend="numpy", cache_dir=False, batch_size=3, mono=mono)
        slow = Scorer(backend="torch", cache_dir=False, batch_size=3, mono=mono)
        assert (fast.backend, slow.backend) == ("numpy", "torch")
        assert_equal(fast.embed(deg).windows, slow.embed(deg).windows)
        a, b = fast.score(reference=ref, degraded=deg), slow.score(reference=ref, degraded=deg)
        assert a.delay_samples == b.delay_samples
        assert abs(a.distance - b.distance) <= RTOL * abs(b.distance)


def test_auto_backend_uses_numpy_for_the_built_in_model():
    assert Scorer(cache_dir=False).backend == "numpy"


def test_numpy_refuses_what_it_cannot_run_and_auto_falls_back_to_torch(tmp_path):
    folder = random_model(tmp_path / "m")
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace('"hidden": 24', '"hidden": 24, "new_setting": 1'))
    with pytest.raises(ModelError, match="unknown settings"):
        load_numpy_model(folder)
    (folder / "config.json").write_text(config.replace('"name": "compact"', '"name": "mert"'))
    with pytest.raises(ModelError, match="no numpy implementation"):
        load_numpy_model(folder)
    from safetensors.numpy import load_file, save_file

    (folder / "config.json").write_text(config)
    state = load_file(str(folder / "model.safetensors"))
    state["backbone.extra.weight"] = np.zeros(3, np.float32)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match="unexpected"):
        load_numpy_model(folder)
    with pytest.raises(ModelError):
        Scorer(folder, backend="numpy", cache_dir=False)


def test_auto_backend_falls_back_to_torch_for_a_backbone_numpy_lacks(tmp_path, monkeypatch):
    from deepaq.models import numpy_net

    folder = random_model(tmp_path / "m")
    monkeypatch.setattr(numpy_net, "NUMPY_BACKBONES", {})
    assert Scorer(folder, cache_dir=False).backend == "torch"
    with pytest.raises(ModelError, match="no numpy implementation"):
        Scorer(folder, backend="numpy", cache_dir=False)
