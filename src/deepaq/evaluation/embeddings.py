"""Frame embeddings of audio from a registered backbone (for FAD and NOMAD-style distances).

The backbone's weights come from a local folder (config.json + safetensors/bin); the folder's
content hash is part of the embedder's version, so cached results follow the weights.
Long audio is embedded in fixed windows (default 10 s) whose frames are concatenated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepaq.errors import ModelError

MIN_WINDOW_S = 0.5


class BackboneEmbedder:
    """Frames `[frames, hidden]` of one hidden layer of a backbone, for any audio file."""

    def __init__(self, backbone: str, weights: str | Path, layer: int = -1, window_s: float = 10.0):
        import torch

        from deepaq.models.backbones import build_backbone
        from deepaq.models.checkpoint import weights_hash

        weights = Path(weights).expanduser()
        if not weights.is_dir():
            raise ModelError(f"{weights}: {backbone} weights folder does not exist")
        self.model = build_backbone(backbone, {}, weights).eval()
        self.sample_rate = int(self.model.sample_rate)
        if not -self.model.num_hidden_states <= layer < self.model.num_hidden_states:
            raise ModelError(f"{backbone} has {self.model.num_hidden_states} hidden states; layer {layer} does not exist")
        self.layer = layer
        self.window = int(window_s * self.sample_rate)
        self.version = f"{backbone} {weights_hash(weights)} layer {layer} window {window_s:g}s"
        self._torch = torch

    def frames(self, source) -> np.ndarray:
        """Embedding frames of `source` (path or `(array, rate)`), mono at the backbone's rate."""
        from deepaq.audio import load_audio

        x, _ = load_audio(source, sample_rate=self.sample_rate, mono=True, min_seconds=MIN_WINDOW_S)
        x = x[0]
        starts = range(0, len(x), self.window)
        chunks = [x[s:s + self.window] for s in starts]
        chunks = [c for c in chunks if len(c) >= MIN_WINDOW_S * self.sample_rate] or chunks[:1]
        out = []
        with self._torch.inference_mode():
            for c in chunks:
                hidden = self.model(self._torch.from_numpy(np.ascontiguousarray(c))[None])
                out.append(hidden[self.layer, 0].double().numpy())
        return np.concatenate(out, axis=0)
