"""Backbones, the DeePAQ embedding network and its checkpoint format.

Names are imported on first use: `deepaq.models.load_numpy_model` (numpy inference) never
imports torch, the rest of the package does.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Backbone": "deepaq.models.backbones",
    "build_backbone": "deepaq.models.backbones",
    "list_backbones": "deepaq.models.backbones",
    "register_backbone": "deepaq.models.backbones",
    "DeepaqNet": "deepaq.models.deepaq_net",
    "count_parameters": "deepaq.models.deepaq_net",
    "load_model": "deepaq.models.checkpoint",
    "save_model": "deepaq.models.checkpoint",
    "shipped_models": "deepaq.models.checkpoint",
    "NumpyDeepaqNet": "deepaq.models.numpy_net",
    "load_numpy_model": "deepaq.models.numpy_net",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepaq.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
