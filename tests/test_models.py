"""Backbones, DeepaqNet and the checkpoint format, with random weights and fake checkpoints
written in the real on-disk formats (nothing is downloaded)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from deepaq.errors import ConfigError, ModelError
from deepaq.models import DeepaqNet, build_backbone, count_parameters, list_backbones, load_model, save_model
from deepaq.models.hf import normalize_clips

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "conv_dim": [16] * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2}


def tiny(name: str = "mert", **config) -> torch.nn.Module:
    return build_backbone(name, {"hf_config": TINY, **config})


def _audio(batch: int = 2, seconds: float = 0.3, sr: int = 24000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(seconds * sr), generator=g)


def _perturb_lora(model: DeepaqNet) -> None:
    """LoRA B starts at zero; give it values so adapters change the output."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)


def test_registry_lists_builtins_and_rejects_unknown():
    assert {"mert", "wav2vec2"} <= set(list_backbones())
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_backbone("nope")


def test_full_size_mert_counts_match_paper():
    backbone = build_backbone("mert")
    assert (backbone.sample_rate, backbone.num_hidden_states, backbone.hidden_size) == (24000, 13, 768)
    assert sum(p.numel() for p in backbone.parameters()) == 94_371_712
    model = DeepaqNet(backbone)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    head = sum(p.numel() for p in model.head.parameters())
    assert (lora, head) == (294_912, 2_556_160)
    count = count_parameters(model)
    assert count.trainable == lora + head
    assert count.total == 94_371_712 + lora + head
    assert round(100 * count.share, 2) == 2.93
    states = backbone(_audio(1, 0.2))
    assert states.shape == (13, 1, 14, 768)  # 0.2 s at 75 frames/s


def test_finetune_modes_set_trainable_parameters():
    full = count_parameters(DeepaqNet(tiny(), finetune="full"))
    assert full.trainable == full.total - TINY["hidden_size"]  # all but the unused SpecAugment vector
    frozen = DeepaqNet(tiny(), finetune="frozen")
    assert count_parameters(frozen).trainable == sum(p.numel() for p in frozen.head.parameters())
    frozen.train()
    assert frozen.head.training and not frozen.backbone.training
    with pytest.raises(ConfigError):
        DeepaqNet(tiny(), finetune="partial")


def test_embedding_shape_and_lengths():
    torch.manual_seed(0)
    model = DeepaqNet(tiny(), embed_dim=8).eval()
    x = _audio()
    with torch.no_grad():
        e = model.embed(x)
        assert e.shape == (2, 8)
        torch.testing.assert_close(model.embed(x, torch.full((2,), x.shape[1])), e)
        short = model.embed(x, torch.tensor([x.shape[1], x.shape[1] // 2]))
        torch.testing.assert_close(short[0], e[0])
        assert not torch.allclose(short[1], e[1])
    with pytest.raises(ValueError, match="batch, samples"):
        model.embed(x[0])


def test_embeddings_at_several_part_counts_from_one_pass_equal_separate_passes():
    torch.manual_seed(0)
    model = DeepaqNet(tiny(), embed_dim=8).eval()
    x = _audio()
    lengths = torch.tensor([x.shape[1], x.shape[1] // 2])
    with torch.no_grad():
        whole, parts = model(x, lengths, segments=(1, 4))
        torch.testing.assert_close(whole, model.embed(x, lengths, segments=1), rtol=0, atol=0)
        torch.testing.assert_close(parts, model.embed(x, lengths, segments=4), rtol=0, atol=0)
        assert parts.shape == (2, 4 * 8)


def test_input_normalisation_option():
    x = _audio() + 0.3
    mask = torch.arange(x.shape[1])[None, :] < torch.tensor([[x.shape[1]], [1000]])
    y = normalize_clips(x, mask)
    assert torch.all(y[1, 1000:] == 0)
    torch.testing.assert_close(y[1, :1000].mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1, :1000].std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0)
    torch.manual_seed(4)
    normed = tiny().eval()
    raw = tiny(normalize=False).eval()
    raw.load_state_dict(normed.state_dict())
    assert normed.config_dict()["normalize"] is True and raw.config_dict()["normalize"] is False
    with torch.no_grad():
        torch.testing.assert_close(normed(x), raw(normalize_clips(x)))


def _fake_mert_folder(folder, fmt: str) -> torch.nn.Module:
    """A MERT-style folder: model_type mert_model, auto_map, old weight_g/weight_v names."""
    torch.manual_seed(1)
    source = build_backbone("mert", {"hf_config": TINY})
    config = {**source.model.config.to_dict(), "model_type": "mert_model", "architectures": ["MERTModel"],
              "auto_map": {"AutoModel": "modeling_MERT.MERTModel"}, "feature_extractor_cqt": False,
              "deepnorm": False, "layerdrop": 0.1}
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    state = {}
    for k, v in source.model.state_dict().items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        state[k] = v.clone().contiguous()
    assert any(k.endswith("weight_g") for k in state)
    if fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    return source.eval()


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_fake_mert_folder_loads_exactly(tmp_path, fmt):
    source = _fake_mert_folder(tmp_path / "mert", fmt)
    loaded = build_backbone("mert", {}, weights=tmp_path / "mert").eval()
    assert loaded.model.config.layerdrop == 0.0 and loaded.model.config.apply_spec_augment is False
    assert loaded.num_hidden_states == 3
    x = _audio()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


def test_wav2vec2_task_checkpoint_prefix_and_heads(tmp_path):
    torch.manual_seed(2)
    source = tiny("wav2vec2").eval()
    assert source.sample_rate == 16000 and source.num_hidden_states == 3
    folder = tmp_path / "w2v"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(source.model.config.to_dict()))
    state = {f"wav2vec2.{k}": v.contiguous() for k, v in source.model.state_dict().items()}
    state["project_q.weight"] = torch.zeros(4, 4)  # a pre-training head: ignored
    save_file(state, str(folder / "model.safetensors"))
    loaded = build_backbone("wav2vec2", {}, weights=folder).eval()
    x = _audio(sr=16000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


def test_backbone_folder_errors(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        build_backbone("mert", {}, weights=tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "hubert", **TINY}))
    with pytest.raises(ModelError, match="no model.safetensors"):
        build_backbone("mert", {}, weights=tmp_path)
    save_file({"unrelated.weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelError, match="unexpected"):
        build_backbone("mert", {}, weights=tmp_path)


@pytest.mark.parametrize("mode", ["lora", "full", "frozen"])
def test_checkpoint_roundtrip_identical_embeddings(tmp_path, mode):
    torch.manual_seed(3)
    model = DeepaqNet(tiny(), embed_dim=8, finetune=mode, info={"model_id": "t", "window_seconds": 0.3})
    _perturb_lora(model)
    model.eval()
    save_model(model, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["backbone"]["stored"] and config["finetune"] == mode and config["sample_rate"] == 24000
    reloaded = load_model(tmp_path / "ckpt")
    assert not reloaded.training and reloaded.info["window_seconds"] == 0.3
    x = _audio()
    with torch.no_grad():
        torch.testing.assert_close(reloaded.embed(x), model.embed(x), rtol=0, atol=0)


def test_checkpoint_references_base_weights(tmp_path):
    _fake_mert_folder(tmp_path / "mert", "safetensors")
    model = DeepaqNet(build_backbone("mert", {}, weights=tmp_path / "mert"), embed_dim=8).eval()
    _perturb_lora(model)
    save_model(model, tmp_path / "ckpt")
    stored = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert stored and all("lora_" in k or k.startswith("head.") for k in stored)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["backbone"]["stored"] is False and config["backbone"]["weights"] == str(tmp_path / "mert")
    x = _audio()
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "ckpt").embed(x), model.embed(x), rtol=0, atol=0)


def test_load_model_errors(tmp_path):
    with pytest.raises(ModelError, match="no such model"):
        load_model("no-such-model")
    folder = tmp_path / "m"
    save_model(DeepaqNet(tiny(), embed_dim=8), folder)
    state = load_file(str(folder / "model.safetensors"))
    state.pop("head.1.weight")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelError, match="missing keys"):
        load_model(folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="safetensors"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="not a deepaq model"):
        load_model(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json"):
        load_model(folder)
