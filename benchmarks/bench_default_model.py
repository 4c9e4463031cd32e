"""The built-in default model (deepaq-compact) against ViSQOL v3, PEAQ Basic ODG and the 2f-model.

    python benchmarks/bench_default_model.py [--data ../shared/data/visqol_testdata] [--model deepaq-compact]
        [--seconds 6] [--metrics deepaq,visqol,peaq] [--cache work/bench] [--speed-only | --no-speed]

Accuracy, on held-out real music (the 10 clean references of the ViSQOL test data, never
used in training; first `--seconds` of each): every reference is coded by our codecs
(deepaq.codecs) with Opus, MP3 and AAC at 8..128 kbps (the training codecs), MP2 and AC-3 at
48..192 kbps (codecs never seen in training) and low-passed at 3.5 and 7 kHz. For each
metric it prints
  * Spearman between the metric (oriented so that higher = better) and the bitrate, within
    each codec and item, averaged per codec and over all (codec, item) groups;
  * Spearman against ViSQOL's MOS-LQO of the same pairs, over all coded pairs and per codec;
  * how often the 3.5 kHz low-pass is rated worse than the 7 kHz one.
Scores are cached in `--cache`/scores.csv (the deepaq rows keyed by a hash of the weights),
so an interrupted run resumes.

Speed: one 10 s stereo 48 kHz pair read from WAV files, decode to score (Scorer.score with
the cache off, alignment included; ViSQOL's `score` on the same files), median of repeats
after one warm-up, each metric in its own process so its peak memory (max RSS) is its own.
Prints x real time and the ratio against ViSQOL measured in the same run; `deepaq` is the
shipped full-reference quality (the network and, where the model ships `fusion.json`, the
2f-model on the same pair), `deepaq-net` the network alone; the row `deepaq-rel` is the same Scorer with `keep_memory=False` (deepaq.memory), to show what the
memory policy is worth; `deepaq-nmr` scores the degraded file alone against the model's
default NMR bank (head included), and its time per item is printed against full reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "visqol_testdata"
SR = 48_000
TRAIN_CODECS = {"opus": [8, 12, 16, 24, 32, 48, 64, 96, 128], "mp3": [8, 12, 16, 24, 32, 48, 64, 96, 128],
                "aac": [8, 12, 16, 24, 32, 48, 64, 96, 128]}
UNSEEN_CODECS = {"mp2": [48, 64, 96, 128, 192], "ac3": [48, 64, 96, 128, 192]}
LOWPASS = [3500, 7000]


def references(data: Path) -> list[Path]:
    refs = sorted(data.glob("*48_stereo.wav"))
    if not refs:
        raise SystemExit(f"{data}: no NAME48_stereo.wav references (the shared ViSQOL test data)")
    return refs


def conditions() -> list[tuple[str, float]]:
    out = [(c, float(b)) for table in (TRAIN_CODECS, UNSEEN_CODECS) for c, rates in table.items() for b in rates]
    return out + [("lowpass", float(f)) for f in LOWPASS]


def make_pairs(data: Path, seconds: float, folder: Path) -> list[dict]:
    """Write (once) every clean excerpt and coded version as WAV; returns the pair list."""
    import soundfile as sf

    from deepaq.codecs import apply_condition

    pairs = []
    for ref_path in references(data):
        item = ref_path.stem.replace("48_stereo", "")
        x, sr = sf.read(ref_path, dtype="float32", always_2d=True)
        x = np.ascontiguousarray(x[: int(seconds * sr)].T)
        ref_out = folder / item / "clean.wav"
        ref_out.parent.mkdir(parents=True, exist_ok=True)
        if not ref_out.exists():
            sf.write(ref_out, x.T, SR, subtype="FLOAT")
        for codec, setting in conditions():
            out = folder / item / f"{codec}_{setting:g}.wav"
            if not out.exists():
                y = apply_condition(x, SR, codec, setting)
                sf.write(out, y.T, SR, subtype="FLOAT")
            pairs.append({"item": item, "codec": codec, "setting": setting, "reference": ref_out, "degraded": out})
    return pairs


class ScoreCache:
    """scores.csv: item, codec, setting, metric, value; appended as scores come in."""

    FIELDS = ["item", "codec", "setting", "metric", "value"]

    def __init__(self, path: Path):
        self.path = path
        self.values: dict[tuple, float] = {}
        if path.exists():
            with open(path, newline="") as fh:
                for r in csv.DictReader(fh):
                    self.values[(r["item"], r["codec"], float(r["setting"]), r["metric"])] = float(r["value"])

    def get(self, pair: dict, metric: str) -> float | None:
        return self.values.get((pair["item"], pair["codec"], pair["setting"], metric))

    def put(self, pair: dict, metric: str, value: float) -> None:
        key = (pair["item"], pair["codec"], pair["setting"], metric)
        self.values[key] = value
        new = not self.path.exists()
        with open(self.path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(self.FIELDS)
            writer.writerow([*key, repr(value)])


def score_pairs(pairs: list[dict], metrics: list[str], model: str, cache: ScoreCache) -> dict[str, str]:
    """Fill the cache for every pair and metric; returns metric name -> cache key."""
    from tqdm import tqdm

    keys = {}
    scorers = {}
    if "deepaq" in metrics:
        from deepaq.scoring import Scorer

        scorer = Scorer(model, cache_dir=False)
        level = "level-aligned" if scorer.align_level else "level-as-is"
        if scorer.fusion is None:  # the network's distance, negated so that higher is better
            keys["deepaq"] = f"deepaq:{scorer.weights_hash}:{level}"
            scorers["deepaq"] = lambda p: -scorer.score(reference=p["reference"], degraded=p["degraded"]).distance
        else:  # the quality that mixes in the 2f-model
            keys["deepaq"] = (f"deepaq:{scorer.weights_hash}:{level}:{scorer.fusion.describe()}:"
                              f"{scorer.mapping.fingerprint}")
            scorers["deepaq"] = lambda p: scorer.score(reference=p["reference"], degraded=p["degraded"]).quality
    if "visqol" in metrics:
        from deepaq.baselines.visqol import VisqolV3

        keys["visqol"] = "visqol"
        scorers["visqol"] = lambda p, v=VisqolV3(): v.score(reference=p["reference"], degraded=p["degraded"])
    for metric in metrics:
        if metric == "peaq":
            continue
        todo = [p for p in pairs if cache.get(p, keys[metric]) is None]
        for p in tqdm(todo, desc=metric, unit="pair"):
            cache.put(p, keys[metric], float(scorers[metric](p)))
    if "peaq" in metrics:
        from deepaq.baselines.peaq import peaq

        keys["peaq"], keys["2f"] = "peaq_odg", "2f_mms"
        todo = [p for p in pairs if cache.get(p, "peaq_odg") is None]
        for p in tqdm(todo, desc="peaq+2f", unit="pair"):
            r = peaq(reference=p["reference"], degraded=p["degraded"])
            cache.put(p, "2f_mms", float(r.mms_2f))
            cache.put(p, "peaq_odg", float(r.odg))
    return keys


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    if len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def accuracy_table(pairs: list[dict], keys: dict[str, str], cache: ScoreCache) -> None:
    codecs = [*TRAIN_CODECS, *UNSEEN_CODECS]
    items = sorted({p["item"] for p in pairs})
    print(f"\nAccuracy on {len(items)} held-out real music items ({len(pairs)} pairs); every metric oriented higher = better")
    print("Spearman with bitrate within each codec and item, mean over items (mp2/ac3 never seen in training):")
    head = f"{'metric':<10}" + "".join(f"{c:>8}" for c in codecs) + f"{'all':>8}{'seen':>8}"
    print(head)
    summary = {}
    for metric, key in keys.items():
        row, groups, seen = [], [], []
        for codec in codecs:
            rhos = []
            for item in items:
                ps = [p for p in pairs if p["item"] == item and p["codec"] == codec]
                rhos.append(spearman([p["setting"] for p in ps], [cache.get(p, key) for p in ps]))
            rhos = [r for r in rhos if not np.isnan(r)]
            groups += rhos
            seen += rhos if codec in TRAIN_CODECS else []
            row.append(statistics.mean(rhos) if rhos else float("nan"))
        summary[metric] = statistics.mean(groups)
        print(f"{metric:<10}" + "".join(f"{v:8.3f}" for v in row) + f"{statistics.mean(groups):8.3f}{statistics.mean(seen):8.3f}")
    if "visqol" in keys:
        print("\nSpearman against ViSQOL MOS-LQO of the same pairs (coded pairs; per codec and over all):")
        print(f"{'metric':<10}" + "".join(f"{c:>8}" for c in codecs) + f"{'all':>8}{'+lp':>8}")
        for metric, key in keys.items():
            if metric == "visqol":
                continue
            row = []
            for codec in codecs:
                ps = [p for p in pairs if p["codec"] == codec]
                row.append(spearman([cache.get(p, key) for p in ps], [cache.get(p, "visqol") for p in ps]))
            coded = [p for p in pairs if p["codec"] != "lowpass"]
            every = pairs
            print(f"{metric:<10}" + "".join(f"{v:8.3f}" for v in row)
                  + f"{spearman([cache.get(p, key) for p in coded], [cache.get(p, 'visqol') for p in coded]):8.3f}"
                  + f"{spearman([cache.get(p, key) for p in every], [cache.get(p, 'visqol') for p in every]):8.3f}")
    print("\nLow-pass 3.5 kHz rated worse than 7 kHz (items):")
    for metric, key in keys.items():
        ok = 0
        for item in items:
            lp = {p["setting"]: cache.get(p, key) for p in pairs if p["item"] == item and p["codec"] == "lowpass"}
            ok += lp[3500.0] < lp[7000.0]
        print(f"  {metric:<10} {ok}/{len(items)}")


# ---------------------------------------------------------------- speed


SPEED_METRICS = ["deepaq", "deepaq-net", "deepaq-rel", "deepaq-nmr", "visqol"]


def speed_pairs(data: Path, folder: Path, n: int) -> list[tuple[Path, Path]]:
    """Up to n 10 s stereo pairs (reference, AAC 64 kbps) as 16-bit WAV files."""
    import soundfile as sf

    from deepaq.codecs import degrade

    out = []
    for ref_path in references(data):
        x, sr = sf.read(ref_path, dtype="float32", always_2d=True)
        if x.shape[0] < 10 * sr:
            continue
        x = np.ascontiguousarray(x[: 10 * sr].T)
        ref, deg = folder / f"{ref_path.stem}_10s.wav", folder / f"{ref_path.stem}_10s_aac64.wav"
        if not deg.exists():
            sf.write(ref, x.T, SR, subtype="PCM_16")
            sf.write(deg, degrade(x, SR, "aac", 64).T, SR, subtype="PCM_16")
        out.append((ref, deg))
    return out[:n]


def pair_times(fn, pairs, repeats: int) -> list[float]:
    """Seconds of each `fn(reference, degraded)` call over `repeats` passes of `pairs`,
    after one untimed call (model load, numba compile, caches)."""
    fn(*pairs[0])
    times = []
    for _ in range(repeats):
        for ref, deg in pairs:
            start = time.perf_counter()
            fn(ref, deg)
            times.append(time.perf_counter() - start)
    return times


def speed_worker(metric: str, model: str, pairs: list[tuple[str, str]], repeats: int) -> dict:
    """Runs in its own process: seconds per pair (median), and this process's peak RSS."""
    import torch

    if metric.startswith("deepaq"):
        from deepaq.scoring import Scorer

        scorer = Scorer(model, cache_dir=False, keep_memory=metric != "deepaq-rel", fusion=metric != "deepaq-net")
        if metric == "deepaq-nmr":  # the degraded file alone, against the model's default bank
            fn = lambda r, d: scorer.score(degraded=d, nmr_bank="default")  # noqa: E731
        else:
            fn = lambda r, d: scorer.score(reference=r, degraded=d)  # noqa: E731
    else:
        from deepaq.baselines.visqol import VisqolV3

        visqol = VisqolV3()
        fn = lambda r, d: visqol.score(reference=r, degraded=d)  # noqa: E731
    times = pair_times(fn, pairs, repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"metric": metric, "seconds": statistics.median(times), "peak_mb": peak_mb, "calls": len(times),
            "torch_threads": torch.get_num_threads()}


def speed_table(data: Path, model: str, folder: Path, n: int, repeats: int) -> None:
    pairs = [(str(r), str(d)) for r, d in speed_pairs(data, folder, n)]
    results = {}
    for metric in SPEED_METRICS:
        cmd = [sys.executable, __file__, "--speed-worker", metric, "--model", model, "--repeats", str(repeats),
               "--pairs-json", json.dumps(pairs)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"speed worker {metric} failed:\n{proc.stderr[-2000:]}")
        results[metric] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nSpeed: 10 s stereo 48 kHz pair from WAV files, decode to score, {len(pairs)} pairs x {repeats}, median")
    print(f"{'metric':<10}{'s/pair':>10}{'x real time':>13}{'peak MB':>10}{'vs ViSQOL':>11}")
    base = results["visqol"]["seconds"]
    for metric, r in results.items():
        print(f"{metric:<10}{r['seconds']:10.4f}{10 / r['seconds']:13.1f}{r['peak_mb']:10.0f}{base / r['seconds']:10.1f}x")
    print(f"(torch threads {results['deepaq']['torch_threads']}; peak MB = max RSS of the process that scored; "
          "deepaq: the shipped quality (network + 2f-model where the model ships fusion.json); deepaq-net: the "
          "network alone (fusion=False); deepaq-rel: Scorer(keep_memory=False), freed memory goes back to the OS; deepaq-nmr: the degraded file "
          "alone against the default NMR bank)")
    print(f"NMR / full reference time per item: {results['deepaq-nmr']['seconds'] / results['deepaq']['seconds']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="deepaq-compact")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--metrics", default="deepaq,visqol,peaq")
    parser.add_argument("--cache", type=Path, default=Path("work/bench"))
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-pairs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--speed-worker", choices=SPEED_METRICS, help=argparse.SUPPRESS)
    parser.add_argument("--pairs-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speed_worker:
        print(json.dumps(speed_worker(args.speed_worker, args.model, json.loads(args.pairs_json), args.repeats)))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.speed_only:
        pairs = make_pairs(args.data, args.seconds, args.cache / "pairs")
        cache = ScoreCache(args.cache / "scores.csv")
        keys = score_pairs(pairs, [m for m in args.metrics.split(",") if m], args.model, cache)
        accuracy_table(pairs, keys, cache)
    if not args.no_speed:
        with tempfile.TemporaryDirectory(prefix="deepaq-bench-") as tmp:
            speed_table(args.data, args.model, Path(tmp), args.speed_pairs, args.repeats)


if __name__ == "__main__":
    main()
