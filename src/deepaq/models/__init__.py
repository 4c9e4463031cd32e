"""Backbones, the DeePAQ embedding network and its checkpoint format."""

from deepaq.models.backbones import Backbone, build_backbone, list_backbones, register_backbone
from deepaq.models.checkpoint import load_model, save_model, shipped_models
from deepaq.models.deepaq_net import DeepaqNet, count_parameters

__all__ = [
    "Backbone",
    "DeepaqNet",
    "build_backbone",
    "count_parameters",
    "list_backbones",
    "load_model",
    "register_backbone",
    "save_model",
    "shipped_models",
]
