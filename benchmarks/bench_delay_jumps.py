"""A delay that jumps within a pair: cuts and inserted gaps, scored with the delay followed
(the default) and held constant (`--constant-delay`), beside dropouts of the same length.

Every reference of the ViSQOL test data (ten music excerpts and its speech sentence; the
first `--seconds` of each) gets four versions: three 40 ms dropouts (zeroed, the delay holds),
the same three 40 ms stretches cut out (the delay jumps by -40 ms at each), one 40 ms gap of
silence inserted (+40 ms; the end trimmed to the reference's length), and a jitter buffer
that inserts 20 ms and removes it again 2 s later, three times. Listeners hear a cut or a gap
about like a dropout of the same length; at a constant delay everything after the jump is
compared out of step. Printed: mean `quality` per version and way, the jumps found, and the
cost of following on its own (10 s pairs: coded and heavily noisy, where every block is
searched), against a whole score of such a pair, in the same run.

    python benchmarks/bench_delay_jumps.py
    python benchmarks/bench_delay_jumps.py --model work/runs/x/checkpoints/best --seconds 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "visqol_testdata"
RATE = 48_000
EVENTS_S = (2.23, 5.37, 8.11)  # inside 0.5 s blocks, not on their edges
LENGTH_S = 0.04


def versions(x: np.ndarray) -> dict[str, np.ndarray]:
    """The four versions of `x` (`[channels, n]` at RATE); see the module docstring."""
    n, k = x.shape[1], int(LENGTH_S * RATE)
    starts = [int(t * RATE) for t in EVENTS_S if int(t * RATE) + k < n]
    dropouts = x.copy()
    keep = np.ones(n, bool)
    for s in starts:
        dropouts[:, s:s + k] = 0.0
        keep[s:s + k] = False
    gap = np.zeros((x.shape[0], k), np.float32)
    at = starts[0]
    inserted = np.concatenate([x[:, :at], gap, x[:, at:]], axis=1)[:, :n]
    half = gap[:, : k // 2]
    jitter, last = [], 0
    for s in starts:  # + 20 ms at s, - 20 ms 1 s later
        back = min(s + RATE, n - k)
        jitter += [x[:, last:s], half, x[:, s:back]]
        last = back + k // 2
    jitter.append(x[:, last:])
    return {"3 dropouts": dropouts, "3 cuts": x[:, keep], "1 gap": inserted, "jitter +-20 ms": np.concatenate(jitter, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the built-in model)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each excerpt (default 10)")
    args = parser.parse_args()

    from deepaq.audio import follow_delay, load_audio
    from deepaq.scoring import DEFAULT_MODEL, Scorer

    refs = sorted(p for p in TESTDATA.glob("*.wav") if p.stem.endswith("_stereo") or p.stem == "CA01_01")
    if not refs:
        print(f"no references in {TESTDATA}")
        return 1
    scorers = {"followed": Scorer(args.model or DEFAULT_MODEL, cache_dir=False),
               "constant": Scorer(args.model or DEFAULT_MODEL, cache_dir=False, follow_delay=False)}
    table: dict[tuple[str, str], list[float]] = {}
    jumps: dict[str, list[int]] = {}
    for path in refs:
        x, _ = load_audio(path, sample_rate=RATE, mono=False)
        x = x[:, : int(args.seconds * RATE)]
        for name, y in versions(x).items():
            for way, scorer in scorers.items():
                r = scorer.score(reference=(x, RATE), degraded=(y, RATE))
                table.setdefault((name, way), []).append(r.quality)
                if way == "followed":
                    jumps.setdefault(name, []).append(len(r.delay_jumps))
    print(f"{len(refs)} references of {TESTDATA.name}, first {args.seconds:g} s; mean quality (0-100)")
    print(f"{'version':<16} {'followed':>9} {'constant':>9} {'jumps found (mean)':>19}")
    for name in jumps:
        print(f"{name:<16} {np.mean(table[name, 'followed']):9.1f} {np.mean(table[name, 'constant']):9.1f} "
              f"{np.mean(jumps[name]):19.1f}")

    rng = np.random.default_rng(0)
    x, _ = load_audio(refs[0], sample_rate=RATE)
    x = np.resize(x, (1, 10 * RATE)).astype(np.float32)
    noisy = (x + 3 * x.std() * rng.standard_normal(x.shape)).astype(np.float32)
    print("\ncost of following, 10 s mono at 48 kHz (median of 5 runs), against a whole full-reference score")
    whole = []
    for _ in range(5):
        t = time.perf_counter()
        scorers["followed"].score(reference=(x, RATE), degraded=(x, RATE))
        whole.append(time.perf_counter() - t)
    for name, d in (("delay holds", x), ("every block searched", noisy)):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            for _chunk in follow_delay(iter([x]), iter([d]), RATE, []):
                pass
            times.append(time.perf_counter() - t)
        print(f"{name:<22} {1000 * np.median(times):6.1f} ms  ({np.median(times) / np.median(whole):.1%} of a score, "
              f"{1000 * np.median(whole):.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
