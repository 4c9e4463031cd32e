"""The compact backbone: band features, shapes, padding, registry, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepaq.errors import ConfigError
from deepaq.models import DeepaqNet, build_backbone, list_backbones, load_model, save_model
from deepaq.models.compact import BandFeatures, EnvelopeFeatures
from deepaq.models.compact_numpy import DEFAULTS, band_edges, envelope_layout

SR = 48_000


def _tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amp * torch.sin(2 * torch.pi * freq * t)


def test_band_edges_cover_full_band():
    edges = band_edges(2048, SR, 160, 1000.0)
    assert edges[0] == 0 and edges[-1] == 1025
    assert all(b > a for a, b in zip(edges, edges[1:]))
    assert len(edges) - 1 >= 150


def test_band_level_follows_the_signal_up_to_24_khz():
    feats = BandFeatures(2048, 960, SR, 160, 1000.0, -100.0)
    edges = band_edges(2048, SR, 160, 1000.0)
    n = len(edges) - 1
    for freq in (440.0, 15000.0, 20000.0):
        level = feats(_tone(freq)[None])[0, 10:-10, :n].mean(0) * 25.0 - 50.0  # back to dB
        band = int(np.searchsorted(edges, round(freq / (SR / 2048)), side="right")) - 1
        assert int(level.argmax()) == band
        assert level[band] > -20.0  # a -6 dBFS sine lands well above the floor
    # a 16 kHz low-pass shows as floor-level bands above the cutoff
    noise = torch.randn(1, SR) * 0.1
    spec = torch.fft.rfft(noise)
    spec[:, int(16000 / (SR / 2) * spec.shape[1]):] = 0
    lp = torch.fft.irfft(spec, n=SR)
    lv = feats(lp)[0, 10:-10, :n].mean(0) * 25.0 - 50.0
    top = int(np.searchsorted(edges, round(17000 / (SR / 2048)))) - 1
    assert lv[top:].max() < -80.0 and lv[:top - 20].min() > -60.0


def test_a_quiet_high_band_beside_loud_low_bands_keeps_its_level():
    # -6 dBFS at 100 Hz and a -86 dBFS tone at 18 kHz: the high band must read about -86 dB
    # (band means that came from differences of float32 running sums read rounding noise here)
    feats = BandFeatures(2048, 960, SR, 160, 1000.0, -100.0)
    edges = band_edges(2048, SR, 160, 1000.0)
    n = len(edges) - 1
    quiet = 0.5 * 10 ** (-80 / 20)
    level = feats((_tone(100.0) + _tone(18000.0, amp=quiet))[None])[0, 10:-10, :n].mean(0) * 25.0 - 50.0
    band = int(np.searchsorted(edges, round(18000.0 / (SR / 2048)), side="right")) - 1
    alone = feats(_tone(18000.0, amp=quiet)[None])[0, 10:-10, :n].mean(0) * 25.0 - 50.0
    assert float(level[band]) == pytest.approx(float(alone[band]), abs=0.5)
    assert -95.0 < float(level[band]) < -80.0


def test_flatness_sees_spectral_holes():
    feats = BandFeatures(2048, 960, SR, 160, 1000.0, -100.0)
    n = len(band_edges(2048, SR, 160, 1000.0)) - 1
    noise = torch.randn(1, SR) * 0.1
    spec = torch.fft.rfft(noise)  # 1 Hz bins
    holes = spec.clone()
    for start in range(0, holes.shape[1], 400):  # 200 Hz holes every 400 Hz, like a starved codec
        holes[:, start : start + 200] = 0
    with_holes = torch.fft.irfft(holes, n=SR)
    upper = slice(2 * n - 60, 2 * n)  # flatness of the 60 widest (highest) bands
    flat_full = feats(noise)[0, 10:-10, upper].mean() * 5.0
    flat_holes = feats(with_holes)[0, 10:-10, upper].mean() * 5.0
    assert flat_full > -3.0  # white noise is nearly flat
    assert flat_holes < flat_full - 5.0


def test_features_equal_the_stft_formula():
    # the fast framing (one FFT over strided frames, floored power reused in place) must
    # give the docstring's definition computed the plain way with torch.stft
    feats = BandFeatures(2048, 1920, SR, 160, 1000.0, -100.0)
    edges = band_edges(2048, SR, 160, 1000.0)
    # a fixed draw: float32 against float64 differs by up to 2.5e-4 on rare draws (bins far
    # below their band's mean), which an unseeded test turned into a failure now and then
    noise = torch.randn(3, 3 * SR, generator=torch.Generator().manual_seed(0))
    x = noise * torch.logspace(-4, 0, 3)[:, None]  # -80 .. 0 dB
    window = torch.hann_window(2048)
    power = torch.stft(x.double(), 2048, 1920, window=window.double(), center=True, return_complex=True).abs() ** 2
    power = power.transpose(1, 2) * 4.0 / float(window.sum()) ** 2 + 1e-10
    level = torch.stack([10 * torch.log10(power[..., a:b].mean(-1)) for a, b in zip(edges, edges[1:])], -1)
    db_mean = torch.stack([(10 * torch.log10(power[..., a:b])).mean(-1) for a, b in zip(edges, edges[1:])], -1)
    expected = torch.cat([(level + 50) / 25, (db_mean - level) / 5], -1).float()
    got = feats(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=2e-4)
    with pytest.raises(ValueError, match="more than 1024 samples"):
        feats(x[:, :1000])


def test_envelope_equals_its_definition():
    # frame t's short frames are the hop / short-hop ones centred inside [t * hop - hop / 2, t * hop + hop / 2)
    config = {"hop": 1920, "envelope_bands": 16}
    feats = EnvelopeFeatures(config)
    short, count, left = envelope_layout({**DEFAULTS, **config})
    assert (short, count, left) == (128, 15, 1024)
    edges = band_edges(256, SR, 16, 1000.0)
    x = torch.randn(2, SR) * torch.tensor([[0.3], [0.01]])
    frames = SR // 1920 + 1
    got = feats(x, frames)
    assert got.shape == (2, frames, len(edges) - 1)
    window = torch.hann_window(256, dtype=torch.float64)
    window = window * 2 / window.sum()
    padded = torch.nn.functional.pad(x.double()[:, None], (left, 2048), mode="reflect")[:, 0]
    for t in (0, 7, frames - 1):
        levels = []
        for m in range(count):
            centre = t * 1920 - 960 + m * 128 + 64
            assert centre - 128 == (t * count + m) * short - left  # the short frame the module takes
            spec = torch.fft.rfft(padded[:, centre - 128 + left:centre + 128 + left] * window)
            power = spec.abs() ** 2 + 1e-10
            levels.append(torch.stack([10 * torch.log10(power[:, a:b].mean(-1)) for a, b in zip(edges, edges[1:])], -1))
        expected = torch.stack(levels, 1).std(1, correction=0) / 10
        assert torch.allclose(got[:, t], expected.float(), atol=1e-3)
    with pytest.raises(ValueError, match="envelope features need more than 1024 samples"):
        feats(x[:, :1000], 1)
    with pytest.raises(ConfigError, match="envelope_fft"):
        EnvelopeFeatures({"hop": 1920, "envelope_bands": 16, "envelope_fft": 300})


def test_envelope_sees_noise_between_hits_that_band_levels_hardly_see():
    # 2 ms noise bursts every 20 ms; the same with noise filling the gaps, 10 dB below the
    # bursts' mean power over a frame (as a starved codec's noise fill between drum hits)
    torch.manual_seed(0)
    clicks = torch.zeros(1, SR)
    for start in range(0, SR - 96, 960):
        clicks[0, start:start + 96] = torch.randn(96) * 0.3
    filled = clicks + torch.randn(1, SR) * 0.3 * (0.1 * 0.1) ** 0.5
    config = {"hop": 1920, "envelope_bands": 16}
    backbone = build_backbone("compact", config)
    frames = SR // 1920 + 1
    env_clean, env_filled = (backbone.envelope(x, frames)[0, 2:-2] for x in (clicks, filled))
    level_clean, level_filled = (backbone.features(x)[0, 2:-2, :backbone.features.n_bands] * 25 for x in (clicks, filled))
    assert float((env_clean - env_filled).mean()) * 10 > 10.0  # the level spread falls by more than 10 dB
    assert abs(float((level_filled - level_clean).mean())) < 1.0  # the 40 ms band levels rise by under 1 dB
    assert backbone.project.in_features == 2 * backbone.features.n_bands + env_clean.shape[-1]


def test_shapes_registry_and_padding():
    assert "compact" in list_backbones()
    bb = build_backbone("compact", {"blocks": 3, "hidden": 32, "dilations": [1, 2, 4], "downsample_after": [1]})
    assert bb.sample_rate == SR and bb.num_hidden_states == 4 and bb.hidden_size == 32
    x = torch.randn(2, SR) * 0.1
    states = bb(x)
    assert states.shape == (4, 2, SR // 960 + 1, 32)
    lengths = torch.tensor([SR, SR // 2])
    assert bb.frame_lengths(lengths).tolist() == [51, 26]
    # padding changes only the frames next to the end; the masked mean ignores padded frames
    content = torch.randn(1, 3 * SR) * 0.1
    padded = torch.cat([content, torch.zeros(1, SR)], 1)
    with torch.no_grad():
        alone, with_pad = bb(content), bb(padded)
        assert torch.allclose(alone[:, :, :-40], with_pad[:, :, : alone.shape[2] - 40], atol=1e-4)
        net = DeepaqNet(bb, finetune="full").eval()
        e_alone = net.embed(content)
        e_masked = net.embed(padded, torch.tensor([3 * SR]))
        e_unmasked = net.embed(padded)
    assert (e_masked - e_alone).norm() < 0.5 * (e_unmasked - e_alone).norm()


def test_unknown_setting_is_a_config_error():
    with pytest.raises(ConfigError, match="widht"):
        build_backbone("compact", {"widht": 3})


def test_default_size_and_checkpoint_round_trip(tmp_path):
    net = DeepaqNet(build_backbone("compact"), finetune="full", info={"model_id": "test-compact", "version": "0"}).eval()
    params = sum(p.numel() for p in net.parameters())
    assert params * 4 < 10_000_000  # float32 weights under 10 MB
    save_model(net, tmp_path / "ckpt")
    again = load_model(tmp_path / "ckpt").eval()
    x = torch.randn(1, SR) * 0.1
    with torch.no_grad():
        assert torch.allclose(net.embed(x), again.embed(x), atol=1e-6)
    assert again.backbone.config_dict() == {**DEFAULTS}


def test_shipped_default_model_is_small_and_ranks_a_real_clip():
    """The built-in model: < 10 MB, the compact backbone, and it ranks codec damage on the bundled CC0 clip."""
    from deepaq.commands.demo import ASSET
    from deepaq.models.checkpoint import WEIGHTS_DIR

    folder = WEIGHTS_DIR / "deepaq-compact"
    if not (folder / "config.json").is_file():
        pytest.skip("the default model is not trained yet (src/deepaq/weights/deepaq-compact)")
    assert (folder / "model.safetensors").stat().st_size < 10_000_000
    assert (folder / "MODEL_CARD.md").is_file()
    net = load_model("deepaq-compact")
    assert net.backbone.name == "compact" and net.sample_rate == SR

    from deepaq.audio import load_audio
    from deepaq.codecs import degrade, lowpass

    clean, _ = load_audio(ASSET, sample_rate=SR, mono=False)
    versions = {"opus 8": degrade(clean, SR, "opus", 8), "opus 32": degrade(clean, SR, "opus", 32),
                "opus 128": degrade(clean, SR, "opus", 128), "lowpass 3.5k": lowpass(clean, SR, 3500)}
    with torch.no_grad():
        ref = net.embed(torch.from_numpy(clean.mean(0, keepdims=True)))
        dist = {k: float((net.embed(torch.from_numpy(v.mean(0, keepdims=True))) - ref).norm()) for k, v in versions.items()}
    assert dist["opus 8"] > dist["opus 32"] > dist["opus 128"]
    assert dist["lowpass 3.5k"] > dist["opus 128"]


def test_shipped_weights_are_what_the_shipped_config_trains():
    """configs/deepaq-compact.toml (the command in the model card) and the shipped folder agree:
    version, time parts, distance, losses and optimiser as stored by the trainer."""
    import json
    from pathlib import Path

    from deepaq.models.checkpoint import WEIGHTS_DIR
    from deepaq.train import DEFAULTS, load_config

    folder = WEIGHTS_DIR / "deepaq-compact"
    if not (folder / "config.json").is_file():
        pytest.skip("the default model is not trained yet (src/deepaq/weights/deepaq-compact)")
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "deepaq-compact.toml")
    stored = json.loads((folder / "config.json").read_text())
    info = stored["info"]
    assert stored["version"] == info["version"] == config["model"]["version"]
    assert info.get("segments", 1) == config["model"]["segments"]
    assert info.get("distance", "l2") == config["model"]["distance"]
    assert info["window_seconds"] == config["data"]["window_seconds"]
    # loss options added after the weights were trained count with their defaults (all off)
    stored_loss = {**{k: v for k, v in DEFAULTS["loss"].items() if k not in info["training"]["loss"]},
                   **info["training"]["loss"]}
    assert {"loss": stored_loss, "optim": info["training"]["optim"]} == {"loss": config["loss"], "optim": config["optim"]}


REGIONS = {"n_bands": 40, "hidden": 24, "blocks": 3, "dilations": [1, 2], "downsample_after": [2],
           "region_edges_hz": [2000, 8000]}


def test_each_region_embeds_only_its_own_bands():
    # region_edges_hz cuts the spectrum into regions whose channels (and embedding part) see
    # only their own bands: changing the features above 8 kHz moves only the last third
    torch.manual_seed(2)
    net = DeepaqNet(build_backbone("compact", REGIONS), embed_dim=12, finetune="full").eval()
    bb = net.backbone
    assert bb.channel_groups == 3
    edges = band_edges(2048, SR, 40, 1000.0)
    top = np.array([(lo + hi - 1) / 2 * SR / 2048 >= 8000 for lo, hi in zip(edges[:-1], edges[1:])] * 2)
    audio = torch.randn(2, SR // 2) * 0.1
    features = bb.features(audio)
    changed = features.clone()
    changed[..., torch.from_numpy(top)] += torch.randn_like(changed[..., torch.from_numpy(top)])
    original = bb.features.forward
    embeddings = []
    with torch.no_grad():
        for f in (features, changed):
            bb.features.forward = lambda waveform, f=f: f
            embeddings.append(net.embed(audio))
    bb.features.forward = original
    moved = (embeddings[0] - embeddings[1]).abs().amax(0)
    assert float(moved[:8].max()) == 0.0 and float(moved[8:].min()) > 0.0


def test_region_weights_stay_block_diagonal_through_training():
    torch.manual_seed(3)
    net = DeepaqNet(build_backbone("compact", REGIONS), embed_dim=12, finetune="full")
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(3):
        optimiser.zero_grad()
        net.embed(torch.randn(2, SR // 4)).square().sum().backward()
        optimiser.step()
    masked = [m for m in net.modules() if hasattr(m, "mask")]
    assert len(masked) == 1 + 2 * 3 + 1  # projection, up and down of each block, head
    with torch.no_grad():
        for m in masked:
            assert float((m.weight * (1 - m.mask)).abs().max()) == 0.0 < float(m.weight.abs().max())


@pytest.mark.parametrize("edges, problem", [([8000, 2000], "rise strictly"), ([30000], "rise strictly"),
                                            ([10, 20], "at least one band"), ([1000, 2000, 4000, 8000], "equal")])
def test_bad_regions_are_config_errors(edges, problem):
    with pytest.raises(ConfigError, match=problem):
        build_backbone("compact", {**REGIONS, "region_edges_hz": edges})
