"""Model checkpoints: a folder with `model.safetensors` (weights, no pickle) + `config.json`.

What the weights file holds:
  * backbone weights stored (random-init backbones, compact models, `full` fine-tuning):
    the whole DeepaqNet state dict; LoRA stays unmerged (base_layer + lora_A/lora_B keys),
    so a reloaded model is the very same module tree and training can resume from it.
  * backbone loaded from a folder or HF id and not fine-tuned in full (`lora`, `frozen`):
    only the trained tensors (LoRA adapters + head); config.json references the base
    weights in backbone.weights, and loading rebuilds the backbone from there first.

config.json:
  format, format_version, model_id, version, sample_rate, window_seconds,
  backbone {name, config, weights, stored}, head {input_dim, embed_dim}, finetune, lora, info.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from deepaq.errors import DeepaqError, ModelError
from deepaq.models.pooling import segment_count

if TYPE_CHECKING:  # torch is imported by the functions that build or save torch models
    import torch

    from deepaq.models.deepaq_net import DeepaqNet

FORMAT = "deepaq-model"
FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
REQUIRED = ("backbone", "head", "finetune")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _base_backbone_keys(model: DeepaqNet) -> set[str]:
    return {f"backbone.{k}" for k in model.backbone.state_dict() if "lora_" not in k}


def stores_backbone(model: DeepaqNet) -> bool:
    """Whether a checkpoint of `model` must hold the backbone's base weights itself."""
    return model.backbone.weights_source is None or model.finetune == "full"


def model_config(model: DeepaqNet) -> dict:
    """The config.json content describing `model` (architecture, mode, provenance)."""
    from deepaq import __version__

    info = dict(model.info)
    bb = model.backbone
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": info.get("model_id", f"deepaq-{getattr(bb, 'name', 'model')}"),
        "version": info.get("version", __version__),
        "sample_rate": bb.sample_rate,
        "window_seconds": info.get("window_seconds"),
        "backbone": {
            "name": getattr(bb, "name", type(bb).__name__),
            "config": bb.config_dict(),
            "weights": bb.weights_source,
            "stored": stores_backbone(model),
        },
        "head": {"input_dim": bb.num_hidden_states * bb.hidden_size, "embed_dim": model.embed_dim},
        "finetune": model.finetune,
        "lora": model.lora if model.finetune == "lora" else None,
        "info": info,
    }


def model_state(model: DeepaqNet) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint stores (see module docstring), detached on CPU."""
    state = model.state_dict()
    if not stores_backbone(model):
        base = _base_backbone_keys(model)
        state = {k: v for k, v in state.items() if k not in base}
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_model(model: DeepaqNet, folder: str | Path) -> Path:
    """Write `model` to `folder` (created) as model.safetensors + config.json, each atomically."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model_state(model)
    _atomic_write(folder / "model.safetensors", lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    text = json.dumps(model_config(model), indent=2, sort_keys=False, default=str)
    _atomic_write(folder / "config.json", lambda p: p.write_text(text + "\n"))
    return folder


def shipped_models() -> list[str]:
    """Names of the model folders shipped under deepaq/weights/."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model_folder(name_or_path: str | Path) -> Path:
    """A folder path as is, or the name of a shipped model under deepaq/weights/."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    shipped = WEIGHTS_DIR / str(name_or_path)
    if "/" not in str(name_or_path) and shipped.is_dir():
        return shipped
    known = ", ".join(shipped_models()) or "none"
    raise ModelError(f"{name_or_path}: no such model folder or shipped model (shipped: {known})")


# the NMR bank and head beside the weights (deepaq.scoring.bank.BANK_FILE, deepaq.models.nmr_head.FILE_NAME):
# no embedding depends on them
NOT_WEIGHTS = ("bank.safetensors", "nmr_head.safetensors")


def weights_hash(folder: str | Path) -> str:
    """Content hash (16 hex digits) of a model folder's config.json and weight files
    (*.safetensors, *.bin; not the NMR bank and head, `NOT_WEIGHTS`, which are made from the
    weights and checked against this hash): caches and reports keyed by it follow the
    weights, not the path."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in NOT_WEIGHTS
                   and (p.suffix in (".safetensors", ".bin") or p.name == "config.json"))
    if not files:
        raise ModelError(f"{folder}: no config.json or weight files")
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def read_model_config(folder: Path) -> dict:
    """config.json of a model folder, checked for the keys load_model needs."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{path}: missing (a model folder holds config.json + model.safetensors)")
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{path}: not a deepaq model config (format must be {FORMAT!r})")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{path}: format_version {config['format_version']} is newer than this deepaq reads")
    missing = [k for k in REQUIRED if k not in config]
    if missing or "name" not in config.get("backbone", {}):
        raise ModelError(f"{path}: missing keys {missing or ['backbone.name']}")
    try:
        segment_count(config.get("info", {}))
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
    return config


def model_info(config: dict) -> dict:
    """What a loaded model carries as `info`: config.json's info, its id, version and window."""
    return {**config.get("info", {}), "model_id": config.get("model_id"), "version": config.get("version"),
            "window_seconds": config.get("window_seconds")}


def build_from_config(config: dict, source: str | Path = "<config>") -> DeepaqNet:
    """An untrained DeepaqNet with the architecture and mode `config` describes."""
    from deepaq.models.backbones import build_backbone
    from deepaq.models.deepaq_net import DeepaqNet

    bb = config["backbone"]
    weights = None if bb.get("stored", True) else bb.get("weights")
    try:
        backbone = build_backbone(bb["name"], bb.get("config", {}), weights)
        return DeepaqNet(backbone, embed_dim=int(config["head"]["embed_dim"]), finetune=config["finetune"],
                         lora=config.get("lora"), info=model_info(config))
    except DeepaqError as exc:
        raise ModelError(f"{source}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{source}: invalid model config ({exc})") from exc


def read_tensors(path: Path, load_file: Callable[[str], dict]) -> dict:
    """The tensors of a model.safetensors, read by `load_file` (safetensors' torch or numpy
    loader), or ModelError naming the file."""
    if not path.is_file():
        raise ModelError(f"{path}: missing")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_state(model: DeepaqNet, path: Path) -> None:
    """Load a model.safetensors into `model`, checking that no tensor is missing or extra."""
    from safetensors.torch import load_file

    state = read_tensors(path, load_file)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise ModelError(f"{path}: tensors do not fit the configured model ({exc})") from exc
    allowed = set() if stores_backbone(model) else _base_backbone_keys(model)
    missing = [k for k in result.missing_keys if k not in allowed]
    if missing or result.unexpected_keys:
        raise ModelError(f"{path}: missing keys {missing[:5]} ({len(missing)}), "
                         f"unexpected keys {result.unexpected_keys[:5]} ({len(result.unexpected_keys)})")


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> DeepaqNet:
    """Load a saved model folder (or a shipped model by name) in eval mode on `device`."""
    folder = resolve_model_folder(name_or_path)
    config = read_model_config(folder)
    model = build_from_config(config, folder / "config.json")
    load_state(model, folder / "model.safetensors")
    return model.to(device).eval()
