"""PEAQ Basic end to end: input checks, data boundaries, framing, MOVs, neural network.

    from deepaq.baselines.peaq import peaq
    result = peaq(reference="ref.wav", degraded="coded.wav")
    result.odg, result.distortion_index, result.movs["AvgModDiff1B"], result.mms_2f

Conventions of ITU-R BS.1387-1 as implemented by Kabal's PQevalAudio (the implementation
the 2f-model was fitted with): 48 kHz; a full-scale sine is 92 dB SPL; stereo MOVs are
computed per channel and averaged (the detection probability takes the louder channel per
band); frames before the reference's data boundary (5-sample window, sum of |x| > 200 on
the 16-bit scale) warm the filters up but are not averaged; the last frame must hold at
least half a frame of data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from deepaq.baselines.peaq import earmodel, movs
from deepaq.baselines.peaq import tables as T
from deepaq.baselines.twof import mms_2f
from deepaq.errors import AudioError

if TYPE_CHECKING:
    from deepaq.audio import AudioSource

# The averages need 0.5 s of delay plus a 100 ms window; below that PEAQ has nothing to say.
MIN_SECONDS = 0.6
BOUNDARY_WINDOW = 5  # samples summed for the data boundary
BOUNDARY_THRESHOLD = 200.0  # sum of |x| on the 16-bit scale
BOUNDARY_BUFFER = 2048  # PQevalAudio searches in buffers of this size (overlap 4 samples)
END_MIN = T.HOP  # samples of data the last frame must hold
BLOCK_FRAMES = 256  # frames whose spectra are held at once (about 5.5 s; bounds memory)


@dataclass(frozen=True)
class PeaqResult:
    """PEAQ Basic outputs for one pair (ODG: 0 imperceptible ... -4 very annoying)."""

    movs: dict[str, float]
    distortion_index: float
    odg: float
    mms_2f: float  # 2f-model MUSHRA score from AvgModDiff1B and ADBB, 0-100
    channels: int
    frames: int  # PEAQ frames between the data boundaries (the ones averaged)
    data_bounds: tuple[int, int]  # first and last sample of the reference's data
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Flat dict: the MOVs by name, then DI, ODG, 2f MMS and the bookkeeping."""
        out = dict(self.movs)
        out.update(
            distortion_index=self.distortion_index,
            odg=self.odg,
            mms_2f=self.mms_2f,
            channels=self.channels,
            frames=self.frames,
            data_start=self.data_bounds[0],
            data_end=self.data_bounds[1],
        )
        return out


def peaq(*, reference: AudioSource, degraded: AudioSource) -> PeaqResult:
    """PEAQ Basic of `degraded` against `reference`: the 11 MOVs, DI, ODG and the 2f MMS.

    Each input is a path or an `(array, sample_rate)` tuple (array `[channels, samples]` or
    1-D, floats in [-1, 1] or integers). Other rates are resampled to 48 kHz (with a
    warning); mono and stereo are supported, and both inputs must have the same channel
    count. The pair must be time-aligned already. Raises `AudioError` for unusable input.
    """
    ref, ref_name = _load(reference, "reference")
    deg, deg_name = _load(degraded, "degraded")
    if ref.shape[0] != deg.shape[0]:
        raise AudioError(deg_name, f"has {deg.shape[0]} channel(s) but the reference {ref_name} has {ref.shape[0]}")
    notes = []
    if ref.shape[1] != deg.shape[1]:
        n = min(ref.shape[1], deg.shape[1])
        notes.append(f"lengths differ ({ref.shape[1]} vs {deg.shape[1]} samples): both cut to {n}")
        warnings.warn(f"{deg_name}: {notes[-1]}", stacklevel=2)
        ref, deg = ref[:, :n], deg[:, :n]
    return evaluate(ref, deg, names=(ref_name, deg_name), notes=notes)


def _load(source: AudioSource, role: str) -> tuple[np.ndarray, str]:
    """Read and validate one input; returns float32 `[channels, samples]` at 48 kHz."""
    from deepaq.audio import load_audio, resample

    name = str(source) if not isinstance(source, tuple) else f"<{role} array>"
    x, sr = load_audio(source, mono=False, name=name)
    if x.shape[0] > 2:
        raise AudioError(name, f"has {x.shape[0]} channels; PEAQ takes mono or stereo")
    if sr != T.SAMPLE_RATE:
        warnings.warn(f"{name}: resampled from {sr} Hz to 48000 Hz for PEAQ", stacklevel=3)
        x = resample(x, sr, T.SAMPLE_RATE)
    if x.shape[1] < MIN_SECONDS * T.SAMPLE_RATE:
        raise AudioError(
            name, f"is {x.shape[1] / T.SAMPLE_RATE:.3f} s long; PEAQ needs at least {MIN_SECONDS:g} s"
        )
    return x, name


def data_bounds(x: np.ndarray) -> tuple[int, int] | None:
    """First and last sample of data in `[channels, samples]` (full scale 1), or None if none.

    Data starts where the sum of |x| over 5 samples first exceeds 200/32768 and ends at the
    last sample of the last such window. With two channels PQevalAudio takes the later of
    the channels' starts found in the same 2048-sample search buffer, and the later of their
    ends; this is reproduced here. (For 16-bit audio the float sums are exact.)
    """
    a = np.abs(x)
    n = a.shape[-1] - BOUNDARY_WINDOW + 1
    sums = sum(a[..., i : i + n] for i in range(BOUNDARY_WINDOW))
    hit = sums > BOUNDARY_THRESHOLD / T.AMAX
    if not hit.any():
        return None
    firsts = [int(np.argmax(h)) for h in hit if h.any()]
    step = BOUNDARY_BUFFER - (BOUNDARY_WINDOW - 1)
    earliest = min(firsts)
    buffer_start = max(0, -(-(earliest - step + 1) // step)) * step  # first buffer holding that window
    buffer_end = buffer_start + BOUNDARY_BUFFER - BOUNDARY_WINDOW
    start = max(i for i in firsts if buffer_start <= i <= buffer_end)
    end = max(int(len(h) - 1 - np.argmax(h[::-1])) for h in hit if h.any()) + BOUNDARY_WINDOW - 1
    return start, end


@dataclass(frozen=True)
class _Frames:
    """Which frames of a pair PEAQ computes and averages (from the reference's data boundaries)."""

    bounds: tuple[int, int]
    start: int  # first frame averaged
    end: int  # last frame computed
    skip: int  # frames of the 0.5 s settling time not averaged, counted from `start`
    window: int  # frames of the 100 ms sliding window

    @property
    def count(self) -> int:
        return self.end - self.start + 1


def _plan(ref: np.ndarray, name: str) -> _Frames:
    bounds = data_bounds(ref)
    if bounds is None:
        raise AudioError(name, "is silent for PEAQ (no 5 samples sum above 200/32768 in magnitude)")
    start = bounds[0] // T.HOP
    end = max(start, int((bounds[1] + 1 - END_MIN) / T.HOP))  # C truncation
    skip = max(0, int(np.ceil(0.5 * T.FRAME_RATE)) - start)  # 0.5 s settling, minus warm-up
    window = int(np.floor(0.1 * T.FRAME_RATE))
    plan = _Frames(bounds, start, end, skip, window)
    if plan.count - skip < window:
        seconds = (bounds[1] - bounds[0] + 1) / T.SAMPLE_RATE
        raise AudioError(
            name, f"has only {seconds:.3f} s of signal between its data boundaries; PEAQ needs at least {MIN_SECONDS:g} s"
        )
    return plan


def evaluate(
    ref: np.ndarray,
    deg: np.ndarray,
    names: tuple[str, str] = ("<reference>", "<degraded>"),
    notes: list[str] | None = None,
) -> PeaqResult:
    """PEAQ of aligned `[channels, samples]` float signals (full scale 1) at 48 kHz."""
    plan = _plan(ref, names[0])
    per_channel = [_channel(r, d, plan.end + 1, plan.start) for r, d in zip(ref, deg)]
    mov = _average(per_channel, plan.count, plan.skip, plan.window)
    di, odg = network(mov)
    values = dict(zip(T.MOV_NAMES, mov))
    return PeaqResult(
        movs=values,
        distortion_index=di,
        odg=odg,
        mms_2f=mms_2f(values["AvgModDiff1B"], values["ADBB"]),
        channels=ref.shape[0],
        frames=plan.count,
        data_bounds=plan.bounds,
        notes=list(notes or []),
    )


def evaluate_2f(ref: np.ndarray, deg: np.ndarray, name: str = "<reference>") -> float:
    """The 2f-model's MMS of aligned `[channels, samples]` signals at 48 kHz, computing only
    its two MOVs (AvgModDiff1B, ADBB): the same value as `evaluate(...).mms_2f` in about half
    the time, for the full-reference score that reads it (`deepaq.scoring.fusion`)."""
    plan = _plan(ref, name)
    avg_mod_diff1, p, q = [], [], []
    for r, d in zip(ref, deg):
        es = _spectral(r, d, plan.end + 1, full=False)["es"]
        ehs = earmodel.time_spread(es)
        mod, eavg = movs.modulation(es)
        md1, _, wt = movs.modulation_difference(mod[0], mod[1], eavg[0])
        keep = slice(plan.start + plan.skip, None)
        avg_mod_diff1.append(movs.weighted_average(md1[keep], wt[keep]))
        pc, qc = movs.detection(ehs[0, plan.start :], ehs[1, plan.start :])
        p.append(pc)
        q.append(qc)
    adb, _ = movs.average_detection(np.stack(p), np.stack(q))
    return mms_2f(float(np.mean(avg_mod_diff1)), adb)


def _frame_block(x: np.ndarray, first: int, count: int) -> np.ndarray:
    """Frames `first .. first + count - 1` (2048 samples every 1024) of a 1-D signal, on the
    16-bit scale and zero-padded past its end."""
    start = first * T.HOP
    block = np.zeros((count - 1) * T.HOP + T.FRAME)
    part = x[start : start + block.size]
    block[: part.size] = part
    block *= T.AMAX
    return np.lib.stride_tricks.sliding_window_view(block, T.FRAME)[:: T.HOP]


def _spectral(ref: np.ndarray, deg: np.ndarray, count: int, full: bool = True) -> dict[str, np.ndarray]:
    """Everything that needs the spectra, frame by frame, in blocks of frames so that long
    inputs never hold all their spectra at once: unsmeared excitation `[2, frames, bands]`,
    and with `full` noise patterns, bandwidths and EHS values."""
    blocks = []
    for first in range(0, count, BLOCK_FRAMES):
        n = min(BLOCK_FRAMES, count - first)
        frames = np.stack([_frame_block(ref, first, n), _frame_block(deg, first, n)])
        x2 = earmodel.power_spectrum(frames)
        xw2 = earmodel.ear_weighted(x2)
        if not full:
            blocks.append({"es": earmodel.excitation(xw2)})
            continue
        bw_ref, bw_test = movs.bandwidth(x2[0], x2[1])
        blocks.append({
            "es": earmodel.excitation(xw2),
            "noise": earmodel.noise_bands(xw2[0], xw2[1]),
            "bw_ref": bw_ref,
            "bw_test": bw_test,
            "ehs": movs.harmonic_structure(frames[0], frames[1], x2[0], x2[1]),
        })
    return {k: np.concatenate([b[k] for b in blocks], axis=-2 if k == "es" else 0) for k in blocks[0]}


def _channel(ref: np.ndarray, deg: np.ndarray, count: int, first: int) -> dict[str, np.ndarray]:
    """Per-frame MOV precursors of one channel for the frames from `first` on."""
    spectral = _spectral(ref, deg, count)
    es = spectral["es"]
    ehs = earmodel.time_spread(es)
    ep_ref, ep_test = movs.adapt(ehs[0], ehs[1])
    mod, eavg = movs.modulation(es)
    md1, md2, wt = movs.modulation_difference(mod[0], mod[1], eavg[0])
    keep = slice(first, None)
    nmr_avg, nmr_max = movs.noise_to_mask(spectral["noise"][keep], ehs[0, keep])
    p, q = movs.detection(ehs[0, keep], ehs[1, keep])
    return {
        "loud_ref": movs.loudness(ehs[0, keep]),
        "loud_test": movs.loudness(ehs[1, keep]),
        "md1": md1[keep],
        "md2": md2[keep],
        "wt": wt[keep],
        "nl": movs.noise_loudness(mod[0], mod[1], ep_ref, ep_test)[keep],
        "bw_ref": spectral["bw_ref"][keep],
        "bw_test": spectral["bw_test"][keep],
        "nmr_avg": nmr_avg,
        "nmr_max": nmr_max,
        "p": p,
        "q": q,
        "ehs": spectral["ehs"][keep],
    }


def _average(ch: list[dict[str, np.ndarray]], n_frames: int, skip: int, window: int) -> list[float]:
    """Time averages over frames, averaged over channels, in the network's MOV order."""

    def mean(f) -> float:
        return float(np.mean([f(c) for c in ch]))

    # RmsNoiseLoudB starts 50 ms after both signals first exceed 0.1 sone (in any channel).
    audible = [(c["loud_ref"] > 0.1) & (c["loud_test"] > 0.1) for c in ch]
    loud = min(int(np.argmax(a)) if a.any() else n_frames for a in audible)
    skip_nl = max(loud + int(np.ceil(0.05 * T.FRAME_RATE)), skip)
    adb, mfpd = movs.average_detection(np.stack([c["p"] for c in ch]), np.stack([c["q"] for c in ch]))
    return [
        mean(lambda c: movs.mean_nonnegative(c["bw_ref"])),
        mean(lambda c: movs.mean_nonnegative(c["bw_test"])),
        mean(lambda c: 10.0 * np.log10(np.mean(c["nmr_avg"]))),
        mean(lambda c: movs.windowed_average(c["md1"][skip:], window)),
        adb,
        1000.0 * mean(lambda c: movs.mean_nonnegative(c["ehs"])),
        mean(lambda c: movs.weighted_average(c["md1"][skip:], c["wt"][skip:])),
        mean(lambda c: movs.weighted_average(c["md2"][skip:], c["wt"][skip:])),
        mean(lambda c: movs.rms(c["nl"][skip_nl:])),
        mfpd,
        mean(lambda c: float(np.mean(c["nmr_max"] > 10.0**0.15))),
    ]


def network(mov: list[float] | np.ndarray) -> tuple[float, float]:
    """The standard's neural network: MOVs -> (Distortion Index, Objective Difference Grade)."""
    x = (np.asarray(mov, dtype=float) - T.NN_AMIN) / (T.NN_AMAX - T.NN_AMIN)
    hidden = 1.0 / (1.0 + np.exp(-(T.NN_WXB + x @ T.NN_WX)))
    di = float(T.NN_WYB + hidden @ T.NN_WY)
    odg = T.ODG_MIN + (T.ODG_MAX - T.ODG_MIN) / (1.0 + np.exp(-di))
    return di, float(odg)
