"""Scoring speed and memory on this machine's CPU.

1. Throughput: full-reference (FR) and NMR scoring of the real ViSQOL test pairs
   (../shared/data/visqol_testdata), cold (empty embedding cache) and warm (same cache):
   pairs per second and real-time factor (RTF = processing time / audio duration).
   Baseline of the ratio column: the cold run of the same mode, measured in this run.
2. Memory: peak resident memory of one FR pair of 10 and 60 minutes (48 kHz stereo WAV,
   real music tiled), each in a fresh process; the baseline is the same 10-minute pair
   loaded whole instead of streamed. Bounded memory = 60 min needs about what 10 min needs.

Model: the shipped default model (deepaq-compact) when present, else a randomly initialised
compact model of the default architecture (the table says which). The memory part uses a
small random compact model by default, since the question there is the pipeline, not the net.

    nice -n 10 .venv/bin/python benchmarks/bench_scoring.py             # both parts
    nice -n 10 .venv/bin/python benchmarks/bench_scoring.py --minutes 10 60 --skip-throughput
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
TESTDATA = ROOT.parent / "shared" / "data" / "visqol_testdata"
PAIRS = [("contrabassoon48_stereo", "contrabassoon48_stereo_24kbps_aac"), ("glock48_stereo", "glock48_stereo_48kbps_aac"),
         ("guitar48_stereo", "guitar48_stereo_64kbps_aac"), ("harpsichord48_stereo", "harpsichord48_stereo_96kbps_mp3"),
         ("moonlight48_stereo", "moonlight48_stereo_128kbps_aac"), ("ravel48_stereo", "ravel48_stereo_128kbps_opus"),
         ("sopr48_stereo", "sopr48_stereo_256kbps_aac"), ("steely48_stereo", "steely48_stereo_lp7"),
         ("strauss48_stereo", "strauss48_stereo_lp35")]
SMALL = {"n_fft": 512, "n_bands": 16, "hidden": 8, "blocks": 1, "dilations": [1], "downsample_after": []}


def random_model(folder: Path, config: dict, model_id: str) -> Path:
    import torch

    from deepaq.models import DeepaqNet, build_backbone, save_model

    torch.manual_seed(0)
    net = DeepaqNet(build_backbone("compact", config), finetune="full",
                    info={"model_id": model_id, "version": "random", "window_seconds": 5.0})
    return save_model(net, folder)


def pick_model(tmp: Path) -> tuple[Path, str]:
    shipped = ROOT / "src" / "deepaq" / "weights" / "deepaq-compact"
    if (shipped / "config.json").is_file():
        return shipped, "shipped deepaq-compact"
    return random_model(tmp / "random-compact", {}, "random-compact"), "random compact (default architecture)"


def _find(folder: Path, stem: str) -> Path:
    for suffix in (".wav", ".flac"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise SystemExit(f"{folder}: no {stem}.wav or .flac (see --testdata)")


def throughput(model: Path, testdata: Path, tmp: Path, batch_size: int, device: str) -> list[dict]:
    from deepaq.scoring import Scorer

    refs = [_find(testdata, r) for r, _ in PAIRS]
    degs = [_find(testdata, d) for _, d in PAIRS]
    audio_s = sum(sf.info(str(d)).duration for d in degs)
    bank_refs = [_find(testdata, n) for n in ("castanets48_stereo", "CA01_01")]  # content not among the degraded
    rows = []
    for mode in ("FR", "NMR"):
        cache = tmp / f"cache-{mode}"
        for state in ("cold", "warm"):
            scorer = Scorer(model, cache_dir=cache, batch_size=batch_size, device=device)
            bank = scorer.make_bank(bank_refs) if mode == "NMR" else None
            start = time.perf_counter()
            jobs = [(r, d) for r, d in zip(refs, degs)] if mode == "FR" else degs
            results = scorer.score_batch(jobs, nmr_bank=bank)
            wall = time.perf_counter() - start
            assert all(hasattr(r, "distance") for r in results), results
            rows.append({"mode": mode, "cache": state, "items": len(degs), "audio_s": audio_s, "wall_s": wall,
                         "hits": scorer.cache.hits, "misses": scorer.cache.misses})
    return rows


def make_long_pair(folder: Path, minutes: float) -> tuple[Path, Path]:
    """A reference of real music tiled to `minutes`, and a degraded copy: 12 ms later, low-passed."""
    from scipy.signal import butter, sosfilt, sosfilt_zi

    ref_path, deg_path = folder / f"ref_{minutes:g}min.wav", folder / f"deg_{minutes:g}min.wav"
    if ref_path.exists() and deg_path.exists():
        return ref_path, deg_path
    pieces = [sf.read(str(_find(TESTDATA, r)), dtype="float32")[0] for r, _ in PAIRS]
    total = int(minutes * 60 * 48000)
    sos = butter(8, 7000, fs=48000, output="sos")
    zi = np.repeat(sosfilt_zi(sos)[:, :, None], 2, axis=2) * 0
    delay = np.zeros((576, 2), np.float32)
    with sf.SoundFile(str(ref_path), "w", 48000, 2, "PCM_16") as ref, \
            sf.SoundFile(str(deg_path), "w", 48000, 2, "PCM_16") as deg:
        written, i = 0, 0
        while written < total:
            block = pieces[i % len(pieces)][: total - written]
            ref.write(block)
            low, zi = sosfilt(sos, block, axis=0, zi=zi)
            shifted = np.concatenate([delay, low.astype(np.float32)])
            deg.write(shifted[: len(block)])
            delay = shifted[len(block):]
            written += len(block)
            i += 1
    return ref_path, deg_path


def child_memory(model: str, ref: str, deg: str, stream_above_s: float) -> None:
    """Run in a fresh process: score one pair, print peak RSS and timings as JSON."""
    from deepaq.scoring import Scorer

    scorer = Scorer(model, cache_dir=False, stream_above_s=stream_above_s, batch_size=8)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = scorer.score(reference=ref, degraded=deg)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"base_mb": base, "peak_mb": peak, "wall_s": wall, "duration_s": result.duration_s,
                      "distance": result.distance, "windows": len(result.windows)}))


def memory(model: Path, folder: Path, minutes: list[float]) -> list[dict]:
    rows = []
    cases = [(m, "streamed", 300.0) for m in minutes] + [(min(minutes), "whole file (baseline)", float("inf"))]
    for m, how, threshold in cases:
        ref, deg = make_long_pair(folder, m)
        out = subprocess.run([sys.executable, __file__, "--child-memory", str(model), str(ref), str(deg), str(threshold)],
                             capture_output=True, text=True, check=True)
        rows.append({"minutes": m, "how": how, **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60], help="long-file lengths to measure")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="torch device of the throughput part (default: cpu)")
    parser.add_argument("--testdata", type=Path, default=TESTDATA, help="folder with the ViSQOL test pairs")
    parser.add_argument("--memory-model", help="model for the memory part (default: a small random compact)")
    parser.add_argument("--workdir", type=Path, help="where the long test files go (default: a temporary folder)")
    parser.add_argument("--child-memory", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        model, ref, deg, threshold = args.child_memory
        child_memory(model, ref, deg, float(threshold))
        return
    import torch

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = args.workdir or Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        print(f"CPU: {os.cpu_count()} cores visible, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"load average {os.getloadavg()[0]:.1f}")
        if not args.skip_throughput:
            model, what = pick_model(tmp)
            print(f"\nThroughput on {args.device}, batch {args.batch_size}, model: {what}; "
                  f"{len(PAIRS)} real pairs from {args.testdata.name}")
            print(f"{'mode':<5}{'cache':<6}{'items':>6}{'audio s':>9}{'wall s':>8}{'pairs/s':>9}{'RTF':>8}"
                  f"{'x real time':>12}{'vs cold':>9}{'hits':>7}{'misses':>7}")
            cold = {}
            for r in throughput(model, args.testdata, tmp, args.batch_size, args.device):
                cold.setdefault(r["mode"], r["wall_s"])
                print(f"{r['mode']:<5}{r['cache']:<6}{r['items']:>6}{r['audio_s']:>9.1f}{r['wall_s']:>8.2f}"
                      f"{r['items'] / r['wall_s']:>9.2f}{r['wall_s'] / r['audio_s']:>8.3f}"
                      f"{r['audio_s'] / r['wall_s']:>12.1f}{cold[r['mode']] / r['wall_s']:>8.1f}x"
                      f"{r['hits']:>7}{r['misses']:>7}")
        if not args.skip_memory:
            model = Path(args.memory_model) if args.memory_model else random_model(tmp / "small", SMALL, "small")
            what = args.memory_model or "small random compact"
            print(f"\nPeak memory of one FR pair (48 kHz stereo WAV), fresh process each, model: {what}")
            print(f"{'minutes':>8}  {'how':<22}{'base MB':>9}{'peak MB':>9}{'added MB':>10}{'wall s':>8}{'windows':>8}")
            rows = memory(model, tmp, sorted(args.minutes))
            for r in rows:
                print(f"{r['minutes']:>8g}  {r['how']:<22}{r['base_mb']:>9.0f}{r['peak_mb']:>9.0f}"
                      f"{r['peak_mb'] - r['base_mb']:>10.0f}{r['wall_s']:>8.1f}{r['windows']:>8}")
            streamed = [r for r in rows if r["how"] == "streamed"]
            baseline = rows[-1]
            if len(streamed) > 1:
                print(f"peak ratio {streamed[-1]['minutes']:g} min / {streamed[0]['minutes']:g} min (streamed): "
                      f"{streamed[-1]['peak_mb'] / streamed[0]['peak_mb']:.2f}")
            print(f"peak ratio whole file / streamed at {baseline['minutes']:g} min: "
                  f"{baseline['peak_mb'] / streamed[0]['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
