"""HTML pages of `deepaq demo` (every version playable, the plot, the table) and of
`deepaq score --html` (one pair: both signals, the score, quality over time).

Audio and images are linked relative to the page (see deepaq.html), no scripts, no network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from deepaq import html as H


def _num(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def demo_page(path: str | os.PathLike, rows: Sequence, plot: Path | None, source: Path, model: str | None,
              why_no_model: str = "", command: str | None = None) -> Path:
    """The demo's page: versions sorted best first, each with a player, and the plot.

    `rows` are `deepaq.commands.demo.Row`s; `model` names the model that scored them (None
    when none loaded, then `why_no_model` says why and rows are sorted by SNR).
    """
    path = Path(path)
    folder = path.parent
    scored = model is not None and all(r.distance is not None for r in rows)
    ordered = sorted(rows, key=(lambda r: r.distance) if scored else (lambda r: -r.snr_db))
    mapped = scored and any(r.quality is not None for r in rows)
    nmr = mapped and any(r.nmr_quality is not None for r in rows)
    header = ["rank", "version", *(["distance"] if scored else []), *(["quality"] if mapped else []),
              *(["NMR quality (no original)"] if nmr else []),
              "delay found (ms)", "SNR after alignment (dB)", "bandwidth (kHz)", "listen"]
    body_rows = [[i, r.name, *([_num(r.distance, 4)] if scored else []), *([_num(r.quality, 2)] if mapped else []),
                  *([_num(r.nmr_quality, 2)] if nmr else []),
                  _num(r.delay_ms, 2), _num(r.snr_db, 1), _num(r.bandwidth_khz, 1),
                  H.Raw(H.audio(H.rel(r.path, folder), r.name))] for i, r in enumerate(ordered, 1)]
    intro = (f"Model <b>{H.esc(model)}</b>: DeePAQ distance to the original, lower is better (best first)."
             if scored else f"No model could be loaded ({H.esc(why_no_model)}); versions sorted by SNR.")
    body = [f"<h1>deepaq demo: {H.esc(source.name)}</h1>",
            f"<p>{intro} Every version was delayed by a known offset on purpose; the delay column is what "
            "alignment found.</p>",
            H.table(header, body_rows, text_columns=2)]
    if plot is not None:
        body += ["<h2>Distance against bitrate</h2>" if scored else "<h2>SNR against bitrate</h2>",
                 H.img(H.rel(plot, folder), "demo plot")]
    if command:
        body.append(f'<p class="note">Command: <code>{H.esc(command)}</code></p>')
    path.write_text(H.page(f"deepaq demo: {source.name}", body), encoding="utf-8")
    return path


def pair_page(path: str | os.PathLike, item_id: str, result, reference: Path | None, degraded: Path,
              plot: Path | None, command: str | None = None) -> Path:
    """One scored pair: players for both signals, the item's score, the per-window scores over time.

    `result` is a `deepaq.scoring.ScoreResult`; `plot` the quality-over-time PNG (or None).
    """
    path = Path(path)
    folder = path.parent
    players = [["degraded", str(degraded), H.Raw(H.audio(H.rel(degraded, folder), "degraded"))]]
    if reference is not None:
        players.insert(0, ["reference", str(reference), H.Raw(H.audio(H.rel(reference, folder), "reference"))])
    facts = [["model", f"{result.model_id} {result.model_version}"], ["mode", result.mode],
             ["distance (lower is better)", _num(result.distance, 4)]]
    if result.quality is not None:
        facts.append(["quality (higher is better)", _num(result.quality, 2)])
    if result.mms_2f is not None:
        facts.append(["quality's parts", f"the network {_num(result.model_quality, 2)}, "
                                         f"the 2f-model {_num(result.mms_2f, 2)} (windows: the network's)"])
    if result.delay_s is not None:
        facts.append(["delay of the degraded signal", f"{result.delay_s * 1000:.2f} ms"])
    if result.level_db is not None:
        facts.append(["level of the degraded signal", f"{result.level_db:+.2f} dB re the reference"
                      + (", aligned before scoring" if result.level_aligned else "")])
    if result.mode == "nmr":
        facts.append(["reference", "none: non-matching reference (NMR) against a bank of clean audio"
                      + (", through the model's NMR head" if result.nmr_head else "")])
    facts.append(["duration", f"{result.duration_s:.2f} s, {len(result.windows)} windows"])
    body = [f"<h1>deepaq score: {H.esc(item_id)}</h1>",
            H.table(["signal", "file", "listen"], players, text_columns=2),
            H.table(["", "value"], facts, text_columns=2)]
    if plot is not None:
        body += ["<h2>Quality over time</h2>", H.img(H.rel(plot, folder), "quality over time")]
    mapped = result.quality is not None
    body += ["<h2>Windows</h2>",
             H.table(["start (s)", "end (s)", "distance", *(["quality"] if mapped else [])],
                     [[f"{w.start_s:.2f}", f"{w.end_s:.2f}", _num(w.distance, 4), *([_num(w.quality, 2)] if mapped else [])]
                      for w in result.windows], text_columns=0)]
    if command:
        body.append(f'<p class="note">Command: <code>{H.esc(command)}</code></p>')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(H.page(f"deepaq score: {item_id}", body), encoding="utf-8")
    return path
