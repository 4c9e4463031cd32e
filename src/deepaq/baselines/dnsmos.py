"""DNSMOS P.835 (Reddy et al., 2022): a no-reference speech MOS from the degraded file alone.

The ONNX models ship inside the `speechmos` wheel (`pip install 'deepaq[baselines]'`, which
also brings onnxruntime and librosa); nothing is downloaded. The signal is brought to 16 kHz
mono; clips shorter than DNSMOS' 9.01 s input are repeated to that length by speechmos itself.

    Dnsmos().score(degraded="enhanced.wav")      # overall MOS (OVRL), about 1..5, higher is better
"""

from __future__ import annotations

from importlib import metadata

import numpy as np

from deepaq.audio import AudioSource, load_audio
from deepaq.errors import AudioError, require

OUTPUTS = {"ovrl": "ovrl_mos", "sig": "sig_mos", "bak": "bak_mos", "p808": "p808_mos"}


class Dnsmos:
    """DNSMOS overall (`output="ovrl"`), signal, background or P.808 MOS of one file."""

    sample_rate = 16_000
    score_range = (1.0, 5.0)

    def __init__(self, output: str = "ovrl"):
        if output not in OUTPUTS:
            raise ValueError(f"DNSMOS output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        require("onnxruntime", "DNSMOS", "baselines")
        require("librosa", "DNSMOS", "baselines")
        self._dnsmos = require("speechmos.dnsmos", "DNSMOS", "baselines")
        self.output = output
        self.version = f"speechmos {metadata.version('speechmos')} DNSMOS P.835 {output}, no reference"

    def score(self, *, degraded: AudioSource, reference: AudioSource | None = None) -> float:
        """The degraded file's MOS; `reference` is accepted for the pair interface and ignored."""
        x, _ = load_audio(degraded, sample_rate=self.sample_rate, mono=True, min_seconds=0.25)
        audio = np.clip(np.asarray(x[0], dtype=np.float32), -1.0, 1.0)
        try:
            result = self._dnsmos.run(audio, self.sample_rate)
        except ValueError as exc:
            name = "<array>" if isinstance(degraded, tuple) else str(degraded)
            raise AudioError(name, f"DNSMOS cannot score it: {exc}") from exc
        return float(result[OUTPUTS[self.output]])
