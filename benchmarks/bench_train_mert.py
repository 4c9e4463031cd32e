"""Time per training step and peak memory of full-size DeePAQ (MERT-v1-95M shape, random
weights) for each fine-tuning mode, on CPU or CUDA; prints a Markdown table.

Each configuration runs in a fresh subprocess so peak memory is its own (CPU: peak RSS of the
process; CUDA: torch.cuda.max_memory_allocated). A step = forward of the batch, the DeePAQ
loss (Rank-N-Contrast on ViSQOL + bitrate), backward and an AdamW step; the first step
(warm-up) is not timed. Audio is random noise: the cost does not depend on content.

Needs only torch, transformers and peft (no install of deepaq):
    PYTHONPATH=src nice -n 10 python benchmarks/bench_train_mert.py --device cpu --steps 2
    PYTHONPATH=src python benchmarks/bench_train_mert.py --device cuda --batch 32 --finetune lora,full,frozen
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time


def one(args: argparse.Namespace) -> dict:
    """Build the model, run warm-up + timed steps, return the measurements."""
    import torch

    from deepaq.losses import deepaq_loss
    from deepaq.models import DeepaqNet, build_backbone, count_parameters

    torch.manual_seed(0)
    device = torch.device(args.device)
    backbone = build_backbone("mert", {})  # full-size architecture, random weights
    if args.gradient_checkpointing:
        backbone.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = DeepaqNet(backbone, finetune=args.finetune).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    bf16 = args.precision == "bf16"
    samples = int(args.seconds * backbone.sample_rate)
    wave = 0.1 * torch.randn(args.batch, samples, device=device)
    visqol = torch.rand(args.batch, device=device) * 4 + 1
    bitrate = torch.tensor([float("inf") if i % 8 == 0 else 16.0 * (1 + i % 8) for i in range(args.batch)],
                           device=device)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            emb = model(wave)
        loss, _ = deepaq_loss(emb.float(), visqol, bitrate)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step()  # warm-up: allocations, kernel selection
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [step() for _ in range(args.steps)]
    if device.type == "cuda":
        peak_gb = torch.cuda.max_memory_allocated() / 2**30
        where = torch.cuda.get_device_name()
    else:
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    count = count_parameters(model)
    return {"finetune": args.finetune, "trainable": count.trainable, "share": count.share,
            "step_s": statistics.median(times), "min_s": min(times), "peak_gb": peak_gb, "device": where}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=4, help="items per step (default 4; the paper uses 32)")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio length per item (default 5 s)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step (default 3)")
    parser.add_argument("--finetune", default="lora", help="comma-separated modes: lora, full, frozen")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="auto: bf16 autocast on CUDA, fp32 on CPU")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single run, JSON out
    args = parser.parse_args()
    if args.precision == "auto":
        args.precision = "bf16" if args.device == "cuda" else "fp32"
    if args.one:
        print(json.dumps(one(args)))
        return
    rows = []
    for mode in args.finetune.split(","):
        cmd = [sys.executable, __file__, "--one", "--device", args.device, "--batch", str(args.batch),
               "--seconds", str(args.seconds), "--steps", str(args.steps), "--finetune", mode,
               "--precision", args.precision] + (["--gradient-checkpointing"] if args.gradient_checkpointing else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{mode}: failed\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"DeePAQ training step, MERT-v1-95M shape (random weights), batch {args.batch} x {args.seconds:g} s "
          f"at 24 kHz, {args.precision}{', gradient checkpointing' if args.gradient_checkpointing else ''}, "
          f"{args.steps} timed steps; device: {rows[0]['device']}\n")
    print("| fine-tuning | trainable params | share | median step (s) | fastest step (s) | peak memory (GiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['finetune']} | {r['trainable']:,} | {100 * r['share']:.2f} % | {r['step_s']:.2f} | "
              f"{r['min_s']:.2f} | {r['peak_gb']:.2f} |")
    print("\npeak memory: " + ("torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak RSS of the process"))


if __name__ == "__main__":
    main()
