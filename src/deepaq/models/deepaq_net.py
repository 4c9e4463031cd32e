"""The DeePAQ embedding network: backbone hidden states -> 256-d quality embedding.

Every hidden state is averaged over time (padding excluded when `lengths` is given), the
L averages are concatenated state by state (13 x 768 = 9,984 for MERT), then ReLU and a
Linear layer map them to the embedding. Quality = distance between embeddings. With
`info["segments"] = K` the average is taken over K time parts of the window, each part gets
its own embedding and the K embeddings are concatenated (`deepaq.models.pooling`).

Fine-tuning modes:
    lora    LoRA (peft) on the backbone's attention query/value projections + the head (paper)
    full    every parameter trains
    frozen  only the head trains; the backbone stays in eval mode (no dropout)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from deepaq.errors import ConfigError
from deepaq.models.backbones import Backbone
from deepaq.models.groups import head_mask
from deepaq.models.pooling import part_scale, segment_count, segment_weights

FINETUNE_MODES = ("lora", "full", "frozen")
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None}


class ParameterCount(NamedTuple):
    trainable: int
    total: int

    @property
    def share(self) -> float:
        """Trainable fraction of all parameters (0.0293 for the paper's set-up)."""
        return self.trainable / self.total if self.total else 0.0


class MaskedLinear(nn.Linear):
    """nn.Linear whose weight is held at zero outside a fixed 0/1 mask (`deepaq.models.groups`).

    The masked entries start at zero and get no gradient, so the stored weight is the one
    used; the kept entries start at nn.Linear's scale for their own (smaller) fan-in.
    """

    def __init__(self, in_features: int, out_features: int, mask: np.ndarray):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", torch.from_numpy(np.asarray(mask, np.float32)), persistent=False)
        fan_in = self.mask.sum(1, keepdim=True).clamp(min=1)
        with torch.no_grad():
            self.weight.mul_(self.mask * (in_features / fan_in).sqrt())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class DeepaqNet(nn.Module):
    """Backbone + mean pooling + ReLU + Linear; `embed(waveform)` gives `[B, embed_dim]`.

    `info` carries what a checkpoint must remember besides weights: model_id, version,
    window_seconds (and anything a scorer needs); it is saved into config.json.
    """

    def __init__(self, backbone: Backbone, embed_dim: int = 256, finetune: str = "lora",
                 lora: dict | None = None, info: dict | None = None):
        super().__init__()
        if finetune not in FINETUNE_MODES:
            raise ConfigError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
        unknown = set(lora or {}) - set(LORA_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown LoRA settings {sorted(unknown)}; known: {sorted(LORA_DEFAULTS)}")
        self.backbone = backbone
        self.embed_dim = embed_dim
        self.finetune = finetune
        self.lora = {**LORA_DEFAULTS, **(lora or {})}
        if self.lora["target_modules"] is None:
            self.lora["target_modules"] = list(backbone.lora_target_modules)
        self.info = dict(info or {})
        self.segments = segment_count(self.info)
        self.head = nn.Sequential(nn.ReLU(), self._head_linear(embed_dim))
        self._apply_finetune()

    def _head_linear(self, embed_dim: int) -> nn.Linear:
        """The head's Linear: block-diagonal where the backbone has channel groups."""
        inputs, groups = self.backbone.num_hidden_states * self.backbone.hidden_size, self.backbone.channel_groups
        if groups == 1:
            return nn.Linear(inputs, embed_dim)
        if embed_dim % groups or self.finetune == "lora":
            raise ConfigError(f"a backbone with {groups} channel groups needs embed_dim divisible by {groups} "
                              f"(got {embed_dim}) and no LoRA (got finetune {self.finetune!r})")
        return MaskedLinear(inputs, embed_dim, head_mask(embed_dim, self.backbone.num_hidden_states,
                                                         self.backbone.hidden_size, groups))

    def _apply_finetune(self) -> None:
        if self.finetune == "full":
            return
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        if self.finetune == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            cfg = LoraConfig(r=self.lora["r"], lora_alpha=self.lora["alpha"], lora_dropout=self.lora["dropout"],
                             target_modules=list(self.lora["target_modules"]), bias="none")
            inject_adapter_in_model(cfg, self.backbone)
            for name, p in self.backbone.named_parameters():
                p.requires_grad_("lora_" in name)

    @property
    def sample_rate(self) -> int:
        return self.backbone.sample_rate

    def train(self, mode: bool = True) -> "DeepaqNet":
        super().train(mode)
        if self.finetune == "frozen":
            self.backbone.eval()
        return self

    def pooled(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None,
               segments: int | None = None) -> torch.Tensor:
        """`[B, T]` -> `[B, segments, L * H]`: each hidden state averaged over each time part
        of its valid frames (`deepaq.models.pooling`; default: the model's own parts)."""
        return self._pool(*self._states(waveform, lengths), segments or self.segments)

    def _states(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The backbone's hidden states `[L, B, F, H]` and each item's valid frames (None: all)."""
        states = self.backbone(waveform, lengths)
        frames = None if lengths is None else self.backbone.frame_lengths(lengths).clamp(1, states.shape[2])
        return states, frames

    @staticmethod
    def _pool(states: torch.Tensor, frames: torch.Tensor | None, segments: int) -> torch.Tensor:
        """Hidden states `[L, B, F, H]` -> `[B, segments, L * H]` (see `pooled`)."""
        batch, total = states.shape[1], states.shape[2]
        if segments == 1:  # the whole window, summed as before parts existed: trainings stay bit-reproducible
            if frames is None:
                means = states.mean(dim=2)
            else:
                mask = (torch.arange(total, device=states.device)[None, :] < frames[:, None]).to(states.dtype)
                means = (states * mask[None, :, :, None]).sum(dim=2) / frames.to(states.dtype)[None, :, None]
            return means.transpose(0, 1).reshape(batch, 1, -1)
        valid = np.full(batch, total) if frames is None else frames.cpu().numpy()
        weights = torch.from_numpy(segment_weights(valid, total, segments)).to(states)
        means = torch.einsum("lbfh,bkf->bklh", states, weights)
        return means.reshape(batch, segments, -1)

    def embed(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None,
              segments: int | None = None) -> torch.Tensor:
        """Quality embeddings `[B, segments * embed_dim]` of mono waveforms `[B, T]` at
        `self.sample_rate`; `segments` overrides the model's time parts (training may use others)."""
        return self.embed_parts(waveform, lengths, (segments or self.segments,))[0]

    def embed_parts(self, waveform: torch.Tensor, lengths: torch.Tensor | None,
                    segments: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        """`embed` at each part count of `segments`, from one pass of the backbone (training
        losses that see whole windows and parts at once)."""
        if waveform.dim() != 2:
            raise ValueError(f"waveform must be [batch, samples], got shape {tuple(waveform.shape)}")
        states, frames = self._states(waveform, lengths)
        return tuple(self.head(self._pool(states, frames, k)).flatten(1) * part_scale(k) for k in segments)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None,
                segments: int | tuple[int, ...] | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """`embed`, or `embed_parts` where `segments` is a tuple (the one entry point DDP wraps)."""
        if isinstance(segments, tuple):
            return self.embed_parts(waveform, lengths, segments)
        return self.embed(waveform, lengths, segments)


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameter counts (share = trainable / total)."""
    params = list(model.parameters())
    return ParameterCount(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))
