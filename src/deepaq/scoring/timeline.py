"""Scores over time: per-window rows for a CSV and a PNG plot of one item."""

from __future__ import annotations

import os
import re
from pathlib import Path

from deepaq.scoring.results import ScoreResult, clean_float

WINDOW_COLUMNS = ["id", "start_s", "end_s", "weight_s", "distance", "quality"]


def window_rows(item_id: str, result: ScoreResult) -> list[dict]:
    """One row per analysis window of `result`."""
    return [{"id": item_id, "start_s": round(w.start_s, 6), "end_s": round(w.end_s, 6),
             "weight_s": round(w.weight_s, 6), "distance": clean_float(w.distance), "quality": clean_float(w.quality)}
            for w in result.windows]


def plot_path(path: str | os.PathLike, item_id: str, several: bool) -> Path:
    """`path` itself for a single item, else `<stem>_<id>.png` beside it (id made file-safe)."""
    path = Path(path)
    if not several:
        return path
    safe = re.sub(r"[^\w.-]+", "_", item_id).strip("._") or "item"
    return path.with_name(f"{path.stem}_{safe}{path.suffix}")


def plot_timeline(result: ScoreResult, path: str | os.PathLike, title: str) -> Path:
    """Plot quality (or distance, without a mapping) of every window over time as a PNG."""
    from deepaq.errors import require

    matplotlib = require("matplotlib", "--plot", "plots")

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    mapped = result.quality is not None
    centres = [(w.start_s + w.end_s) / 2 for w in result.windows]
    values = [w.quality if mapped else w.distance for w in result.windows]
    overall = result.quality if mapped else result.distance
    label = "quality (higher is better)" if mapped else "distance (lower is better)"
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(centres, values, marker="o", markersize=3, linewidth=1, label="per window")
    ax.axhline(overall, color="tab:red", linestyle="--", linewidth=1, label=f"item: {overall:.3f}")
    ax.set_xlabel("time (s, window centre)")
    ax.set_ylabel(label)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
