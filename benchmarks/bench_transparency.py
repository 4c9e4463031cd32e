"""The top of the scale: mean `quality` of near-transparent versions of music and speech.

Every reference (the ViSQOL test data's ten music excerpts and its speech sentence, and the
references of the listening tests in ../shared: speech, sung vowels, solo vocals; or the
files given) is coded or changed so that listeners would hear little or nothing (AAC 256,
MP3 320 and Opus 192 kbps, a -0.5 dB gain, a 48 -> 44.1 -> 48 kHz round trip), scored against
itself with the shipped model (`quality`, 0-100, higher is better), and the mean per
condition is printed beside the goal (>= 90 each) and the 2f-model's MMS of the same pairs
(the teacher's view of them). The demo clip's Opus 24 and 48 kbps versions are scored too
(goal: at least 5 points apart).

    python benchmarks/bench_transparency.py
    python benchmarks/bench_transparency.py --model work/runs/x/checkpoints/best --refs clean/ --seconds 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RATE = 48_000
GOAL = 90.0
CONDITIONS = ("aac 256", "mp3 320", "opus 192", "gain -0.5 dB", "resample 44.1 kHz")


def default_references() -> list[Path]:
    """The ViSQOL test data's clean files and every listening-test reference in ../shared."""
    visqol = sorted(p for p in (SHARED / "visqol_testdata").glob("*.wav")
                    if p.stem.endswith("48_stereo") or p.stem == "CA01_01")
    tests = sorted((SHARED / "listening_tests").glob("*/audio/*/reference.flac"))
    return visqol + tests


def versions(x: np.ndarray) -> dict[str, np.ndarray]:
    """The near-transparent versions of `x` ([channels, samples] at 48 kHz)."""
    from deepaq.audio import resample
    from deepaq.codecs import degrade

    return {"aac 256": degrade(x, RATE, "aac", 256), "mp3 320": degrade(x, RATE, "mp3", 320),
            "opus 192": degrade(x, RATE, "opus", 192), "gain -0.5 dB": x * np.float32(10 ** (-0.5 / 20)),
            "resample 44.1 kHz": resample(resample(x, RATE, 44_100), 44_100, RATE)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--refs", type=Path, default=None, help="folder of clean references (default: see above)")
    parser.add_argument("--seconds", type=float, default=6.0, help="excerpt of each reference scored (default 6)")
    parser.add_argument("--no-twof", action="store_true", help="leave out the 2f-model column")
    args = parser.parse_args()
    from deepaq.audio import load_audio
    from deepaq.baselines.peaq import peaq
    from deepaq.scoring import DEFAULT_MODEL, Scorer, list_audio

    refs = list_audio(args.refs) if args.refs else default_references()
    if not refs:
        print("no references found; give --refs", file=sys.stderr)
        return 1
    scorer = Scorer(args.model or DEFAULT_MODEL, cache_dir=False)
    if scorer.mapping is None:
        print(f"model {scorer.model_id} ships no quality mapping", file=sys.stderr)
        return 1
    quality: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    twof: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    for ref in refs:
        x, _ = load_audio(ref, sample_rate=RATE, mono=False)
        x = x[:, : int(args.seconds * RATE)]
        for name, y in versions(x).items():
            quality[name].append(scorer.score(reference=(x, RATE), degraded=(y, RATE)).quality)
            if not args.no_twof:
                twof[name].append(peaq(reference=(x.mean(0), RATE), degraded=(y.mean(0), RATE)).mms_2f)
    print(f"\nmodel {scorer.model_id} {scorer.model_version}; {len(refs)} references, {args.seconds:g} s each\n")
    print("| condition | mean quality [min, max] | >= 90 | 2f MMS mean |")
    print("|---|---|---|---|")
    for c in CONDITIONS:
        q = np.array(quality[c])
        mms = f"{np.mean(twof[c]):.1f}" if twof[c] else ""
        print(f"| {c} | {q.mean():.1f} [{q.min():.1f}, {q.max():.1f}] | {'yes' if q.mean() >= GOAL else 'NO'} | {mms} |")
    from deepaq.codecs import degrade

    demo, _ = load_audio(Path(__file__).resolve().parents[1] / "src" / "deepaq" / "assets" / "loop_compus.flac",
                         sample_rate=RATE, mono=False)
    opus = {k: scorer.score(reference=(demo, RATE), degraded=(degrade(demo, RATE, "opus", k), RATE)).quality
            for k in (24, 48)}
    gap = opus[48] - opus[24]
    print(f"\ndemo clip: Opus 24 kbps {opus[24]:.1f}, Opus 48 kbps {opus[48]:.1f} (gap {gap:+.1f}; goal >= 5: "
          f"{'met' if gap >= 5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
