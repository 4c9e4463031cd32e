"""DeePAQ inference without torch: a saved model folder run in plain numpy.

`load_numpy_model(folder)` reads the same config.json and model.safetensors as
`deepaq.models.load_model` and returns a `NumpyDeepaqNet` with the torch `DeepaqNet`'s
inference interface on numpy arrays:

    hidden_states(waveform [B, T])            -> [L, B, frames, H]
    pooled(waveform, lengths=None)            -> [B, segments, L * H]   states averaged over time parts
    embed(waveform, lengths=None)             -> [B, segments * embed_dim]
    sample_rate, info, embed_dim, num_hidden_states, hidden_size

Backbones with a numpy implementation are listed in `NUMPY_BACKBONES` (module imported only
when asked for). A model this module cannot run exactly (another backbone, a setting or a
tensor it does not know) raises `ModelError`, so the scorer falls back to torch rather than
compute something else. LoRA adapters are merged into their base weights on load
(W + alpha / r * B A, as peft computes them at inference).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from deepaq.errors import DeepaqError, ModelError
from deepaq.models.checkpoint import model_info, read_model_config, read_tensors, resolve_model_folder
from deepaq.models.groups import head_mask
from deepaq.models.pooling import part_scale, segment_count, segment_weights

# backbone name -> "module:class" of its numpy implementation: the class is built as
# `cls(config, weights)` and says which weights it needs with `cls.parameter_shapes(config)`
NUMPY_BACKBONES = {"compact": "deepaq.models.compact_numpy:CompactNumpy"}


def _resolve(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def has_numpy_backbone(name: str) -> bool:
    """Whether backbone `name` has a numpy implementation."""
    return name in NUMPY_BACKBONES


class NumpyDeepaqNet:
    """Backbone hidden states -> mean over time parts -> ReLU -> Linear (as `DeepaqNet`), in numpy."""

    def __init__(self, backbone, head_weight: np.ndarray, head_bias: np.ndarray, info: dict | None = None):
        self.backbone = backbone
        head_weight = np.asarray(head_weight, np.float32)
        groups = getattr(backbone, "channel_groups", 1)
        if groups > 1:  # the head's block-diagonal mask, as the torch model applies it
            head_weight = head_weight * head_mask(len(head_weight), backbone.num_hidden_states,
                                                  backbone.hidden_size, groups)
        self.head_t = np.ascontiguousarray(head_weight.T)
        self.head_bias = np.asarray(head_bias, np.float32)
        self.embed_dim = int(self.head_bias.shape[0])
        self.info = dict(info or {})
        self.segments = segment_count(self.info)
        expected = backbone.num_hidden_states * backbone.hidden_size
        if self.head_t.shape[0] != expected:
            raise ModelError(f"head input {self.head_t.shape[0]} does not match the backbone's {expected} features")

    @property
    def sample_rate(self) -> int:
        return self.backbone.sample_rate

    @property
    def num_hidden_states(self) -> int:
        return self.backbone.num_hidden_states

    @property
    def hidden_size(self) -> int:
        return self.backbone.hidden_size

    def hidden_states(self, waveform: np.ndarray) -> np.ndarray:
        """`[B, T]` -> `[L, B, frames, H]`."""
        return self.backbone(_as_batch(waveform))

    def pooled(self, waveform: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """`[B, T]` -> `[B, segments, L * H]`: each hidden state averaged over each time part."""
        waveform = _as_batch(waveform)
        states = self.backbone(waveform)  # [L, B, F, H]
        total = states.shape[2]
        frames = np.full(waveform.shape[0], total) if lengths is None else self.backbone.frame_lengths(lengths)
        # [1, B, K, F] @ [L, B, F, H] -> [L, B, K, H] (a batched matmul: 4x einsum's speed here)
        means = np.matmul(segment_weights(frames, total, self.segments)[None], states).transpose(1, 2, 0, 3)
        return np.ascontiguousarray(means).reshape(waveform.shape[0], self.segments, -1)

    def embed(self, waveform: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Quality embeddings `[B, segments * embed_dim]` (float32) of mono waveforms `[B, T]`."""
        x = np.maximum(self.pooled(waveform, lengths), 0)
        out = x @ self.head_t
        out += self.head_bias
        return out.reshape(x.shape[0], -1) * np.float32(part_scale(self.segments))

    __call__ = embed


def _as_batch(waveform: np.ndarray) -> np.ndarray:
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 2:
        raise ValueError(f"waveform must be [batch, samples], got shape {tuple(waveform.shape)}")
    return waveform


def merge_lora(state: dict[str, np.ndarray], lora: dict | None) -> dict[str, np.ndarray]:
    """Fold peft's `x.base_layer.*`, `x.lora_A.<adapter>.weight`, `x.lora_B.<adapter>.weight` into `x.*`."""
    merged = {k: v for k, v in state.items() if ".lora_" not in k and ".base_layer." not in k}
    for key, value in state.items():
        if ".base_layer." in key:
            merged[key.replace(".base_layer.", ".")] = value
    if not lora:
        return merged
    scale = float(lora["alpha"]) / float(lora["r"])
    for key in [k for k in state if ".lora_A." in k]:
        prefix = key.split(".lora_A.")[0]
        b = state[key.replace(".lora_A.", ".lora_B.")]
        merged[f"{prefix}.weight"] = (merged[f"{prefix}.weight"].astype(np.float64)
                                      + scale * (b.astype(np.float64) @ state[key].astype(np.float64))
                                      ).astype(np.float32)
    return merged


def numpy_model_from(config: dict, state: dict[str, np.ndarray], source: str | Path = "<model>") -> NumpyDeepaqNet:
    """A `NumpyDeepaqNet` from a checkpoint's config.json content and its tensors."""
    bb = config["backbone"]
    name = bb["name"]
    if not has_numpy_backbone(name):
        raise ModelError(f"{source}: backbone {name!r} has no numpy implementation (numpy runs: "
                         f"{', '.join(NUMPY_BACKBONES)}); it needs torch")
    if not bb.get("stored", True):
        raise ModelError(f"{source}: the backbone's weights are not in the checkpoint ({bb.get('weights')})")
    state = merge_lora(state, config.get("lora") if config.get("finetune") == "lora" else None)
    backbone_cfg = bb.get("config", {})
    cls = _resolve(NUMPY_BACKBONES[name])
    try:
        expected = cls.parameter_shapes(backbone_cfg)
    except DeepaqError as exc:
        raise ModelError(f"{source}: {exc}") from exc
    weights = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    head = {k: v for k, v in state.items() if not k.startswith("backbone.")}
    wrong = {k: v.shape for k, v in weights.items() if k in expected and tuple(v.shape) != expected[k]}
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    extra += sorted(set(head) - {"head.1.weight", "head.1.bias"})
    if missing or extra or wrong or "head.1.weight" not in head:
        raise ModelError(f"{source}: tensors do not fit the numpy {name} model (missing {missing[:5]}, "
                         f"unexpected {extra[:5]}, wrong shapes {dict(list(wrong.items())[:3])})")
    return NumpyDeepaqNet(cls(backbone_cfg, weights), head["head.1.weight"], head["head.1.bias"], model_info(config))


def load_numpy_model(name_or_path: str | Path) -> NumpyDeepaqNet:
    """Load a saved model folder (or a shipped model by name) for numpy inference."""
    from safetensors.numpy import load_file

    folder = resolve_model_folder(name_or_path)
    config = read_model_config(folder)
    state = read_tensors(folder / "model.safetensors", load_file)
    try:
        return numpy_model_from(config, state, folder / "config.json")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder / 'config.json'}: invalid model config ({exc})") from exc
