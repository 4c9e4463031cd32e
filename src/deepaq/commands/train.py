"""`deepaq train`: train a DeePAQ model from a TOML config (CPU, CUDA, or torchrun for DDP)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "train a DeePAQ model (MERT + LoRA + Rank-N-Contrast) from a TOML config; resumable"
EXAMPLE = (
    "deepaq train --config configs/deepaq-mert.toml --device cuda --out runs/mert\n"
    "  torchrun --nproc_per_node 4 -m deepaq train --config configs/deepaq-mert.toml --device cuda --out runs/mert\n"
    "  deepaq train --config configs/deepaq-mert.toml --device cuda --out runs/mert --resume"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="TOML training config (see configs/)")
    parser.add_argument("--out", type=Path, help="run folder for logs and checkpoints (default: [train] out)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default cpu)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last exactly")
    parser.add_argument("--data", type=Path, help="dataset folder, overriding [data] root")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimizer steps, overriding [train] max_steps")


def run(args: argparse.Namespace) -> int:
    from deepaq.train import load_config, train

    config = load_config(args.config)
    if args.data is not None:
        config["data"]["root"] = str(args.data)
    if args.max_steps is not None:
        config["train"]["max_steps"] = args.max_steps
    out = args.out or Path(config["train"]["out"])
    state = train(config, out, device=args.device, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(f"deepaq train: {state['step']} steps, {state['epoch']} epochs; best validation Spearman "
              f"{state['best']:.4f} (epoch {state['best_epoch']}); checkpoints in {out / 'checkpoints'}")
    return 0
