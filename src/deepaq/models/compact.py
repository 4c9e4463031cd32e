"""The compact backbone of the built-in default model: full-band 48 kHz, fast on a CPU.

Front end (fixed, no weights): a 2048-point STFT every `hop` samples (20 ms by default, 40 ms
in the shipped model; 23 Hz bins up to 24 kHz), power averaged over `n_bands` bands on a
log(1 + f / 1 kHz) scale, and two features per band:

    level      10 log10(mean power in the band)                       (floor -100 dB)
    flatness   mean over the band's bins of 10 log10(power) - level   (<= 0 dB)

The level sees band limits and noise; the flatness sees spectral holes and sparse
quantisation inside a band at the STFT's full resolution, both typical codec artefacts.
Band means are products with a fixed [bins, bands] averaging matrix (block by block).

With `envelope_bands = E > 0`, a third feature group: a short STFT (`envelope_fft` samples,
hop half of it) cut into the frame's own short frames, band levels of E coarser bands on
the same scale, and per band

    envelope   standard deviation of the short-frame levels (dB) within the frame, / 10

the temporal fine structure that 40 ms frames average away: a codec's noise filling the
gaps between drum hits, pre-echo and smeared attacks lower it; band levels barely move.

Trunk: a linear projection to `hidden` channels, then `blocks` residual 1-D ConvNeXt-style
blocks over time (LayerNorm, depthwise conv with growing dilation, pointwise MLP), halving
the frame rate after the blocks listed in `downsample_after`. Hidden states returned: the
projection's output and every block's output (1 + blocks states, each `hidden` wide), as a
transformer backbone returns its layers, so DeepaqNet pools them the same way.

With `region_edges_hz = [f1, ...]`, the spectrum is cut into regions at those frequencies
and the hidden channels into as many equal groups: group g is projected from region g's
features only, normalised on its own, and its pointwise MLPs and head rows stay inside the
group (block-diagonal weights, `deepaq.models.groups`), so each region has its own part of
the embedding (the "regions" pair distance sums the parts' distances).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepaq.models.backbones import Backbone, register_backbone
# the settings and band layout are shared with the numpy implementation (no torch there)
from deepaq.models.compact_numpy import (BAND_GROUP, band_average, band_edges, block_dilations, envelope_layout,
                                        feature_count, full_config, region_count, weight_masks)
from deepaq.models.deepaq_net import MaskedLinear


class BandFeatures(nn.Module):
    """Waveform [B, T] -> band level and flatness [B, frames, 2 * bands] (see module docstring)."""

    def __init__(self, n_fft: int, hop: int, sample_rate: int, n_bands: int, scale_hz: float, floor_db: float):
        super().__init__()
        self.n_fft, self.hop, self.floor_db = n_fft, hop, floor_db
        edges = band_edges(n_fft, sample_rate, n_bands, scale_hz)
        self.n_bands = len(edges) - 1
        # [bins, bands]: column b averages the bins of band b. Each band's mean is a sum of its
        # own bins only, so float32 is exact enough (a difference of running sums over all
        # bins, tried first, needed float64: the loud low bands swamp a quiet high band).
        average = torch.zeros(n_fft // 2 + 1, self.n_bands)
        for band, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            average[lo:hi, band] = 1.0 / (hi - lo)
        self.register_buffer("average", average, persistent=False)
        # The matrix is block-diagonal: groups of BAND_GROUP bands, each multiplied with its
        # own bins only, skip the zeros (a third of the time of the full product, same sums).
        self.groups = [(edges[b], edges[min(b + BAND_GROUP, self.n_bands)], b, min(b + BAND_GROUP, self.n_bands))
                       for b in range(0, self.n_bands, BAND_GROUP)]
        # Hann window scaled so that a full-scale sine reads about 0 dB
        window = torch.hann_window(n_fft)
        self.register_buffer("window", window * (2.0 / window.sum()), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        pad = self.n_fft // 2
        if waveform.shape[-1] <= pad:
            raise ValueError(f"band features need more than {pad} samples per signal, got {waveform.shape[-1]}")
        # centred frames with reflected ends (as torch.stft(center=True)), framed without a copy;
        # few full-size temporaries, because fresh memory costs more here than the arithmetic
        padded = torch.cat([waveform[:, 1:pad + 1].flip(1), waveform, waveform[:, -pad - 1:-1].flip(1)], 1)
        spec = torch.fft.rfft(padded.unfold(1, self.n_fft, self.hop) * self.window)  # [B, frames, bins]
        power = spec.real.square()
        power.addcmul_(spec.imag, spec.imag).add_(10 ** (self.floor_db / 10))
        # the columns of `average` sum to 1, so the band means of the floored power are floored too
        level = 10 * torch.log10(self._band_means(power))
        flatness = 10 * self._band_means(torch.log10_(power)) - level
        # fixed scaling to roughly unit range: levels around -50 dB, flatness a few dB below 0
        return torch.cat([(level + 50.0) / 25.0, flatness / 5.0], 2)

    def _band_means(self, x: torch.Tensor) -> torch.Tensor:
        """[B, frames, bins] -> [B, frames, bands]: `x @ self.average`, group by group."""
        return torch.cat([x[..., lo:hi] @ self.average[lo:hi, b0:b1] for lo, hi, b0, b1 in self.groups], -1)


class EnvelopeFeatures(nn.Module):
    """Waveform [B, T] -> per frame the spread of short-frame band levels [B, frames, bands] (module docstring)."""

    def __init__(self, config: dict):
        super().__init__()
        c = full_config(config)
        self.n_fft, self.floor_db = int(c["envelope_fft"]), float(c["floor_db"])
        self.short, self.count, self.left = envelope_layout(c)
        edges = band_edges(self.n_fft, int(c["sample_rate"]), c["envelope_bands"], c["band_scale_hz"])
        self.register_buffer("average", torch.from_numpy(band_average(edges)), persistent=False)
        window = torch.hann_window(self.n_fft)
        self.register_buffer("window", window * (2.0 / window.sum()), persistent=False)

    def forward(self, waveform: torch.Tensor, frames: int) -> torch.Tensor:
        right = max(0, (frames * self.count - 1) * self.short + self.n_fft - self.left - waveform.shape[-1])
        if waveform.shape[-1] <= max(self.left, right):
            raise ValueError(f"envelope features need more than {max(self.left, right)} samples per signal, "
                             f"got {waveform.shape[-1]}")
        padded = torch.cat([waveform[:, 1:self.left + 1].flip(1), waveform,
                            waveform[:, waveform.shape[-1] - right - 1:-1].flip(1)], 1)
        shorts = padded.unfold(1, self.n_fft, self.short)[:, :frames * self.count]
        spec = torch.fft.rfft(shorts * self.window)
        power = spec.real.square() + spec.imag.square() + 10 ** (self.floor_db / 10)
        level = 10 * torch.log10(power @ self.average)
        return level.reshape(waveform.shape[0], frames, self.count, -1).std(dim=2, correction=0) / 10.0


class GroupLayerNorm(nn.LayerNorm):
    """LayerNorm over each of `groups` equal channel groups on its own (one group: nn.LayerNorm)."""

    def __init__(self, hidden: int, groups: int):
        super().__init__(hidden)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return super().forward(x)
        y = F.layer_norm(x.unflatten(-1, (self.groups, -1)), (x.shape[-1] // self.groups,), eps=self.eps)
        return y.flatten(-2) * self.weight + self.bias


def linear(in_features: int, out_features: int, mask: np.ndarray | None) -> nn.Linear:
    """nn.Linear, or a MaskedLinear where channel groups make the weight block-diagonal."""
    return nn.Linear(in_features, out_features) if mask is None else MaskedLinear(in_features, out_features, mask)


class Block(nn.Module):
    """Residual block over time: LayerNorm, depthwise dilated conv, pointwise MLP."""

    def __init__(self, hidden: int, expansion: int, kernel: int, dilation: int, groups: int = 1,
                 masks: dict[str, np.ndarray] | None = None):
        super().__init__()
        masks = masks or {}
        self.norm = GroupLayerNorm(hidden, groups)
        self.depthwise = nn.Conv1d(hidden, hidden, kernel, padding=dilation * (kernel // 2), dilation=dilation, groups=hidden)
        self.up = linear(hidden, hidden * expansion, masks.get("up"))
        self.down = linear(hidden * expansion, hidden, masks.get("down"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, frames, hidden]
        y = self.depthwise(self.norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.down(F.gelu(self.up(y)))


class CompactBackbone(Backbone):
    """Band (and envelope) features -> projection -> residual conv blocks; returns 1 + blocks hidden states."""

    name = "compact"
    lora_target_modules = ("up", "down")
    weights_source = None  # the checkpoint stores these weights itself

    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = full_config(config)
        c = self.config
        self.sample_rate = int(c["sample_rate"])
        self.features = BandFeatures(c["n_fft"], c["hop"], self.sample_rate, c["n_bands"], c["band_scale_hz"], c["floor_db"])
        self.envelope = EnvelopeFeatures(c) if c["envelope_bands"] else None
        self.channel_groups = region_count(c)
        masks = weight_masks(c)
        self.project = linear(feature_count(c), c["hidden"], masks.get("project.weight"))
        self.blocks = nn.ModuleList(
            Block(c["hidden"], c["expansion"], c["kernel"], d, self.channel_groups,
                  {k: masks.get(f"blocks.{i}.{k}.weight") for k in ("up", "down")})
            for i, d in enumerate(block_dilations(c)))
        self.downsample_after = set(c["downsample_after"])
        self.hidden_size = int(c["hidden"])
        self.num_hidden_states = 1 + int(c["blocks"])

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        features = self.features(waveform)
        if self.envelope is not None:
            features = torch.cat([features, self.envelope(waveform, features.shape[1])], 2)
        x = self.project(features)
        frames = x.shape[1]
        states, factor = [x], 1
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            # every state goes back to the full frame rate, so one frame count masks them all
            states.append(x if factor == 1 else x.repeat_interleave(factor, 1)[:, :frames])
            if i in self.downsample_after:
                x = F.avg_pool1d(x.transpose(1, 2), 2, ceil_mode=True).transpose(1, 2)
                factor *= 2
        return torch.stack(states)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths, self.config["hop"], rounding_mode="floor") + 1

    def config_dict(self) -> dict:
        return dict(self.config)


@register_backbone("compact")
def build_compact(config: dict, weights=None) -> CompactBackbone:
    """The compact backbone; its weights always come from a DeePAQ checkpoint, never from `weights`."""
    if weights is not None:
        from deepaq.errors import ModelError

        raise ModelError(f"{weights}: the compact backbone has no separate base weights; load a deepaq checkpoint")
    return CompactBackbone(config)
