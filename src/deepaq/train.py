"""Training loop: DeepaqNet + Rank-N-Contrast on a weak-label dataset.

One entry point, `train(config, out, device, resume)`, used by `deepaq train` on a laptop
CPU, one GPU (bf16 autocast) or several GPUs under torchrun (DDP when WORLD_SIZE > 1: each
rank takes every world_size-th batch; gradients are averaged; rank 0 validates, logs and
writes checkpoints).

Every epoch ends with validation: per clip, each degraded item's embedding distance to the
clean item's; reported as the Spearman correlation of -distance with ViSQOL (higher is
better), overall and per codec, and with bitrate within each clip and codec, to
`validation.csv` and TensorBoard. The value `[train] select` names (ViSQOL overall by
default) picks the best checkpoint and drives ReduceLROnPlateau (x0.99 after 10 epochs
without improvement) and early stopping.

Checkpoints (no pickle): `checkpoints/last/` after every epoch (and every
`checkpoint_every_steps`), `checkpoints/best/` at each new best. A checkpoint folder is a model
folder (model.safetensors + config.json, see deepaq.models.checkpoint) plus
`training_state.safetensors` (optimizer tensors, RNG states) and `training_state.json`
(step, epoch, position in the epoch, scheduler, optimizer groups, the training config).
`--resume` restores all of it and skips the batches already done, so a single-process run
continues exactly as if it had not stopped (under DDP every rank restores rank 0's RNG
state, so only dropout masks differ from an uninterrupted run).
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import random
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepaq.errors import ConfigError
from deepaq.models.distance import DISTANCES, model_distance

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# Every hyper-parameter and its default (the paper's where it gives one).
DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {
        "backbone": "mert",
        "weights": "m-a-p/MERT-v1-95M",  # local folder or HF id; "" = random initialisation
        "normalize": True,
        "hf_config": {},  # overrides of the backbone's architecture config (tests use a tiny one)
        "backbone_config": {},  # extra config for non-transformers backbones (e.g. compact)
        "embed_dim": 256,
        "finetune": "lora",  # lora | full | frozen
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05},
        "gradient_checkpointing": False,
        "model_id": "deepaq-mert",
        "version": "",  # the model's version in config.json; "" = the deepaq package version
        "window_overlap": 0.5,  # overlap of the scoring windows, stored with the model (Scorer's default)
        "distance": "l2",  # l2 | l1: the pair score's distance (deepaq.models.distance), stored with the model
        "segments": 1,  # time parts per window, each with its own embedding (deepaq.models.pooling)
        "train_segments": 0,  # the parts the training losses see; 0 = `segments` (validation and scoring use `segments`)
        "ladder_segments": 0,  # the parts the ladder term sees, from the same backbone pass; 0 = `train_segments`
    },
    "data": {
        "root": "",  # a dataset folder, or a list of folders built from the same corpus (their clips are shared)
        "train_split": "train",
        "validation_split": "validation",
        "window_seconds": 5.0,
        "random_crop": True,
        "clips_per_batch": 4,  # 4 clips x 8 items = batch 32, as in the paper
        "items_per_clip": 8,  # clean + 7 degraded items of the clip
        "group_by": "clip",  # clip: a group mixes the clip's codecs | codec: one codec of one clip per group
        "validation_batch_size": 32,
        "num_workers": 2,
        "ladders_per_batch": 0,  # whole ladders (build-data --ladders) added to each batch; 0 = ladder items mix in
    },
    "loss": {
        "temperature": 2.0,
        "bitrate_weight": 1.0,
        "visqol_weight": 1.0,
        "teachers": {},  # further teacher labels and their weights, e.g. {mms_2f = 1.0} (deepaq.data.teachers)
        "bitrate_groups": "none",  # none: bitrates ranked across the batch | codec: within each codec
        # weight of the pairwise ranking of distances-to-clean by each teacher (deepaq.losses.distance_rank_loss)
        "rank_weight": 0.0,
        "rank_scale": 1.0,
        # teacher labels whose committee target (mean percentile rank, deepaq.data.dataset.committee_target)
        # the ranking term ranks by instead of by each teacher; [] = each teacher
        "committee": [],
        "ladder_weight": 0.0,  # the same ranking within each ladder by its known order (deepaq.degradations.ladders)
        # with [model] ladder_segments != train_segments: a second ladder term on the training
        # embeddings (whole windows), so the ladders are ranked in both views
        "ladder_window_weight": 0.0,
        "distance": "",  # the distance the two ranking terms rank ("": the model's pair distance)
        # weight of the same ranking of each item's mean distance to the batch's other clips'
        # clean items (the NMR distance, deepaq.losses.nmr_rank_loss), by the ranking term's labels
        "nmr_weight": 0.0,
    },
    "optim": {
        "lr": 1e-4,
        "weight_decay": 0.01,
        "betas": [0.9, 0.999],
        "grad_accum": 1,
        "grad_clip": 0.0,  # 0 = no clipping
        "plateau_factor": 0.99,
        "plateau_patience": 10,
        "early_stopping_patience": 0,  # epochs without improvement; 0 = never stop early
    },
    "train": {
        "max_epochs": 100,
        "max_steps": 0,  # optimizer steps; 0 = no limit
        "checkpoint_every_steps": 0,  # 0 = only at the end of each epoch
        "precision": "auto",  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
        "validate_at_start": True,  # log the untrained model's validation as epoch -1
        # validation measure that picks the best checkpoint: overall (vs ViSQOL) | bitrate | a teacher's
        # name (Spearman vs that label over all clips) | teachers (the mean over the teachers) | ladders
        "select": "overall",
        # a teacher label (e.g. "mms_2f", 0-100) the distance is mapped onto for `quality`: a monotone
        # MLP fitted on the validation items, saved as mapping.json beside the best weights; "" = none
        "quality_scale": "",
        "seed": 0,
        "out": "runs/deepaq-mert",
    },
}


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a TOML training config over DEFAULTS; unknown sections or keys are errors."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    return merge_config(raw, str(path))


def merge_config(raw: dict, source: str = "<config>") -> dict[str, dict[str, Any]]:
    """DEFAULTS overridden by `raw`, checked for unknown keys and basic ranges."""
    config = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if section not in config or not isinstance(values, dict):
            raise ConfigError(f"{source}: unknown section [{section}] (known: {', '.join(config)})")
        for key, value in values.items():
            if key not in config[section]:
                raise ConfigError(f"{source}: unknown key {key!r} in [{section}]")
            if key == "lora":
                value = {**config[section]["lora"], **value}
            config[section][key] = value
    if config["model"]["finetune"] not in ("lora", "full", "frozen"):
        raise ConfigError(f"{source}: [model] finetune must be lora, full or frozen")
    if config["model"]["distance"] not in DISTANCES:
        raise ConfigError(f"{source}: [model] distance must be one of {', '.join(DISTANCES)}")
    if config["loss"]["distance"] not in ("", *DISTANCES):
        raise ConfigError(f"{source}: [loss] distance must be empty or one of {', '.join(DISTANCES)}")
    for section in ("model", "loss"):
        if config[section]["distance"] == "regions" and not config["model"]["backbone_config"].get("region_edges_hz"):
            raise ConfigError(f"{source}: [{section}] distance \"regions\" needs backbone_config region_edges_hz")
    for key, least in (("segments", 1), ("train_segments", 0), ("ladder_segments", 0)):
        value = config["model"][key]
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"{source}: [model] {key} must be an integer >= {least}")
    if config["train"]["precision"] not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"{source}: [train] precision must be auto, bf16 or fp32")
    if config["data"]["group_by"] not in ("clip", "codec"):
        raise ConfigError(f"{source}: [data] group_by must be clip or codec")
    teachers = config["loss"]["teachers"]
    if not isinstance(teachers, dict) or not all(isinstance(w, (int, float)) for w in teachers.values()):
        raise ConfigError(f"{source}: [loss] teachers must map label names to weights, e.g. {{mms_2f = 1.0}}")
    committee = config["loss"]["committee"]
    if not isinstance(committee, list) or not all(isinstance(name, str) for name in committee):
        raise ConfigError(f"{source}: [loss] committee must be a list of teacher label names, e.g. [\"mms_2f\", \"visqol_mos\"]")
    if config["loss"]["bitrate_groups"] not in ("none", "codec"):
        raise ConfigError(f"{source}: [loss] bitrate_groups must be none or codec")
    if config["train"]["quality_scale"] not in ("", "visqol", *teachers):
        raise ConfigError(f"{source}: [train] quality_scale must be '', visqol or one of the teachers {sorted(teachers)}")
    if config["train"]["select"] not in ("overall", "bitrate", "teachers", "ladders", *teachers):
        raise ConfigError(f"{source}: [train] select must be overall (Spearman vs ViSQOL), bitrate (within clip), "
                          f"teachers, ladders (steps ordered) or one of the teachers {sorted(teachers)}")
    if config["optim"]["grad_accum"] < 1:
        raise ConfigError(f"{source}: [optim] grad_accum must be >= 1")
    return config


def build_model(config: dict) -> "torch.nn.Module":
    """The untrained DeepaqNet a training config describes."""
    from deepaq.models import DeepaqNet, build_backbone

    m = config["model"]
    backbone_config = dict(m["backbone_config"])
    if m["backbone"] in ("mert", "wav2vec2"):
        backbone_config.update(normalize=m["normalize"], hf_config=m["hf_config"])
    backbone = build_backbone(m["backbone"], backbone_config, m["weights"] or None)
    if m["gradient_checkpointing"]:
        backbone.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    info = {"model_id": m["model_id"], "window_seconds": config["data"]["window_seconds"],
            "window_overlap": m["window_overlap"], "distance": m["distance"],
            "segments": m["segments"],
            **({"version": m["version"]} if m["version"] else {}),
            "training": {"loss": config["loss"], "optim": config["optim"]}}
    lora = {k: m["lora"][k] for k in ("r", "alpha", "dropout")}
    return DeepaqNet(backbone, embed_dim=m["embed_dim"], finetune=m["finetune"], lora=lora, info=info)


# ---------------------------------------------------------------- distributed set-up


class Dist:
    """Rank, world size and device; DDP through torch.distributed when WORLD_SIZE > 1."""

    def __init__(self, device: str):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        if device == "cuda":
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device(device)
        if self.world_size > 1:
            torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, value: float) -> float:
        """Rank 0's value on every rank."""
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch.distributed.broadcast(t, 0)
        return float(t.item())

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.world_size > 1:
            torch.distributed.destroy_process_group()


# ---------------------------------------------------------------- checkpoints


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_state = np.random.get_state()
    meta = {"python": _jsonable(random.getstate()),
            "numpy": [np_state[0], np_state[1].tolist(), *map(_jsonable, np_state[2:])]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    random.setstate(_tuples(meta["python"]))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: dict, config: dict) -> None:
    """Write model + training state into `folder` atomically (built beside it, then renamed)."""
    from safetensors.torch import save_file

    from deepaq.models import save_model

    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp)
    opt = optimizer.state_dict()
    tensors = {f"optimizer.{i}.{name}": value.detach().cpu().contiguous()
               for i, slots in opt["state"].items() for name, value in slots.items()}
    rng_tensors, rng_meta = _rng_state()
    save_file({**tensors, **rng_tensors}, str(tmp / "training_state.safetensors"))
    meta = {**state, "optimizer_param_groups": opt["param_groups"], "scheduler": scheduler.state_dict(),
            "rng": rng_meta, "config": config}
    (tmp / "training_state.json").write_text(json.dumps(meta, indent=1))
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(out: Path) -> Path | None:
    """The last complete checkpoint under `out` (a crash mid-rename leaves `last.old`)."""
    for name in ("last", "last.old"):
        folder = out / "checkpoints" / name
        if (folder / "training_state.json").is_file():
            return folder
    return None


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> dict:
    """Restore model, optimizer, scheduler and RNG states; returns the saved counters."""
    from safetensors.torch import load_file

    from deepaq.models.checkpoint import load_state

    load_state(model, folder / "model.safetensors")
    tensors = load_file(str(folder / "training_state.safetensors"))
    meta = json.loads((folder / "training_state.json").read_text())
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta.pop("optimizer_param_groups")})
    scheduler.load_state_dict(meta.pop("scheduler"))
    _set_rng_state(tensors, meta.pop("rng"))
    return meta


# ---------------------------------------------------------------- validation


def validation_metrics(records: list[dict], teachers: tuple[str, ...] = ()) -> dict[str, tuple[float, int]]:
    """Spearman of -distance-to-clean with the labels: {name: (rho, n)}.

    Each teacher label (records carry them under their names): over every degraded item of
    every clip with that label, so a distance must mean the same on every clip; "teachers":
    the mean of those.
    "overall" and one entry per codec: against ViSQOL over every degraded item with a ViSQOL
    label. "bitrate": against bitrate within each clip and codec, averaged over those groups
    (n = number of groups), the measure of the held-out benchmark and the one a dataset built
    with bitrate labels only can give. "ladders": the share of adjacent ladder steps whose
    better step lies strictly nearer the clean item (n = adjacent steps), where there are ladders.
    """
    from scipy.stats import spearmanr

    def rho(score: list[float], label: list[float]) -> float:
        ok = len(score) >= 3 and len(set(score)) > 1 and len(set(label)) > 1
        return float(spearmanr(score, label).statistic) if ok else math.nan

    degraded = [r for r in records if r["codec"] != "clean"]
    labelled = [r for r in degraded if math.isfinite(r["visqol"])]
    groups = {"overall": labelled}
    for r in labelled:
        groups.setdefault(r["codec"], []).append(r)
    result = {name: (rho([-r["distance"] for r in rows], [r["visqol"] for r in rows]), len(rows))
              for name, rows in groups.items()}
    by_clip: dict[tuple[str, str], list[dict]] = {}
    for r in degraded:
        if math.isfinite(r["bitrate"]):
            by_clip.setdefault((r["clip_id"], r["codec"]), []).append(r)
    rhos = [rho([-r["distance"] for r in rows], [r["bitrate"] for r in rows]) for rows in by_clip.values()]
    rhos = [v for v in rhos if not math.isnan(v)]
    result["bitrate"] = (sum(rhos) / len(rhos) if rhos else math.nan, len(rhos))
    for name in teachers:
        rows = [r for r in degraded if math.isfinite(r[name])]
        result[name] = (rho([-r["distance"] for r in rows], [r[name] for r in rows]), len(rows))
    if teachers:
        result["teachers"] = (float(np.mean([result[t][0] for t in teachers])), len(degraded))
    ladders: dict[str, list[dict]] = {}
    for r in degraded:
        if r.get("ladder"):
            ladders.setdefault(r["ladder"], []).append(r)
    ordered = []
    for rows in ladders.values():
        d = [r["distance"] for r in sorted(rows, key=lambda r: r["ladder_step"])]
        ordered += [better < worse for worse, better in zip(d, d[1:])]
    if ordered:
        result["ladders"] = (float(np.mean(ordered)), len(ordered))
    return result


@torch.no_grad()
def validate(model, loader, device: torch.device, autocast, teachers: tuple[str, ...] = ()
             ) -> tuple[dict[str, tuple[float, int]], list[dict]]:
    """Embed every validation item and score distances to each clip's clean item: the
    measures of `validation_metrics` and the records (labels and distance per item)."""
    from tqdm import tqdm

    model.eval()
    items = []
    for batch in tqdm(loader, desc="validate", leave=False, dynamic_ncols=True):
        with autocast():
            emb = model.embed(batch["waveform"].to(device), batch["lengths"].to(device)).float().cpu()
        for i in range(emb.shape[0]):
            items.append({"clip_id": batch["clip_id"][i], "codec": batch["codec"][i],
                          "visqol": float(batch["visqol"][i]), "bitrate": float(batch["bitrate"][i]),
                          "ladder": batch["ladder"][i], "ladder_step": float(batch["ladder_step"][i]),
                          **{t: float(batch["teachers"][i, k]) for k, t in enumerate(teachers)},
                          "embedding": emb[i]})
    clean = {r["clip_id"]: r["embedding"] for r in items if r["codec"] == "clean"}
    distance = model_distance(model)
    records = [{**r, "distance": float(distance(r["embedding"] - clean[r["clip_id"]], torch.linalg.vector_norm))}
               for r in items if r["clip_id"] in clean]
    model.train()
    return validation_metrics(records, teachers), records


def fit_quality_mapping(records: list[dict], label: str):
    """The monotone MLP from distance to `label` over the validation items that carry it."""
    from deepaq.mapping import fit_mapping

    rows = [r for r in records if math.isfinite(r[label])]
    return fit_mapping([r["distance"] for r in rows], [r[label] for r in rows], "mlp")


def _describe(metrics: dict[str, tuple[float, int]], teachers: tuple[str, ...] = ()) -> str:
    """One line of validation measures: Spearman(-distance, ViSQOL) overall and per codec, then bitrate."""
    visqol = ", ".join(f"{c} {rho:.3f}" for c, (rho, _) in metrics.items()
                       if c not in ("bitrate", "teachers", "ladders", *teachers))
    line = f"Spearman(-distance, ViSQOL) {visqol}; within clip vs bitrate {metrics['bitrate'][0]:.4f}"
    line += "".join(f"; vs {t} {metrics[t][0]:.4f}" for t in teachers)
    return line + (f"; ladder steps ordered {metrics['ladders'][0]:.4f}" if "ladders" in metrics else "")


# ---------------------------------------------------------------- logging


class Logs:
    """train_log.csv (per optimizer step), validation.csv (per epoch and codec), TensorBoard."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        self.out = out
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tensorboard"))

    def _append(self, name: str, row: dict) -> None:
        path = self.out / name
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def step(self, row: dict) -> None:
        if self.enabled:
            self._append("train_log.csv", row)
            for key in ("loss", "loss_visqol", "loss_bitrate", "lr"):
                self.tb.add_scalar(f"train/{key}", row[key], row["step"])

    def validation(self, epoch: int, step: int, metrics: dict[str, tuple[float, int]]) -> None:
        if self.enabled:
            for codec, (rho, n) in metrics.items():
                self._append("validation.csv", {"epoch": epoch, "step": step, "codec": codec, "spearman": rho, "n": n})
                self.tb.add_scalar(f"validation/spearman_{codec}", rho, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ---------------------------------------------------------------- the loop


def _codes(names: list[str]) -> torch.Tensor:
    """One integer per distinct name of a batch (codecs: the bitrate term's groups; clips)."""
    index = {c: k for k, c in enumerate(sorted(set(names)))}
    return torch.tensor([index[c] for c in names])


def _loaders(config: dict, sample_rate: int, dist: Dist):
    from torch.utils.data import DataLoader

    from deepaq.data.dataset import ClipBatchSampler, ManifestDataset, collate

    d, seed = config["data"], config["train"]["seed"]
    teachers, committee = tuple(config["loss"]["teachers"]), tuple(config["loss"]["committee"])
    train_set = ManifestDataset(d["root"], d["train_split"], sample_rate, d["window_seconds"], d["random_crop"], seed,
                                teachers, committee)
    val_set = ManifestDataset(d["root"], d["validation_split"], sample_rate, d["window_seconds"], False, seed, teachers)
    sampler = ClipBatchSampler(train_set.clip_ids, train_set.is_clean, d["clips_per_batch"], d["items_per_clip"],
                               shuffle=True, seed=seed, rank=dist.rank, world_size=dist.world_size,
                               subgroups=train_set.codecs if d["group_by"] == "codec" else None,
                               ladders=train_set.ladders, ladders_per_batch=d["ladders_per_batch"])
    val_loader = DataLoader(val_set, batch_size=d["validation_batch_size"], collate_fn=collate,
                            num_workers=d["num_workers"], generator=torch.Generator().manual_seed(seed))
    return train_set, sampler, val_loader


# the libraries that code, degrade, resample, label and read the data, and the one that trains
DATA_LIBRARIES = ("av", "numpy", "scipy", "soxr", "soundfile", "pandas", "torch")


def _library_versions() -> dict[str, str]:
    """Installed versions of DATA_LIBRARIES: a rebuilt dataset that moved often moved with them."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {name: installed(name) for name in DATA_LIBRARIES}


def train(config: dict, out: str | Path, device: str = "cpu", resume: bool = False) -> dict:
    """Train per `config`, writing logs and checkpoints to `out`; returns the final summary."""
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from deepaq.data.dataset import collate
    from deepaq.losses import deepaq_loss
    from deepaq.models import count_parameters

    if not config["data"]["root"]:
        raise ConfigError("[data] root (the dataset folder) is not set: give it in the config or with --data")
    out = Path(out)
    checkpoint = find_checkpoint(out)
    if checkpoint is not None and not resume:
        raise ConfigError(f"{out}: holds a checkpoint already; pass --resume to continue it, or choose another --out")
    dist = Dist(device)
    t, o = config["train"], config["optim"]
    torch.manual_seed(t["seed"])
    random.seed(t["seed"])
    np.random.seed(t["seed"])
    model = build_model(config).to(dist.device)  # the same initial weights on every rank
    torch.manual_seed(t["seed"] + dist.rank)  # but each rank its own dropout masks
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"], betas=tuple(o["betas"]))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=o["plateau_factor"],
                                                           patience=o["plateau_patience"])
    state = {"epoch": 0, "batch_in_epoch": 0, "step": 0, "best": -math.inf, "best_epoch": -1, "bad_epochs": 0}
    if resume and checkpoint is not None:
        state.update({k: v for k, v in load_checkpoint(checkpoint, model, optimizer, scheduler).items() if k in state})
    train_set, sampler, val_loader = _loaders(config, model.sample_rate, dist)
    if len(sampler) == 0:
        raise ConfigError(f"{config['data']['root']}: too few training clips for one batch of "
                          f"{config['data']['clips_per_batch']} clips per process")
    net, distance = model, model_distance(model, config["loss"]["distance"])
    train_segments = config["model"]["train_segments"] or model.segments
    ladder_segments = config["model"]["ladder_segments"] or train_segments
    # one head pass when the ladder term sees the same parts: the default trains bit for bit as before
    part_counts = (train_segments,) if ladder_segments == train_segments else (train_segments, ladder_segments)
    if dist.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dist.device.index] if device == "cuda" else None)
    bf16 = t["precision"] == "bf16" or (t["precision"] == "auto" and dist.device.type == "cuda")

    def autocast():
        return torch.autocast(dist.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        count = count_parameters(model)
        print(f"deepaq train: {count.trainable:,} of {count.total:,} parameters trainable ({100 * count.share:.2f} %), "
              f"{dist.world_size} process(es) on {dist.device}, {'bf16' if bf16 else 'fp32'}")
        data = {"train": {"items": len(train_set), "fingerprint": train_set.fingerprint()},
                "validation": {"items": len(val_loader.dataset), "fingerprint": val_loader.dataset.fingerprint()}}
        (out / "data.json").write_text(json.dumps({**data, "libraries": _library_versions()}, indent=2) + "\n")
        print("data: " + "; ".join(f"{split} {d['items']:,} items, fingerprint {d['fingerprint']}" for split, d in data.items()))
    logs = Logs(out, dist.main)
    if t["validate_at_start"] and state["step"] == 0 and dist.main:
        metrics, _ = validate(model, val_loader, dist.device, autocast, tuple(config["loss"]["teachers"]))
        logs.validation(-1, 0, metrics)
        print(f"untrained: validation {_describe(metrics, tuple(config['loss']['teachers']))}")
    accum, loss_cfg = o["grad_accum"], config["loss"]
    teachers = dict(loss_cfg["teachers"])
    stop = False
    model.train()
    while state["epoch"] < t["max_epochs"] and not stop:
        epoch = state["epoch"]
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        batches = list(sampler)[state["batch_in_epoch"]:]
        loader = DataLoader(train_set, batch_sampler=batches, collate_fn=collate,
                            num_workers=config["data"]["num_workers"],
                            generator=torch.Generator().manual_seed(t["seed"] + epoch))
        bar = tqdm(loader, desc=f"epoch {epoch}", disable=not dist.main, dynamic_ncols=True,
                   initial=state["batch_in_epoch"], total=len(sampler))
        for batch in bar:
            state["batch_in_epoch"] += 1
            sync = state["batch_in_epoch"] % accum == 0 or state["batch_in_epoch"] == len(sampler)
            with nullcontext() if sync or dist.world_size == 1 else net.no_sync():  # accumulate locally
                with autocast():
                    emb, *ladder_emb = net(batch["waveform"].to(dist.device), batch["lengths"].to(dist.device),
                                           segments=part_counts)
                teacher_labels = batch["teachers"].to(dist.device)
                loss, parts = deepaq_loss(emb.float(), batch["visqol"].to(dist.device),
                                          batch["bitrate"].to(dist.device), loss_cfg["temperature"],
                                          loss_cfg["bitrate_weight"],
                                          {t: (teacher_labels[:, k], w) for k, (t, w) in enumerate(teachers.items())},
                                          loss_cfg["visqol_weight"],
                                          _codes(batch["codec"]).to(dist.device) if loss_cfg["bitrate_groups"] == "codec" else None,
                                          _codes(batch["clip_id"]).to(dist.device), batch["is_clean"].to(dist.device),
                                          loss_cfg["rank_weight"], loss_cfg["rank_scale"],
                                          _codes(batch["ladder"]).to(dist.device), batch["ladder_step"].to(dist.device),
                                          loss_cfg["ladder_weight"], distance,
                                          ladder_emb[0].float() if ladder_emb else None,
                                          batch["committee"].to(dist.device) if loss_cfg["committee"] else None,
                                          loss_cfg["nmr_weight"], loss_cfg["ladder_window_weight"])
                (loss / accum).backward()
            if not sync:
                continue
            if o["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(params, o["grad_clip"])
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            lr = optimizer.param_groups[0]["lr"]
            logs.step({"step": state["step"], "epoch": epoch, "loss": float(loss.detach()), **parts, "lr": lr})
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{lr:.2e}")
            at_limit = bool(t["max_steps"]) and state["step"] >= t["max_steps"]
            every = t["checkpoint_every_steps"]
            if (at_limit or (every and state["step"] % every == 0)) and state["batch_in_epoch"] < len(sampler):
                if dist.main:
                    save_checkpoint(out / "checkpoints" / "last", model, optimizer, scheduler, state, config)
                dist.barrier()
            if at_limit:
                stop = True
                break
        bar.close()
        if state["batch_in_epoch"] < len(sampler):
            break  # stopped inside the epoch at max_steps: the checkpoint above records where
        metrics, records = validate(model, val_loader, dist.device, autocast, tuple(teachers)) if dist.main else ({}, [])
        chosen = dist.broadcast(metrics.get(t["select"], (math.nan, 0))[0] if dist.main else 0.0)
        scheduler.step(chosen if not math.isnan(chosen) else -math.inf)
        improved = not math.isnan(chosen) and chosen > state["best"]
        if improved:
            state.update(best=chosen, best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state.update(epoch=epoch + 1, batch_in_epoch=0)
        if dist.main:
            logs.validation(epoch, state["step"], metrics)
            print(f"epoch {epoch}: validation {_describe(metrics, tuple(teachers))} (best checkpoint by {t['select']})")
            save_checkpoint(out / "checkpoints" / "last", model, optimizer, scheduler, state, config)
            if improved:
                save_checkpoint(out / "checkpoints" / "best", model, optimizer, scheduler, state, config)
                if t["quality_scale"]:
                    fit_quality_mapping(records, t["quality_scale"]).save(out / "checkpoints" / "best" / "mapping.json")
        dist.barrier()
        patience = o["early_stopping_patience"]
        if patience and state["bad_epochs"] >= patience:
            if dist.main:
                print(f"early stop: {patience} epochs without improvement")
            stop = True
    logs.close()
    dist.close()
    return state
