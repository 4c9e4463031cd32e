"""Backbone interface and registry.

A backbone maps a mono waveform batch at its own sample rate to all of its hidden states.
Backbones are looked up by name so a checkpoint's config.json can rebuild the right one;
a new backbone only needs a module that calls `register_backbone` and an entry in
`_BUILTIN_MODULES` (so `build_backbone` finds it without the caller importing it). A
built-in module is imported only when its backbone is asked for: the compact model never
pays for transformers.

Contract (every registered backbone is a `Backbone`):
    sample_rate: int          rate the waveform must have (Hz)
    num_hidden_states: int    L, how many hidden states forward returns
    hidden_size: int          H, width of each hidden state
    forward(waveform [B, T], lengths [B] | None) -> Tensor [L, B, frames, H]
    frame_lengths(lengths [B]) -> [B]   valid frames per item, so padded batches pool right
    config_dict() -> dict     JSON config that rebuilds the same architecture
    weights_source: str | None   where the base weights came from (local folder or HF id);
                                 None means a checkpoint must store them itself
    lora_target_modules: tuple[str, ...]   module names LoRA attaches to
    channel_groups: int       G equal groups of hidden channels kept apart up to the embedding (1: none)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from deepaq.errors import ConfigError, require

BackboneFactory = Callable[[dict, "str | Path | None"], "Backbone"]

_REGISTRY: dict[str, BackboneFactory] = {}
# Built-in backbone name -> the module that registers it on import.
_BUILTIN_MODULES = {"compact": "deepaq.models.compact", "mert": "deepaq.models.hf", "wav2vec2": "deepaq.models.hf"}


class Backbone(nn.Module):
    """Base class of every backbone: see the module docstring for the contract."""

    sample_rate: int
    num_hidden_states: int
    hidden_size: int
    weights_source: str | None = None
    lora_target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    channel_groups: int = 1  # > 1: hidden channels in groups the head keeps apart (deepaq.models.groups)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def config_dict(self) -> dict:
        raise NotImplementedError


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator: register `factory(config: dict, weights: path | id | None) -> Backbone`."""

    def decorate(factory: BackboneFactory) -> BackboneFactory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def _load_builtin(name: str) -> None:
    """Import the module of built-in backbone `name` (a missing extra raises MissingExtraError)."""
    module = _BUILTIN_MODULES.get(name)
    if module is None or name in _REGISTRY:
        return
    require(module, f"the {name} backbone", "train")


def list_backbones() -> list[str]:
    """Names of all built-in and registered backbones (nothing is imported)."""
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def build_backbone(name: str, config: dict | None = None, weights: str | Path | None = None) -> Backbone:
    """Build backbone `name` from `config` (overrides of its defaults).

    `weights` is a local folder or a Hugging Face id; None gives random weights of the same
    architecture (used by tests and by checkpoints that store the backbone themselves).
    """
    _load_builtin(name)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}")
    return _REGISTRY[name](dict(config or {}), weights)
