"""`deepaq demo`: code a bundled real recording with several codecs, score every version, plot.

The bundled clip (deepaq/assets/loop_compus.flac, CC0, see assets/README.md) or a file
of your own is coded with Opus, MP3, AAC, MP2 and AC-3 at several bitrates and low-passed
at 3.5 and 7 kHz. Each version is delayed by a known offset before scoring, so the table
also shows that alignment recovers it. Where the model ships an NMR bank, each version is
also scored without the original (NMR quality). Every version is scored against the original with
the default model, printed sorted by quality (by distance when the model has no mapping),
written to results.csv, plotted (quality against bitrate per codec) and put on demo.html
with a player for every version.

Without a loadable model the demo still runs and reports what it can without one: the
delay that alignment found, the SNR after alignment and the bandwidth of each version.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

HELP = "degrade a bundled real clip with several codecs, score every version, print a table and plot it"
EXAMPLE = "deepaq demo --out work/demo            # or: deepaq demo --audio my_song.flac --model deepaq-compact"

ASSET = Path(__file__).resolve().parents[1] / "assets" / "loop_compus.flac"
CONDITIONS: list[tuple[str, float | None]] = [
    ("clean", None),
    ("opus", 12), ("opus", 24), ("opus", 48), ("opus", 96),
    ("mp3", 32), ("mp3", 64), ("mp3", 128),
    ("aac", 16), ("aac", 32), ("aac", 64), ("aac", 128),
    ("mp2", 64), ("mp2", 128),
    ("ac3", 64), ("ac3", 128),
    ("lowpass", 3500), ("lowpass", 7000),
]
DEMO_DELAY_S = 0.0125  # known offset added to every version; alignment must find it
SAMPLE_RATE = 48_000


@dataclass
class Row:
    name: str
    codec: str
    setting: float | None
    path: Path
    delay_ms: float | None = None
    snr_db: float | None = None
    bandwidth_khz: float | None = None
    distance: float | None = None
    quality: float | None = None
    nmr_quality: float | None = None  # without the original: against the model's default NMR bank


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio", type=Path, default=ASSET, help="clean input (default: the bundled CC0 percussion loop)")
    parser.add_argument("--out", type=Path, default=Path("deepaq-demo"), help="output folder (default ./deepaq-demo)")
    parser.add_argument("--model", default=None, help="model name or folder (default: the built-in deepaq-compact)")
    parser.add_argument("--codecs", default="opus,mp3,aac,mp2,ac3,lowpass",
                        help="comma-separated subset of opus,mp3,aac,mp2,ac3,lowpass (default all; clean is always shown)")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from deepaq.audio import align_pair, load_audio, write_audio
    from deepaq.codecs import apply_condition
    from deepaq.errors import ModelError

    from deepaq.errors import ConfigError

    wanted = {c.strip() for c in args.codecs.split(",") if c.strip()}
    known = {c for c, _ in CONDITIONS}
    if not wanted <= known:
        raise ConfigError(f"--codecs: unknown {sorted(wanted - known)}; choose from {sorted(known - {'clean'})}")
    conditions = [(c, s) for c, s in CONDITIONS if c == "clean" or c in wanted]
    clean, _ = load_audio(args.audio, sample_rate=SAMPLE_RATE, mono=False, min_seconds=1.0)
    out = args.out
    (out / "versions").mkdir(parents=True, exist_ok=True)
    scorer, why = _scorer(args.model)
    nmr = scorer is not None and _has_default_bank(scorer)
    shift = np.zeros((clean.shape[0], int(DEMO_DELAY_S * SAMPLE_RATE)), dtype=np.float32)
    rows: list[Row] = []
    for codec, setting in tqdm(conditions, desc="demo", unit="version"):
        name = codec if setting is None else (f"lowpass {setting / 1000:g} kHz" if codec == "lowpass" else f"{codec} {setting:g} kbps")
        y = np.concatenate([shift, apply_condition(clean, SAMPLE_RATE, codec, setting)], axis=1)
        path = write_audio(out / "versions" / f"{name.replace(' ', '_')}.flac", y, SAMPLE_RATE)
        row = Row(name, codec, setting, Path(path))
        pair = align_pair(clean, y, SAMPLE_RATE)
        row.delay_ms = pair.delay_samples / SAMPLE_RATE * 1000
        noise = pair.degraded - pair.reference
        row.snr_db = float(10 * np.log10(np.sum(pair.reference**2) / max(np.sum(noise**2), 1e-12)))
        row.bandwidth_khz = _bandwidth_khz(y.mean(0))
        if scorer is not None:
            try:
                result = scorer.score(reference=args.audio, degraded=path)
            except ModelError as exc:
                scorer, why = None, str(exc)
            else:
                row.distance, row.quality = result.distance, result.quality
                if nmr:
                    row.nmr_quality = scorer.score(degraded=path, nmr_bank="default").quality
        rows.append(row)
    _write_csv(out / "results.csv", rows)
    _print_table(rows, scorer, why)
    import importlib.util
    import shlex

    from deepaq.pages import demo_page

    model = None if scorer is None else f"{scorer.model_id} {scorer.model_version}"
    command = shlex.join(["deepaq", *getattr(args, "argv", ["demo"])])
    if importlib.util.find_spec("matplotlib") is None:
        page = demo_page(out / "demo.html", rows, None, args.audio, model, why, command)
        print(f"\nversions, results.csv and {page.name} are in {out} (for the plot: pip install 'deepaq[plots]')")
        return 0
    plot = _plot(rows, out / "demo.png", args.audio.name)
    page = demo_page(out / "demo.html", rows, plot, args.audio, model, why, command)
    print(f"\nversions, results.csv, the plot ({plot.name}) and a page to listen to every version "
          f"({page.name}) are in {out}")
    return 0


def _scorer(model: str | None):
    """A Scorer for `model` (default model when None), or None and the reason it cannot load."""
    from deepaq.errors import ModelError

    try:
        from deepaq.scoring import DEFAULT_MODEL, Scorer

        return Scorer(model or DEFAULT_MODEL, cache_dir=False), ""
    except ModelError as exc:
        return None, str(exc)


def _has_default_bank(scorer) -> bool:
    """Whether the model ships a default NMR bank (then each version is also scored without the original)."""
    from deepaq.errors import ConfigError

    try:
        scorer.load_bank("default")
    except ConfigError:
        return False
    return True


def _bandwidth_khz(x) -> float:
    """Frequency below which 99.9 % of the signal's energy lies."""
    import numpy as np

    power = np.abs(np.fft.rfft(x)) ** 2
    cumulative = np.cumsum(power) / max(power.sum(), 1e-20)
    return float(np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)[np.searchsorted(cumulative, 0.999)] / 1000)


def _print_table(rows: list[Row], scorer, why: str) -> None:
    if scorer is not None:
        mapped = all(r.quality is not None for r in rows)
        ordered = sorted(rows, key=lambda r: -r.quality if mapped else r.distance)
        what = "quality (higher is better)" if mapped else "distance to the original (lower is better)"
        print(f"\nmodel {scorer.model_id} {scorer.model_version}, ranked by {what}\n")
        nmr = any(r.nmr_quality is not None for r in rows)
        print(f"{'rank':>4}  {'version':<18} {'distance':>9}" + (f" {'quality':>8}" if mapped else "")
              + (f" {'NMR quality':>11}" if nmr else "") + f" {'delay ms':>9}")
        for i, r in enumerate(ordered, 1):
            quality = f" {r.quality:8.2f}" if mapped and r.quality is not None else ""
            quality += f" {r.nmr_quality:11.2f}" if nmr and r.nmr_quality is not None else ""
            print(f"{i:>4}  {r.name:<18} {r.distance:9.4f}{quality} {r.delay_ms:9.2f}")
        if nmr:
            print("(NMR quality: the same version scored without the original, against the model's default bank "
                  "of clean audio of other content)")
    else:
        print(f"\nno model could be loaded ({why}); showing codec and alignment results, sorted by SNR\n")
        print(f"{'rank':>4}  {'version':<18} {'SNR dB':>8} {'bandwidth kHz':>14} {'delay ms':>9}")
        for i, r in enumerate(sorted(rows, key=lambda r: -r.snr_db), 1):
            print(f"{i:>4}  {r.name:<18} {r.snr_db:8.1f} {r.bandwidth_khz:14.1f} {r.delay_ms:9.2f}")
    print(f"(every version was delayed by {DEMO_DELAY_S * 1000:g} ms on purpose; the delay column is what alignment found)")


def _write_csv(path: Path, rows: list[Row]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["version", "codec", "setting", "distance", "quality", "nmr_quality", "delay_ms", "snr_db",
                         "bandwidth_khz", "path"])
        for r in rows:
            writer.writerow([r.name, r.codec, r.setting, r.distance, r.quality, r.nmr_quality, round(r.delay_ms, 3),
                             round(r.snr_db, 2), round(r.bandwidth_khz, 2), r.path.name])


def _plot(rows: list[Row], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = all(r.distance is not None for r in rows)
    mapped = scored and all(r.quality is not None for r in rows)
    value = (lambda r: r.quality) if mapped else (lambda r: r.distance) if scored else (lambda r: r.snr_db)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for codec in ("opus", "mp3", "aac", "mp2", "ac3"):
        pts = sorted((r.setting, value(r)) for r in rows if r.codec == codec)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=codec)
    for r, style in zip((r for r in rows if r.codec in ("lowpass", "clean")), ("-", "--", ":")):
        ax.axhline(value(r), color="grey", linestyle=style, linewidth=1, label=r.name)
    ax.set_xscale("log", base=2)
    ticks = sorted({r.setting for r in rows if r.codec not in ("clean", "lowpass")})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("bitrate (kbps)")
    ax.set_ylabel("DeePAQ quality (higher is better)" if mapped else "DeePAQ distance (lower is better)" if scored
                  else "SNR after alignment (dB)")
    ax.set_title(f"deepaq demo: {title}")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
