"""The compact backbone in plain numpy: the same network as `deepaq.models.compact`, no torch.

This is what scoring runs by default (`deepaq.models.numpy_net`): a core install has no
torch, and for this small network numpy is as fast as torch on a CPU. It reads the weights
torch trained (the `backbone.*` tensors of a DeePAQ checkpoint) and follows every setting
of the backbone's config; `tests/test_numpy_engine.py` holds it equal to the torch module
(1e-5 relative) for the shipped model and for random models of other configs.

The settings and the band layout (`DEFAULTS`, `band_edges`) live here, without torch, and
`deepaq.models.compact` imports them, so both implementations read one definition.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from deepaq.models.groups import block_mask, channel_group

DEFAULTS = {
    "sample_rate": 48_000,
    "n_fft": 2048,
    "hop": 960,
    "n_bands": 160,
    "band_scale_hz": 1000.0,
    "hidden": 128,
    "blocks": 6,
    "expansion": 2,
    "kernel": 5,
    "dilations": [1, 2, 4, 1, 2, 4],
    "downsample_after": [2, 4],
    "floor_db": -100.0,
    "envelope_bands": 0,  # > 0: also each band's temporal envelope inside the frame (see envelope_layout)
    "envelope_fft": 256,  # the short STFT of the envelope feature (hop: half of it)
    "region_edges_hz": [],  # cuts between frequency regions, each with its own channels (deepaq.models.groups)
}
BAND_GROUP = 20  # bands per block of the averaging matrix
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default


def band_edges(n_fft: int, sample_rate: int, n_bands: int, scale_hz: float) -> list[int]:
    """Bin edges of `n_bands` bands equally spaced on log(1 + f / scale_hz), each >= 1 bin wide."""
    bins = n_fft // 2 + 1
    top = math.log1p((sample_rate / 2) / scale_hz)
    edges = [0]
    for b in range(1, n_bands + 1):
        f = scale_hz * math.expm1(top * b / n_bands)
        edge = min(bins, max(edges[-1] + 1, round(f / (sample_rate / n_fft)) + 1))
        edges.append(edge)
    edges[-1] = bins
    return sorted(set(edges))


def band_average(edges: list[int]) -> np.ndarray:
    """`[bins, bands]` float32: column b averages the bins edges[b]:edges[b + 1]."""
    average = np.zeros((edges[-1], len(edges) - 1), np.float32)
    for band, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        average[lo:hi, band] = 1.0 / (hi - lo)
    return average


def envelope_layout(config: dict) -> tuple[int, int, int]:
    """(short hop, short frames per frame, left padding) of the envelope feature.

    Short frames of `envelope_fft` samples every `envelope_fft / 2`; frame t of the main STFT
    (centred on sample t * hop) owns the hop / short-hop short frames centred inside its own
    hop, [t * hop - hop / 2, t * hop + hop / 2): the left padding puts them there.
    """
    n, hop = int(config["envelope_fft"]), int(config["hop"])
    short = n // 2
    if n < 4 or n % 2 or hop % short or hop // short < 2:
        from deepaq.errors import ConfigError

        raise ConfigError(f"compact backbone: envelope_fft {n} must be even and half of it divide hop {hop} "
                          "at least twice")
    return short, hop // short, (n + hop - short) // 2


def feature_count(config: dict) -> int:
    """Width of the front end's output: level and flatness per band, plus the envelope bands."""
    c = full_config(config)
    bands = len(band_edges(c["n_fft"], c["sample_rate"], c["n_bands"], c["band_scale_hz"])) - 1
    envelope = len(band_edges(c["envelope_fft"], c["sample_rate"], c["envelope_bands"], c["band_scale_hz"])) - 1
    return 2 * bands + (envelope if c["envelope_bands"] else 0)


def region_count(config: dict) -> int:
    """How many frequency regions (channel groups) the configuration asks for, checked."""
    c = full_config(config)
    cuts = [float(f) for f in c["region_edges_hz"]]
    groups = len(cuts) + 1
    problem = None
    if any(not 0 < f < c["sample_rate"] / 2 for f in cuts) or cuts != sorted(set(cuts)):
        problem = f"region_edges_hz {cuts} must rise strictly inside (0, {c['sample_rate'] / 2:g}) Hz"
    elif c["hidden"] % groups or c["hidden"] * c["expansion"] % groups:
        problem = f"hidden {c['hidden']} (and its expansion) must split into {groups} equal channel groups"
    elif groups > 1 and len(set(feature_regions(c))) < groups:
        problem = f"every region of region_edges_hz {cuts} needs at least one band"
    if problem:
        from deepaq.errors import ConfigError

        raise ConfigError(f"compact backbone: {problem}")
    return groups


def feature_regions(config: dict) -> np.ndarray:
    """The frequency region of each front-end feature (by its band's centre frequency)."""
    c = full_config(config)

    def regions(n_fft: int, n_bands: int) -> np.ndarray:
        edges = np.array(band_edges(n_fft, c["sample_rate"], n_bands, c["band_scale_hz"]))
        centres = (edges[:-1] + edges[1:] - 1) / 2 * c["sample_rate"] / n_fft
        return np.searchsorted(np.asarray(c["region_edges_hz"], float), centres, side="right")

    band = regions(c["n_fft"], c["n_bands"])
    parts = [band, band]  # level and flatness of each band
    if c["envelope_bands"]:
        parts.append(regions(c["envelope_fft"], c["envelope_bands"]))
    return np.concatenate(parts)


def weight_masks(config: dict) -> dict[str, np.ndarray]:
    """Name -> 0/1 mask of each weight that channel groups make block-diagonal (none for one region)."""
    c = full_config(config)
    groups = region_count(c)
    if groups == 1:
        return {}
    hidden, wide = channel_group(c["hidden"], groups), channel_group(c["hidden"] * c["expansion"], groups)
    masks = {"project.weight": block_mask(hidden, feature_regions(c))}
    for i in range(c["blocks"]):
        masks[f"blocks.{i}.up.weight"] = block_mask(wide, hidden)
        masks[f"blocks.{i}.down.weight"] = block_mask(hidden, wide)
    return masks


def block_dilations(config: dict) -> list[int]:
    """Dilation of each block: the configured list, padded with 1s to `blocks` entries."""
    dilations = list(config["dilations"]) + [1] * max(0, config["blocks"] - len(config["dilations"]))
    return dilations[: config["blocks"]]


def full_config(config: dict | None) -> dict:
    """`config` over DEFAULTS; unknown settings raise ConfigError (never silently ignored)."""
    unknown = set(config or {}) - set(DEFAULTS)
    if unknown:
        from deepaq.errors import ConfigError

        raise ConfigError(f"compact backbone: unknown settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **(config or {})}


def parameter_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight of the backbone (names as in the torch module's state dict)."""
    c = full_config(config)
    h, wide = c["hidden"], c["hidden"] * c["expansion"]
    shapes = {"project.weight": (h, feature_count(c)), "project.bias": (h,)}
    for i in range(c["blocks"]):
        shapes.update({f"blocks.{i}.norm.weight": (h,), f"blocks.{i}.norm.bias": (h,),
                       f"blocks.{i}.depthwise.weight": (h, 1, c["kernel"]), f"blocks.{i}.depthwise.bias": (h,),
                       f"blocks.{i}.up.weight": (wide, h), f"blocks.{i}.up.bias": (wide,),
                       f"blocks.{i}.down.weight": (h, wide), f"blocks.{i}.down.bias": (h,)})
    return shapes


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, x * Phi(x), as torch.nn.functional.gelu computes it."""
    from scipy.special import erf

    return x * (0.5 * (1.0 + erf(x * np.float32(1.0 / math.sqrt(2.0)))))


class CompactNumpy:
    """Band features -> projection -> residual conv blocks, on float32 numpy arrays.

    `weights` maps the backbone's parameter names (`parameter_shapes`) to arrays.
    """

    name = "compact"
    parameter_shapes = staticmethod(parameter_shapes)

    def __init__(self, config: dict | None, weights: dict[str, np.ndarray]):
        self.config = c = full_config(config)
        self.sample_rate = int(c["sample_rate"])
        self.n_fft, self.hop, self.floor_db = int(c["n_fft"]), int(c["hop"]), float(c["floor_db"])
        edges = band_edges(self.n_fft, self.sample_rate, c["n_bands"], c["band_scale_hz"])
        self.n_bands = len(edges) - 1
        self.hidden_size = int(c["hidden"])
        self.num_hidden_states = 1 + int(c["blocks"])
        self.kernel = int(c["kernel"])
        self.dilations = block_dilations(c)
        self.downsample_after = set(c["downsample_after"])
        # column b of a group's matrix averages the bins of band b (see compact.BandFeatures)
        self.groups = []
        for b0 in range(0, self.n_bands, BAND_GROUP):
            b1 = min(b0 + BAND_GROUP, self.n_bands)
            lo, hi = edges[b0], edges[b1]
            average = np.zeros((hi - lo, b1 - b0), np.float32)
            for band in range(b0, b1):
                average[edges[band] - lo:edges[band + 1] - lo, band - b0] = 1.0 / (edges[band + 1] - edges[band])
            self.groups.append((lo, hi, average))
        n = np.arange(self.n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft)  # periodic Hann, as torch.hann_window
        self.window = (window * (2.0 / window.sum())).astype(np.float32)
        self.envelope = None
        if c["envelope_bands"]:
            n = int(c["envelope_fft"])
            average = band_average(band_edges(n, self.sample_rate, c["envelope_bands"], c["band_scale_hz"]))
            w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
            self.envelope = (n, *envelope_layout(c), (w * (2.0 / w.sum())).astype(np.float32), average)
        self.channel_groups = region_count(c)
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
        for name, mask in weight_masks(c).items():  # as the torch model computes them
            self.w[name] = self.w[name] * mask
        # Linear layers as x @ W.T: keep the transposes
        self.t = {k: np.ascontiguousarray(v.T) for k, v in self.w.items()
                  if k.endswith(".weight") and v.ndim == 2}

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """`[B, T]` -> `[B, frames, 2 * bands]`: scaled band levels and flatness."""
        pad = self.n_fft // 2
        if waveform.shape[-1] <= pad:
            raise ValueError(f"band features need more than {pad} samples per signal, got {waveform.shape[-1]}")
        padded = np.pad(np.asarray(waveform, np.float32), ((0, 0), (pad, pad)), mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=1)[:, ::self.hop]
        spec = scipy.fft.rfft(frames * self.window, axis=-1)  # float32 throughout, several times numpy.fft's speed here
        power = np.square(spec.real)
        power += np.square(spec.imag)
        power += np.float32(10 ** (self.floor_db / 10))
        power = power.astype(np.float32, copy=False)
        level = 10 * np.log10(self._band_means(power))
        flatness = 10 * self._band_means(np.log10(power, out=power)) - level
        out = [(level + np.float32(50.0)) / np.float32(25.0), flatness / np.float32(5.0)]
        if self.envelope is not None:
            out.append(self._envelope(np.asarray(waveform, np.float32), level.shape[1]))
        return np.concatenate(out, 2)

    def _envelope(self, waveform: np.ndarray, frames: int) -> np.ndarray:
        """`[B, T]` -> `[B, frames, envelope bands]`: per frame, the standard deviation of each
        band's level (dB) over its short frames, / 10 (see compact.EnvelopeFeatures)."""
        n, short, count, left, window, average = self.envelope
        right = max(0, (frames * count - 1) * short + n - left - waveform.shape[-1])
        padded = np.pad(waveform, ((0, 0), (left, right)), mode="reflect")
        shorts = np.lib.stride_tricks.sliding_window_view(padded, n, axis=1)[:, ::short][:, :frames * count]
        spec = scipy.fft.rfft(shorts * window, axis=-1)
        power = (np.square(spec.real) + np.square(spec.imag) + np.float32(10 ** (self.floor_db / 10))).astype(np.float32)
        level = 10 * np.log10(power @ average)
        return level.reshape(len(waveform), frames, count, -1).std(axis=2) / np.float32(10.0)

    def _band_means(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[..., lo:hi] @ average for lo, hi, average in self.groups], -1)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        out = x @ self.t[f"{name}.weight"]
        out += self.w[f"{name}.bias"]
        return out

    def _block(self, x: np.ndarray, i: int, dilation: int) -> np.ndarray:
        p = f"blocks.{i}"
        # layer norm over each channel group's channels (one group: over all of them)
        g = x.reshape(*x.shape[:-1], self.channel_groups, -1)
        centred = g - g.mean(-1, keepdims=True)
        var = np.square(centred).mean(-1, keepdims=True)
        y = (centred / np.sqrt(var + np.float32(LAYER_NORM_EPS))).reshape(x.shape)
        y = y * self.w[f"{p}.norm.weight"] + self.w[f"{p}.norm.bias"]
        # depthwise dilated conv over time, zero padded to keep the frame count
        half = dilation * (self.kernel // 2)
        yp = np.pad(y, ((0, 0), (half, half), (0, 0)))
        frames = x.shape[1]
        taps = self.w[f"{p}.depthwise.weight"][:, 0, :]  # [hidden, kernel]
        conv = np.broadcast_to(self.w[f"{p}.depthwise.bias"], y.shape).copy()
        for j in range(self.kernel):
            conv += yp[:, j * dilation:j * dilation + frames] * taps[:, j]
        return x + self._linear(gelu(self._linear(conv, f"{p}.up")), f"{p}.down")

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """`[B, T]` -> hidden states `[1 + blocks, B, frames, hidden]` (all at the full frame rate)."""
        x = self._linear(self.features(waveform), "project")
        frames = x.shape[1]
        states, factor = [x], 1
        for i, dilation in enumerate(self.dilations):
            x = self._block(x, i, dilation)
            states.append(x if factor == 1 else np.repeat(x, factor, axis=1)[:, :frames])
            if i + 1 in self.downsample_after:
                x = _average_pairs(x)
                factor *= 2
        return np.stack(states)

    def frame_lengths(self, lengths: np.ndarray) -> np.ndarray:
        """Valid frames of signals of `lengths` samples (centred frames: one more than whole hops)."""
        return np.asarray(lengths) // self.hop + 1


def _average_pairs(x: np.ndarray) -> np.ndarray:
    """Halve the frame rate of `[B, frames, H]` by averaging neighbours; an odd last frame stays
    on its own (avg_pool1d(2, ceil_mode=True))."""
    even = x.shape[1] // 2 * 2
    pairs = (x[:, 0:even:2] + x[:, 1:even:2]) * np.float32(0.5)
    return pairs if even == x.shape[1] else np.concatenate([pairs, x[:, even:]], 1)
