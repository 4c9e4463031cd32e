"""Transformers backbones: MERT-v1-95M (as a plain HubertModel) and wav2vec 2.0 base.

Weights come from a local folder (config.json + model.safetensors or pytorch_model.bin) or,
when the hub is reachable, a Hugging Face id that is first downloaded to the HF cache.
MERT needs no remote code: its config.json (model_type "mert_model") is converted to a
HubertConfig and its state dict loads into HubertModel; old `weight_g`/`weight_v` names of
the positional convolution are renamed to the parametrizations torch now uses.

Always forced, because training needs every hidden state and no random masking:
layerdrop = 0 (else fewer than L hidden states come back) and apply_spec_augment = False.

Input normalisation (`normalize`, default True): zero mean, unit variance per clip over its
valid samples, as Wav2Vec2FeatureExtractor does with do_normalize=True. MERT-v1-95M's
published preprocessor_config.json (used by the model card's example code) sets it; one
copy says false, so it is an explicit, stored option.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

from deepaq.errors import ModelError
from deepaq.models.backbones import Backbone, register_backbone

# MERT-v1-95M's architecture (HuBERT base shape), 24 kHz, 75 frames/s, 94,371,712 parameters.
MERT_V1_95M = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "conv_dim": [512] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "feat_proj_layer_norm": True,
    "do_stable_layer_norm": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
}
# wav2vec 2.0 base (facebook/wav2vec2-base): transformers' Wav2Vec2Config defaults, 16 kHz.
WAV2VEC2_BASE: dict = {}

FORCED = {"layerdrop": 0.0, "apply_spec_augment": False}
_MERT_UNSUPPORTED = ("feature_extractor_cqt", "deepnorm")


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{path}: missing (a backbone folder needs config.json)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    if str(raw.get("model_type", "")).lower() in ("mert_model", "mert"):
        for key in _MERT_UNSUPPORTED:
            if raw.get(key):
                raise ModelError(f"{path}: MERT option {key}=true has no HubertModel equivalent")
        raw = {k: v for k, v in raw.items() if k not in ("auto_map", "architectures", *_MERT_UNSUPPORTED)}
        raw["model_type"] = "hubert"
    return raw


def _read_state(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    st, bin_ = folder / "model.safetensors", folder / "pytorch_model.bin"
    try:
        if st.is_file():
            from safetensors.torch import load_file

            return load_file(str(st)), st
        if bin_.is_file():
            return torch.load(bin_, map_location="cpu", weights_only=True), bin_
    except Exception as exc:  # corrupt file, pickle with objects, truncated download
        path = st if st.is_file() else bin_
        raise ModelError(f"{path}: cannot read weights ({exc})") from exc
    raise ModelError(f"{folder}: no model.safetensors or pytorch_model.bin")


def _adapt_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Strip a task model's prefix (dropping its heads) and rename old weight-norm keys."""
    prefix = model.base_model_prefix + "."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    expected = set(model.state_dict())
    renamed = {}
    for key, value in state.items():
        for old, new in ((".weight_g", ".parametrizations.weight.original0"),
                         (".weight_v", ".parametrizations.weight.original1")):
            if key.endswith(old) and key not in expected and key[: -len(old)] + new in expected:
                key = key[: -len(old)] + new
        renamed[key] = value
    return renamed


def _resolve(weights: str | Path) -> Path:
    folder = Path(weights).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists() or str(weights).startswith((".", "/", "~")):
        raise ModelError(f"{weights}: not a folder with config.json and weights")
    try:  # a Hugging Face id: download config + weights only
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(weights), allow_patterns=["config.json", "*.safetensors", "*.bin"]))
    except Exception as exc:
        raise ModelError(
            f"{weights}: cannot download from the Hugging Face hub ({type(exc).__name__}); "
            "download it elsewhere and pass the local folder (see docs/training.md)"
        ) from exc


class HFBackbone(Backbone):
    """A transformers speech/music encoder returning all hidden states stacked."""

    def __init__(self, name: str, model: nn.Module, sample_rate: int, normalize: bool,
                 weights_source: str | None):
        super().__init__()
        self.name = name
        self.model = model
        self.sample_rate = sample_rate
        self.normalize = normalize
        self.weights_source = weights_source
        cfg = model.config
        if getattr(model, "masked_spec_embed", None) is not None:  # used only by SpecAugment, which is off
            model.masked_spec_embed.requires_grad_(False)
        self.num_hidden_states = cfg.num_hidden_layers + 1
        self.hidden_size = cfg.hidden_size

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`[B, T]` -> `[L, B, frames, H]`; `lengths` (valid samples per row) masks padding."""
        mask = None
        if lengths is not None:
            mask = torch.arange(waveform.shape[1], device=waveform.device)[None, :] < lengths[:, None]
        if self.normalize:
            waveform = normalize_clips(waveform, mask)
        out = self.model(waveform, attention_mask=None if mask is None else mask.long(),
                         output_hidden_states=True)
        return torch.stack(out.hidden_states, dim=0)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output frames for `lengths` input samples (the conv stack's arithmetic)."""
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths

    def config_dict(self) -> dict:
        hf = self.model.config.to_diff_dict()
        hf.pop("transformers_version", None)
        return {"normalize": self.normalize, "hf_config": hf}


def normalize_clips(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-7) -> torch.Tensor:
    """Zero mean, unit variance per row over its valid samples; padding stays zero."""
    if mask is None:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + eps)
    m = mask.to(x.dtype)
    n = m.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(dim=1, keepdim=True) / n
    var = (((x - mean) * m) ** 2).sum(dim=1, keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps) * m


def _build(name: str, config_cls: type, model_cls: type,
           defaults: dict, sample_rate: int, config: dict, weights: str | Path | None) -> HFBackbone:
    unknown = set(config) - {"normalize", "hf_config"}
    if unknown:
        raise ModelError(f"backbone {name!r}: unknown config keys {sorted(unknown)}")
    overrides = {**config.get("hf_config", {}), **FORCED}
    if weights is None:
        hf_config = config_cls.from_dict({**defaults, **overrides})
        model = model_cls(hf_config)
        source = None
    else:
        folder = _resolve(weights)
        hf_config = config_cls.from_dict({**_read_config(folder), **overrides})
        model = model_cls(hf_config)
        state, path = _read_state(folder)
        result = model.load_state_dict(_adapt_keys(state, model), strict=False)
        missing = [k for k in result.missing_keys if k != "masked_spec_embed"]  # unused at inference
        if missing or result.unexpected_keys:
            raise ModelError(f"{path}: does not match {model_cls.__name__} "
                             f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})")
        local = Path(weights).expanduser()
        source = str(local.resolve()) if local.is_dir() else str(weights)  # absolute folder or HF id
    return HFBackbone(name, model, sample_rate, bool(config.get("normalize", True)), source)


@register_backbone("mert")
def build_mert(config: dict, weights: str | Path | None) -> HFBackbone:
    """MERT-v1-95M (e.g. weights="m-a-p/MERT-v1-95M" or a local copy) through HubertModel, 24 kHz."""
    return _build("mert", HubertConfig, HubertModel, MERT_V1_95M, 24000, config, weights)


@register_backbone("wav2vec2")
def build_wav2vec2(config: dict, weights: str | Path | None) -> HFBackbone:
    """wav2vec 2.0 base (e.g. weights="facebook/wav2vec2-base") through Wav2Vec2Model, 16 kHz."""
    return _build("wav2vec2", Wav2Vec2Config, Wav2Vec2Model, WAV2VEC2_BASE, 16000, config, weights)
