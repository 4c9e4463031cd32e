"""ViSQOL v3 in audio mode (48 kHz), through the pure-Python port on PyPI (`visqol-python`).

    from deepaq.baselines.visqol import VisqolV3
    scorer = VisqolV3()
    mos = scorer.score(reference="clean.wav", degraded="coded.flac")   # MOS-LQO in [1, 5]

Inputs are paths (any format `deepaq.audio` reads) or `(array, sample_rate)` tuples. Both
are downmixed to mono by averaging the channels (as ViSQOL does) and resampled to 48 kHz
with soxr when they are at another rate. ViSQOL aligns the pair itself (global alignment
and patch realignment), so no alignment is done here. Higher is better.

The port compiles its inner loops with numba on the first call (about 10 s, cached on disk
afterwards): create one `VisqolV3` and score many pairs with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from deepaq.errors import AudioError, DeepaqError

AudioSource = Union[str, Path, tuple[np.ndarray, int]]

SAMPLE_RATE = 48_000
# ViSQOL audio mode needs at least 45 spectrogram frames (patch plus search); about 1 s at 48 kHz.
MIN_SECONDS = 1.0


class VisqolV3:
    """ViSQOL v3 audio mode: MOS-LQO of `degraded` against `reference` (higher is better)."""

    sample_rate: int = SAMPLE_RATE
    higher_is_better: bool = True

    def __init__(self) -> None:
        try:
            import visqol
        except ImportError as exc:  # the [baselines] or [train] extra is not installed
            raise DeepaqError(
                "ViSQOL needs the PyPI package visqol-python: pip install 'deepaq[baselines]'"
            ) from exc
        self._api = visqol.VisqolApi()
        self._api.create(mode="audio")
        self.version: str = f"visqol-python {visqol.__version__} (ViSQOL v3 audio mode, 48 kHz)"

    def score(self, *, reference: AudioSource, degraded: AudioSource) -> float:
        """MOS-LQO in [1, 5] of `degraded` against `reference`; raises `AudioError` on bad input."""
        ref = _load(reference)
        deg = _load(degraded)
        try:
            result = self._api.measure_from_arrays(ref, deg, SAMPLE_RATE)
        except ValueError as exc:
            raise AudioError(_name(degraded), f"ViSQOL cannot score it against {_name(reference)}: {exc}") from exc
        mos = float(result.moslqo)
        if not np.isfinite(mos):
            raise AudioError(_name(degraded), f"ViSQOL returned {mos} against {_name(reference)}")
        return mos


def _load(source: AudioSource) -> np.ndarray:
    """Mono float64 at 48 kHz, validated by `deepaq.audio.load_audio`."""
    from deepaq.audio import load_audio

    x, _ = load_audio(source, sample_rate=SAMPLE_RATE, mono=True, min_seconds=MIN_SECONDS)
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _name(source: AudioSource) -> str:
    return "<array>" if isinstance(source, tuple) else str(source)
