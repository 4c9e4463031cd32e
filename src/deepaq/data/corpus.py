"""The clean training corpus: real recordings and renders from freely licensed sources.

`build_corpus(out_dir)` plans a fixed list of clips from a seed, then renders each one to a
48 kHz FLAC of `seconds` length:

- ``sonic-pi``: the CC0 recordings of Debian's sonic-pi-samples, one clip per file, looped
  at a tempo when the recording is shorter than a clip;
- ``drums``: Hydrogen drum kits (Debian hydrogen-drumkits) and the sonic-pi one-shots,
  sequenced into patterns (rock, funk, shuffle, ...) at several tempi with velocity layers;
- ``music``: scores from music21's corpus (Bach, Mozart, Joplin, folk tunes, ...) written to
  MIDI, given General MIDI instruments, tempo, dynamics and a stereo placement, and rendered
  by fluidsynth with the FluidR3 GM or MuseScore General sound font;
- ``speech``: espeak-ng in several languages, voices, speeds and pitches (mono);
- ``voices``: recorded human voices: words spoken by the voices of KDE's KTuberling (Debian
  ktuberling-data, about 15 languages), joined with short pauses into utterances (mono);
- ``phone``: recorded human voices at telephone bandwidth: the prompts of Asterisk's core
  sounds (Debian asterisk-core-sounds-{en,es,fr,it,ru}-wav, five professional speakers,
  8 kHz 16-bit PCM), phrases of one speaker joined with short pauses (mono, band-limited to
  4 kHz as the telephone delivers it);
- ``soundtrack``: recorded and produced music: excerpts of the game soundtracks Debian ships
  (wesnoth-1.16-music: orchestral, folk and choir recordings; hyperrogue-music), decoded from
  Vorbis files coded at `SOUNDTRACK_MIN_KBPS` or more (stereo);
- ``mixture``: a speech clip over a music or drum clip at a chosen speech-to-music ratio.

Debian packages are fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into
deepaq's cache folder (``$DEEPAQ_CACHE_DIR/corpus-sources``; no root needed), or read from
their installed location when the package is installed. Rendering is resumable: a clip whose FLAC exists is kept.
Failed clips are written to ``errors.csv`` and the build goes on. ``corpus.csv`` lists every
clip with its kind, source, licence and render parameters.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile as sf
import soxr

from deepaq.errors import DeepaqError

SAMPLE_RATE = 48_000

DEBIAN_PACKAGES = {
    "sonic-pi-samples": "usr/share/sonic-pi/samples",
    "hydrogen-drumkits": "usr/share/hydrogen/data/drumkits",
    "fluid-soundfont-gm": "usr/share/sounds/sf2/FluidR3_GM.sf2",
    "musescore-general-soundfont-lossless": "usr/share/sounds/sf2/MuseScore_General_Full.sf2",
    "ktuberling-data": "usr/share/ktuberling/sounds",
}
# Asterisk's recorded prompts: package -> licence (from each package's copyright file)
PHONE_PACKAGES = {
    "asterisk-core-sounds-en-wav": "CC-BY-SA-3.0 (asterisk-core-sounds-en-wav: Allison Smith)",
    "asterisk-core-sounds-es-wav": "CC-BY-SA-3.0 (asterisk-core-sounds-es-wav: Allison Smith)",
    "asterisk-core-sounds-fr-wav": "CC-BY-SA-3.0 (asterisk-core-sounds-fr-wav: June Wallack)",
    "asterisk-core-sounds-it-wav": "CC-BY-3.0 (asterisk-core-sounds-it-wav: Carlo Flora)",
    "asterisk-core-sounds-ru-wav": "CC-BY-3.0 (asterisk-core-sounds-ru-wav: Maxim Topal)",
}
DEBIAN_PACKAGES.update({package: "usr/share/asterisk/sounds" for package in PHONE_PACKAGES})
# Game soundtracks: package -> (music folder, licence from the package's copyright file)
SOUNDTRACK_PACKAGES = {
    "wesnoth-1.16-music": ("usr/share/games/wesnoth/1.16/data/core/music",
                           "GPL-2+ (wesnoth-1.16-music: Battle for Wesnoth's soundtrack, Vorbis)"),
    "hyperrogue-music": ("usr/share/hyperrogue/music", "GPL-2+ (hyperrogue-music: HyperRogue's soundtrack, Vorbis)"),
}
DEBIAN_PACKAGES.update({package: folder for package, (folder, _) in SOUNDTRACK_PACKAGES.items()})

LICENCES = {
    "sonic-pi": "CC0-1.0 (sonic-pi-samples)",
    "drums-hydrogen": "GPL-2+ / kit licence in hydrogen-drumkits' copyright file",
    "drums-sonic-pi": "CC0-1.0 (sonic-pi-samples)",
    "music-FluidR3_GM": "score: music21 corpus (public domain works); sound font: MIT (FluidR3_GM)",
    "music-MuseScore_General": "score: music21 corpus (public domain works); sound font: MIT (MuseScore General)",
    "speech": "espeak-ng synthesis (GPL-3+ program; its output is not restricted)",
    "voices": "GPL-2+ (ktuberling-data: KTuberling's recorded words, Vorbis)",
}
VOICE_MIN_KBPS = 96.0  # recorded words are Vorbis files: lower bitrates are left out
SOUNDTRACK_MIN_KBPS = 140.0  # stereo music from Vorbis files: only tracks coded this well or better
SOUNDTRACK_MIN_SECONDS = 20.0  # shorter tracks (jingles, stingers) are left out


class CorpusError(DeepaqError):
    """A corpus source that cannot be fetched, read or rendered."""


@dataclass(frozen=True)
class ClipSpec:
    """One planned clip: what to render and with which seed."""

    clip_id: str
    kind: str
    seed: int
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def relpath(self) -> str:
        return f"{self.kind}/{self.clip_id}.flac"


# ---------------------------------------------------------------- sources


def fetch_debian_package(package: str, cache_dir: Path) -> Path:
    """Download and unpack a Debian package into `cache_dir/<package>`; return its data path."""
    if package not in DEBIAN_PACKAGES:
        raise CorpusError(f"{package}: not a corpus source package")
    root = cache_dir / package
    target = root / DEBIAN_PACKAGES[package]
    if target.exists():
        return target
    system = Path("/") / DEBIAN_PACKAGES[package]
    if system.exists():
        return system
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise CorpusError(f"{package}: `{tool}` is not available to fetch it (a Debian-based system is needed)")
    download = cache_dir / "_debs"
    download.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["apt-get", "download", package], cwd=download, capture_output=True, text=True)
    debs = sorted(download.glob(f"{package}_*.deb"))
    if not debs:
        raise CorpusError(f"{package}: apt-get download failed: {result.stderr.strip()[-300:]}")
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True, capture_output=True)
    debs[-1].unlink()
    if not target.exists():
        raise CorpusError(f"{package}: unpacked, but {target} is missing")
    return target


def default_source_cache() -> Path:
    """Where source packages are unpacked: `corpus-sources` in deepaq's cache folder, never in OUT_DIR."""
    from deepaq.cache import default_cache_dir

    return default_cache_dir() / "corpus-sources"


def require_tool(name: str) -> str:
    """The path of a system program, or a CorpusError naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        raise CorpusError(f"{name}: program not found; install the Debian package `{name}`")
    return path


# ---------------------------------------------------------------- audio helpers


def read_48k(path: Path) -> np.ndarray:
    """Read any soundfile-readable file as float32 [channels, samples] at 48 kHz."""
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise CorpusError(f"{path}: cannot read audio: {exc}") from exc
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE)
    return np.ascontiguousarray(x.T, dtype=np.float32)


def to_stereo(x: np.ndarray, pan: float = 0.0) -> np.ndarray:
    """Mono -> stereo with a constant-power pan in [-1, 1]; stereo is returned as is."""
    if x.shape[0] >= 2:
        return x[:2]
    angle = (pan + 1.0) * math.pi / 4.0
    return np.vstack([x[0] * math.cos(angle), x[0] * math.sin(angle)]).astype(np.float32)


def set_level(x: np.ndarray, rms_dbfs: float, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale to an RMS level in dBFS, lowered where needed to keep the peak below `peak_dbfs`."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    if rms < 1e-6:
        raise CorpusError("rendered clip is silent")
    gain = 10 ** (rms_dbfs / 20) / rms
    peak = float(np.max(np.abs(x))) * gain
    if peak > 10 ** (peak_dbfs / 20):
        gain *= 10 ** (peak_dbfs / 20) / peak
    return (x * gain).astype(np.float32)


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Cut to n samples, starting at the first sound, with 5 ms fades at both ends."""
    energy = np.max(np.abs(x), axis=0)
    loud = np.flatnonzero(energy > 1e-3 * max(float(energy.max()), 1e-9))
    start = int(loud[0]) if loud.size else 0
    y = x[:, start : start + n]
    if y.shape[1] < n:
        raise CorpusError(f"rendered audio is {y.shape[1] / SAMPLE_RATE:.1f} s, shorter than the clip")
    fade = np.linspace(0.0, 1.0, SAMPLE_RATE // 200, dtype=np.float32)
    y = y.copy()
    y[:, : fade.size] *= fade
    y[:, -fade.size :] *= fade[::-1]
    return y


def place(track: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    """Add `sound` [channels, n] into `track` from sample `start`, cut at the track's end."""
    if start >= track.shape[1]:
        return
    n = min(sound.shape[1], track.shape[1] - start)
    track[:, start : start + n] += gain * sound[:, :n]


# ---------------------------------------------------------------- sonic-pi recordings


def render_loop(sample: np.ndarray, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A recording as it is when long enough, else triggered on a beat grid at a random tempo."""
    n = int(seconds * SAMPLE_RATE)
    x = to_stereo(sample, pan=float(rng.uniform(-0.5, 0.5)))
    if x.shape[1] >= n + SAMPLE_RATE // 10:
        start = int(rng.integers(0, x.shape[1] - n))
        return x[:, start:], {"mode": "excerpt", "start_s": start / SAMPLE_RATE}
    bpm = float(rng.uniform(70, 160))
    beat = 60.0 / bpm
    length = x.shape[1] / SAMPLE_RATE
    beats = max(1, round(length / beat)) if length > beat else int(rng.choice([1, 1, 2]))
    step = beats * beat * (0.5 if length < beat and rng.random() < 0.5 else 1.0)
    track = np.zeros((2, n + SAMPLE_RATE), dtype=np.float32)
    t = 0.0
    while t * SAMPLE_RATE < n:
        place(track, x, int(t * SAMPLE_RATE), float(rng.uniform(0.7, 1.0)))
        t += step
    return track, {"mode": "loop", "bpm": round(bpm, 1), "step_s": round(step, 3)}


# ---------------------------------------------------------------- drum kits and patterns

DRUM_CLASSES = ("kick", "snare", "hat", "tom", "cymbal", "perc")
_DRUM_WORDS = [
    ("kick", r"kick|bass ?drum|bassdrum|\bbd\b|^bd|kik"),
    ("hat", r"hat|\bhh\b|hh|hihat"),
    ("snare", r"snare|\bsn\b|^sn_|rim|clap"),
    ("tom", r"tom"),
    ("cymbal", r"crash|ride|splash|cymbal|china|bell"),
]


def drum_class(*names: str) -> str:
    """The drum class of an instrument from its name, then its sample file names."""
    for name in names:
        low = name.lower()
        for cls, pattern in _DRUM_WORDS:
            if re.search(pattern, low):
                return cls
    return "perc"


@dataclass
class DrumInstrument:
    name: str
    layers: list[tuple[float, float, Path]]  # velocity range and sample file
    pan: float = 0.0
    gain: float = 1.0


@dataclass
class DrumKit:
    name: str
    licence: str
    instruments: dict[str, list[DrumInstrument]]

    def playable(self) -> bool:
        return bool(self.instruments.get("kick")) and bool(self.instruments.get("snare"))


def load_hydrogen_kit(folder: Path) -> DrumKit:
    """Parse a Hydrogen drumkit.xml into instruments grouped by drum class."""
    xml_path = folder / "drumkit.xml"
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise CorpusError(f"{xml_path}: cannot parse drum kit: {exc}") from exc

    def text(node: ET.Element, tag: str, default: str = "") -> str:
        found = node.find(tag)
        return found.text.strip() if found is not None and found.text else default

    groups: dict[str, list[DrumInstrument]] = {c: [] for c in DRUM_CLASSES}
    for inst in root.iter("instrument"):
        layers = []
        for layer in inst.iter("layer"):
            fname = text(layer, "filename")
            if fname and (folder / fname).exists():
                layers.append((float(text(layer, "min", "0")), float(text(layer, "max", "1")), folder / fname))
        if not layers:  # old kits keep one sample per instrument outside <layer>
            fname = text(inst, "filename")
            if fname and (folder / fname).exists():
                layers.append((0.0, 1.0, folder / fname))
        if not layers:
            continue
        name = text(inst, "name")
        pan_l, pan_r = float(text(inst, "pan_L", "1")), float(text(inst, "pan_R", "1"))
        pan = (pan_r - pan_l) / max(pan_l + pan_r, 1e-6)
        cls = drum_class(name, *(p.name for _, _, p in layers))
        groups[cls].append(DrumInstrument(name, layers, pan, float(text(inst, "volume", "1"))))
    return DrumKit(folder.name, LICENCES["drums-hydrogen"], groups)


def sonic_pi_kit(samples_dir: Path) -> DrumKit:
    """The sonic-pi one-shots (bd_, sn_, drum_, elec_, tabla_, perc_) as one drum kit."""
    groups: dict[str, list[DrumInstrument]] = {c: [] for c in DRUM_CLASSES}
    for path in sorted(samples_dir.glob("*.flac")):
        stem = path.stem
        if not re.match(r"(bd|sn|drum|elec|tabla|perc)_", stem):
            continue
        if stem.startswith("bd_") or "kick" in stem or "drum_bass" in stem:
            cls = "kick"
        elif stem.startswith("sn_") or "snare" in stem or "snap" in stem:
            cls = "snare"
        elif stem in ("drum_cymbal_closed", "drum_cymbal_pedal", "elec_tick", "elec_triangle"):
            cls = "hat"
        elif "tom" in stem:
            cls = "tom"
        elif "cymbal" in stem or "splash" in stem:
            cls = "cymbal"
        else:
            cls = "perc"
        groups[cls].append(DrumInstrument(stem, [(0.0, 1.0, path)]))
    return DrumKit("sonic-pi", LICENCES["drums-sonic-pi"], groups)


# step patterns: class -> steps of a bar (16 steps, or 12 for the shuffle); "*" = every step
PATTERNS: dict[str, dict] = {
    "rock": {"steps": 16, "kick": [0, 8, 10], "snare": [4, 12], "hat": [0, 2, 4, 6, 8, 10, 12, 14]},
    "four": {"steps": 16, "kick": [0, 4, 8, 12], "snare": [4, 12], "hat": [2, 6, 10, 14]},
    "funk": {"steps": 16, "kick": [0, 3, 7, 10], "snare": [4, 12], "ghost": [6, 9, 14], "hat": "*"},
    "halftime": {"steps": 16, "kick": [0, 7], "snare": [8], "hat": [0, 2, 4, 6, 8, 10, 12, 14]},
    "breakbeat": {"steps": 16, "kick": [0, 6, 10], "snare": [4, 12, 15], "hat": [0, 2, 4, 6, 8, 10, 12, 14]},
    "shuffle": {"steps": 12, "kick": [0, 6], "snare": [3, 9], "hat": [0, 2, 3, 5, 6, 8, 9, 11]},
    "latin": {"steps": 16, "kick": [0, 3, 8, 11], "snare": [6, 14], "hat": "*", "perc": [2, 5, 10, 13]},
}


class SampleBank:
    """Drum samples read once at 48 kHz and kept in memory."""

    def __init__(self) -> None:
        self._cache: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            self._cache[path] = read_48k(path)
        return self._cache[path]


def render_drums(kit: DrumKit, seconds: float, rng: np.random.Generator, bank: SampleBank) -> tuple[np.ndarray, dict]:
    """A drum performance: a pattern at a tempo, bar variations, fills and crashes, humanised."""
    style = str(rng.choice(sorted(PATTERNS)))
    pattern = PATTERNS[style]
    steps = pattern["steps"]
    bpm = float(rng.uniform(75, 120) if style in ("halftime", "shuffle") else rng.uniform(85, 175))
    step_s = 60.0 / bpm * 4 / steps
    swing = float(rng.uniform(0, 0.25)) if steps == 16 and rng.random() < 0.4 else 0.0
    chosen = {c: kit.instruments[c][int(rng.integers(len(kit.instruments[c])))] for c in DRUM_CLASSES if kit.instruments[c]}
    pans = {c: (inst.pan if inst.pan else float(rng.uniform(-0.6, 0.6))) for c, inst in chosen.items()}
    pans["kick"] = pans["snare"] = 0.0
    n = int((seconds + 1.0) * SAMPLE_RATE)
    track = np.zeros((2, n + 4 * SAMPLE_RATE), dtype=np.float32)

    def hit(cls: str, t: float, velocity: float) -> None:
        inst = chosen.get(cls)
        if inst is None:
            return
        velocity = float(np.clip(velocity * rng.uniform(0.85, 1.1), 0.05, 1.0))
        layers = [lay for lay in inst.layers if lay[0] <= velocity <= lay[1]] or inst.layers
        sample = bank.get(layers[int(rng.integers(len(layers)))][2])
        jitter = rng.normal(0, 0.004)
        place(track, to_stereo(sample, pans[cls]), max(0, int((t + jitter) * SAMPLE_RATE)), velocity * inst.gain)

    bars = int(math.ceil(seconds / (steps * step_s))) + 1
    for bar in range(bars):
        t0 = bar * steps * step_s
        fill = bar % 4 == 3 and "tom" in chosen and rng.random() < 0.7
        if bar % 4 == 0 and "cymbal" in chosen:
            hit("cymbal", t0, 0.8)
        for s in range(steps):
            t = t0 + (s + (swing if s % 2 else 0.0)) * step_s
            if fill and s >= steps // 2:
                if rng.random() < 0.75:
                    hit("tom" if rng.random() < 0.7 else "snare", t, float(rng.uniform(0.5, 1.0)))
                continue
            for cls in ("kick", "snare", "hat", "perc"):
                steps_of = pattern.get(cls, [])
                if steps_of == "*" or s in steps_of:
                    accent = 0.9 if cls != "hat" else (0.75 if s % (steps // 4) == 0 else 0.5)
                    hit(cls, t, accent)
            if s in pattern.get("ghost", []):
                hit("snare", t, 0.25)
            if rng.random() < 0.04:
                hit("kick", t, 0.6)
    return track, {"kit": kit.name, "style": style, "bpm": round(bpm, 1), "swing": round(swing, 2)}


# ---------------------------------------------------------------- music from scores

# music21 corpus works; each render takes an excerpt of one of them
SCORES = [
    "bach/bwv66.6", "bach/bwv269", "bach/bwv347", "bach/bwv153.1", "bach/bwv86.6", "bach/bwv267",
    "bach/bwv10.7", "bach/bwv26.6", "bach/bwv40.8", "bach/bwv57.8", "bach/bwv846", "bach/",
    "beethoven/opus18no1/movement1", "mozart/k155/movement1",
    "mozart/k156/movement2", "mozart/k80/movement1", "haydn/opus74no1/movement3", "haydn/opus1no1/movement1",
    "joplin/maple_leaf_rag", "schumann_robert/opus41no1/movement2", "schumann_clara/opus17/movement3",
    "corelli/opus3no1/1grave", "handel/rinaldo/lascia_chio_pianga", "monteverdi/madrigal.3.1",
    "monteverdi/madrigal.4.1", "palestrina/Agnus_01", "palestrina/Kyrie_02",
    "josquin/laDeplorationDeLaMorteDeJohannesOckeghem", "verdi/laDonnaEMobile", "beach/prayer_of_a_tired_child",
    "chopin/mazurka06-2", "cpebach/h186", "ryansMammoth/",
]

# General MIDI programs by role; the lowest part gets a bass-register instrument
MELODIC_PROGRAMS = [0, 1, 4, 6, 8, 11, 12, 16, 19, 21, 22, 24, 25, 26, 27, 40, 41, 42, 45, 46, 48, 49,
                    52, 53, 56, 57, 60, 61, 64, 65, 66, 68, 69, 70, 71, 73, 74, 75, 79, 80, 81, 88, 89]
BASS_PROGRAMS = [32, 33, 34, 35, 42, 43, 57, 58, 70, 0, 19, 48]
ENSEMBLES = {
    "strings": ([40, 40, 41, 42], [42, 43]),
    "brass": ([56, 56, 60, 57], [58, 57]),
    "winds": ([73, 68, 71, 69], [70]),
    "choir": ([52, 52, 53, 52], [52]),
    "keys": ([0], [0]),
    "organ": ([19, 16], [19]),
    "guitars": ([24, 25, 26, 27], [32, 33]),
}


def _score_paths() -> list[str]:
    from music21 import corpus

    every = sorted(str(p) for p in corpus.getPaths())
    picked: list[str] = []
    for name in SCORES:
        if name.endswith("/"):  # a folder: up to 40 files spread over it
            hits = [p for p in every if f"/corpus/{name}" in p and not p.endswith(".rntxt")]
            picked.extend(hits[:: max(1, len(hits) // 40)][:40])
        else:
            pattern = re.compile(rf"/corpus/{re.escape(name)}\.(mxl|xml|musicxml|krn|abc)$", re.IGNORECASE)
            picked.extend([p for p in every if pattern.search(p)][:1])
    if not picked:
        raise CorpusError("music21 corpus: none of the chosen scores is present")
    return picked


def _score_to_midi(score_path: str, seconds: float, rng: np.random.Generator, out: Path) -> dict:
    """Write a MIDI excerpt of a score with chosen instruments, tempo, dynamics and pans."""
    import mido
    from music21 import converter, stream

    midi_path = out.with_suffix(".src.mid")
    try:  # music21 raises many exception types on odd scores (repeats, ties, encodings)
        parsed = converter.parse(score_path)
        if isinstance(parsed, stream.Opus):
            parsed = parsed.scores[int(rng.integers(len(parsed.scores)))]
        parsed.write("midi", fp=str(midi_path))
    except Exception as exc:  # noqa: BLE001 - reported as this clip's error
        raise CorpusError(f"{score_path}: music21 cannot convert it to MIDI: {type(exc).__name__}: {exc}") from exc
    bpm = float(rng.uniform(60, 150))
    need = (seconds + 2.0) * bpm / 60.0
    total = float(parsed.highestTime)
    if total <= 0:
        raise CorpusError(f"{score_path}: empty score")
    start = float(rng.uniform(0, max(0.0, total - need)))
    mid = mido.MidiFile(str(midi_path))
    start_ticks = int(start * mid.ticks_per_beat)
    end_ticks = start_ticks + int(need * mid.ticks_per_beat)
    ensemble = str(rng.choice(sorted(ENSEMBLES) + ["mixed", "mixed", "mixed"]))
    dynamics = float(rng.choice([0.35, 0.55, 0.75, 0.9, 1.0]))
    tempo = mido.bpm2tempo(bpm)
    tracks = [t for t in mid.tracks if any(m.type == "note_on" for m in t)]
    if not tracks:
        raise CorpusError(f"{score_path}: no notes")
    programs = []
    new = mido.MidiFile(ticks_per_beat=mid.ticks_per_beat)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo, time=0)])
    new.tracks.append(conductor)
    for i, track in enumerate(tracks):
        lowest = i == len(tracks) - 1 and len(tracks) > 1
        if ensemble == "mixed":
            program = int(rng.choice(BASS_PROGRAMS if lowest else MELODIC_PROGRAMS))
        else:
            upper, bass = ENSEMBLES[ensemble]
            program = int(bass[i % len(bass)] if lowest else upper[i % len(upper)])
        channel = i if i < 9 else i + 1  # channel 9 is percussion
        pan = 64 if len(tracks) == 1 else int(np.clip(64 + (i / (len(tracks) - 1) - 0.5) * rng.uniform(40, 110), 5, 122))
        balance = float(rng.uniform(0.8, 1.0))
        programs.append(program)
        out_track = mido.MidiTrack([
            mido.Message("program_change", channel=channel, program=program, time=0),
            mido.Message("control_change", channel=channel, control=10, value=pan, time=0),
            mido.Message("control_change", channel=channel, control=7, value=100, time=0),
        ])
        now, last = 0, start_ticks
        for msg in track:
            now += msg.time
            if now > end_ticks:
                break
            if msg.type not in ("note_on", "note_off") or now < start_ticks:
                continue
            velocity = msg.velocity
            if msg.type == "note_on" and velocity > 0:
                velocity = int(np.clip(velocity * dynamics * balance * rng.uniform(0.9, 1.1), 8, 127))
            out_track.append(msg.copy(channel=channel, velocity=velocity, time=now - last))
            last = now
        out_track.append(mido.Message("control_change", channel=channel, control=123, value=0, time=max(0, end_ticks - last)))
        new.tracks.append(out_track)
    new.save(str(out))
    midi_path.unlink(missing_ok=True)
    return {"score": score_path.split("/corpus/")[-1], "start_beats": round(start, 2), "bpm": round(bpm, 1),
            "ensemble": ensemble, "programs": programs, "dynamics": dynamics}


def render_music(soundfont: Path, seconds: float, rng: np.random.Generator, score_paths: list[str]) -> tuple[np.ndarray, dict]:
    """A score excerpt rendered by fluidsynth at 48 kHz stereo, with or without reverb."""
    fluidsynth = require_tool("fluidsynth")
    with tempfile.TemporaryDirectory(prefix="deepaq-corpus-") as tmp:
        midi = Path(tmp) / "piece.mid"
        for attempt in range(3):  # some corpus scores cannot be converted: try another one
            try:
                meta = _score_to_midi(score_paths[int(rng.integers(len(score_paths)))], seconds, rng, midi)
                break
            except CorpusError:
                if attempt == 2:
                    raise
        wav = Path(tmp) / "piece.wav"
        reverb = bool(rng.random() < 0.7)
        cmd = [fluidsynth, "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE), "-T", "wav", "-F", str(wav),
               "-o", f"synth.reverb.active={int(reverb)}", "-o", "synth.chorus.active=0", str(soundfont), str(midi)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not wav.exists():
            raise CorpusError(f"fluidsynth failed on {meta['score']}: {result.stderr.strip()[-300:]}")
        x = read_48k(wav)
    meta.update(soundfont=soundfont.stem, reverb=reverb)
    return x, meta


# ---------------------------------------------------------------- speech

SENTENCES = {
    "en": ["The quick brown fox jumps over the lazy dog near the river bank.",
           "Please call the office before noon if the train is late again.",
           "A cold wind blew across the hills while the children walked home.",
           "We measured the sound of every instrument in the old concert hall.",
           "Seven green bottles stood on the wall beside the open window."],
    "de": ["Der Zug nach Hamburg hat heute leider zwanzig Minuten Verspätung.",
           "Im Sommer wandern wir gern durch die Wälder und über die Berge.",
           "Die Musik klang im großen Saal wärmer als in der kleinen Kirche.",
           "Bitte schließen Sie das Fenster, bevor Sie das Haus verlassen."],
    "fr": ["Le petit chat dort tranquillement sur le canapé du salon.",
           "Nous avons écouté un concert magnifique hier soir à Paris.",
           "Il faut arriver à la gare avant huit heures du matin.",
           "La pluie tombe doucement sur les toits de la vieille ville."],
    "es": ["El tren de la mañana sale a las siete desde la estación central.",
           "Mi hermana toca la guitarra y canta canciones muy antiguas.",
           "El viento del mar trae el olor de la sal hasta la plaza."],
    "it": ["Domani andiamo al mercato a comprare frutta e verdura fresca.",
           "La musica di questa sera è stata davvero straordinaria.",
           "Il treno per Roma parte dal binario numero tre."],
    "pt": ["O sol nasceu cedo e iluminou toda a praia deserta.",
           "Eles escutaram a orquestra tocar até muito tarde."],
    "nl": ["De fiets staat al de hele dag buiten in de regen.",
           "Wij luisteren graag naar muziek op zondagochtend."],
    "sv": ["Vi åkte båt över sjön en tidig morgon i juli.",
           "Musiken spelades högt i den gamla kyrkan."],
    "pl": ["Wczoraj wieczorem słuchaliśmy koncertu w starym teatrze.",
           "Pociąg do Krakowa odjeżdża za dziesięć minut."],
    "fi": ["Aamulla satoi lunta ja tuuli puhalsi kylmästi järveltä."],
}
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt3", "croak",
            "Annie", "Alicia", "edward", "linda", "max", "steph", "robert", "Diogo"]


def render_speech(seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """espeak-ng sentences of one language and voice, joined with short pauses (mono)."""
    espeak = require_tool("espeak-ng")
    language = str(rng.choice(sorted(SENTENCES)))
    variant = str(rng.choice(VARIANTS))
    speed, pitch = int(rng.integers(120, 200)), int(rng.integers(25, 75))
    voice = f"{language}+{variant}"
    sentences = list(SENTENCES[language]) + list(SENTENCES["en"]) * (language != "en")
    pieces, total = [], 0
    with tempfile.TemporaryDirectory(prefix="deepaq-speech-") as tmp:
        while total < (seconds + 0.5) * SAMPLE_RATE:
            wav = Path(tmp) / f"s{len(pieces)}.wav"
            text = sentences[int(rng.integers(len(sentences)))]
            result = subprocess.run([espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                                    capture_output=True, text=True, timeout=60)
            if result.returncode != 0 or not wav.exists():
                raise CorpusError(f"espeak-ng failed for voice {voice}: {result.stderr.strip()[-300:]}")
            x = read_48k(wav)[:1]
            pause = np.zeros((1, int(rng.uniform(0.15, 0.5) * SAMPLE_RATE)), dtype=np.float32)
            pieces += [x, pause]
            total += x.shape[1] + pause.shape[1]
    return np.concatenate(pieces, axis=1), {"voice": voice, "speed": speed, "pitch": pitch}


def voice_files(sounds: Path) -> dict[str, list[Path]]:
    """KTuberling's recorded words by language folder, those coded at `VOICE_MIN_KBPS` or more."""
    voices: dict[str, list[Path]] = {}
    for path in sorted(sounds.glob("*/*.ogg")):
        try:
            info = sf.info(str(path))
        except (RuntimeError, sf.LibsndfileError):
            continue
        if info.duration > 0 and path.stat().st_size * 8 / info.duration / 1000 >= VOICE_MIN_KBPS:
            voices.setdefault(path.parent.name, []).append(path)
    return {lang: files for lang, files in voices.items() if len(files) >= 5}


def render_voices(seconds: float, rng: np.random.Generator, voices: dict[str, list[Path]],
                  source: str = "the ktuberling-data package") -> tuple[np.ndarray, dict]:
    """Recorded words or phrases of one speaker (a language's set) in random order with pauses (mono)."""
    if not voices:
        raise CorpusError(f"no recorded voices: {source} holds none at the needed quality")
    language = str(rng.choice(sorted(voices)))
    files = voices[language]
    pieces, words, total = [], [], 0
    while total < (seconds + 0.5) * SAMPLE_RATE:
        path = files[int(rng.integers(len(files)))]
        x = read_48k(path).mean(axis=0, keepdims=True)
        pause = np.zeros((1, int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)), dtype=np.float32)
        pieces += [x, pause]
        words.append(path.stem)
        total += x.shape[1] + pause.shape[1]
    return np.concatenate(pieces, axis=1), {"language": language, "words": words}


def phone_files(packages: dict[str, Path]) -> dict[str, tuple[list[Path], str]]:
    """Asterisk's prompts by speaker folder (e.g. `en_US_f_Allison`), with their licence: the
    phrases at the folder's top (digits, letters and the like are left out), 0.5 s or longer."""
    speakers: dict[str, tuple[list[Path], str]] = {}
    for package, sounds in packages.items():
        lang = package.split("-")[3]
        for folder in sorted(d for d in sounds.iterdir() if d.is_dir() and d.name.startswith(f"{lang}_")):
            files = [p for p in sorted(folder.glob("*.wav")) if _seconds(p) >= 0.5]
            if len(files) >= 5:
                speakers[folder.name] = (files, PHONE_PACKAGES[package])
    return speakers


def _seconds(path: Path) -> float:
    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, sf.LibsndfileError):
        return 0.0


def soundtrack_files(packages: dict[str, Path]) -> list[tuple[Path, str]]:
    """The soundtrack tracks (with their licence) coded at `SOUNDTRACK_MIN_KBPS` or more and at
    least `SOUNDTRACK_MIN_SECONDS` long."""
    tracks = []
    for package, folder in packages.items():
        for path in sorted(folder.glob("*.ogg")):
            try:
                info = sf.info(str(path))
            except (RuntimeError, sf.LibsndfileError):
                continue
            kbps = path.stat().st_size * 8 / max(info.duration, 1e-9) / 1000
            if info.duration >= SOUNDTRACK_MIN_SECONDS and kbps >= SOUNDTRACK_MIN_KBPS:
                tracks.append((path, SOUNDTRACK_PACKAGES[package][1]))
    return tracks


def render_soundtrack(seconds: float, rng: np.random.Generator, tracks: list[tuple[Path, str]]) -> tuple[np.ndarray, dict, str]:
    """An excerpt of a random track, away from its first and last 5 s, not quiet (stereo); returns
    audio, parameters and the track's licence."""
    if not tracks:
        raise CorpusError("no soundtrack: the soundtrack packages hold no track at the needed quality")
    path, licence = tracks[int(rng.integers(len(tracks)))]
    x = to_stereo(read_48k(path))
    n = int(seconds * SAMPLE_RATE)
    margin = 5 * SAMPLE_RATE
    starts = np.arange(margin, max(margin + 1, x.shape[1] - n - margin), SAMPLE_RATE)
    for start in rng.permutation(starts)[:20]:  # the first excerpt that is not quiet
        excerpt = x[:, start:start + n]
        if 20 * np.log10(np.sqrt(np.mean(excerpt**2)) + 1e-12) > -40:
            return excerpt, {"track": path.name, "start_s": round(int(start) / SAMPLE_RATE, 3)}, licence
    raise CorpusError(f"{path}: no excerpt of {seconds:g} s above -40 dBFS")


def mix_speech_music(speech: np.ndarray, music: np.ndarray, snr_db: float) -> np.ndarray:
    """Speech (centred) over music at a speech-to-music RMS ratio in dB; both the same length."""
    s = to_stereo(speech[:1])
    m = to_stereo(music)
    n = min(s.shape[1], m.shape[1])
    s, m = s[:, :n], m[:, :n]
    rms_s = float(np.sqrt(np.mean(s**2))) + 1e-9
    rms_m = float(np.sqrt(np.mean(m**2))) + 1e-9
    return (s + m * (rms_s / rms_m) * 10 ** (-snr_db / 20)).astype(np.float32)


# ---------------------------------------------------------------- planning and building


def _seed(base: int, clip_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{base}:{clip_id}".encode()).digest()[:8], "little")


def plan_corpus(counts: dict[str, int], seed: int, sonic_pi_files: list[str]) -> list[ClipSpec]:
    """The list of clips to render; depends only on counts, seed and the sonic-pi file list."""
    specs: list[ClipSpec] = []
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.permutation(sonic_pi_files)[: counts.get("sonic-pi", 0)].tolist())
    for name in chosen:
        cid = f"sonicpi_{Path(name).stem}"
        specs.append(ClipSpec(cid, "sonic-pi", _seed(seed, cid), {"file": name}))
    for kind in ("drums", "music", "speech", "voices", "phone", "soundtrack"):
        for i in range(counts.get(kind, 0)):
            cid = f"{kind}_{i:04d}"
            specs.append(ClipSpec(cid, kind, _seed(seed, cid)))
    music_like = [s.clip_id for s in specs if s.kind in ("music", "drums", "sonic-pi")]
    speech = [s.clip_id for s in specs if s.kind == "speech"]
    for i in range(counts.get("mixture", 0) if music_like and speech else 0):
        cid = f"mixture_{i:04d}"
        specs.append(ClipSpec(cid, "mixture", _seed(seed, cid), {
            "speech": speech[int(rng.integers(len(speech)))],
            "music": music_like[int(rng.integers(len(music_like)))],
            "snr_db": float(rng.choice([-5.0, 0.0, 5.0, 10.0, 15.0]))}))
    return specs


DEFAULT_COUNTS = {"sonic-pi": 70, "drums": 50, "music": 75, "speech": 45, "mixture": 35, "voices": 0, "phone": 0,
                  "soundtrack": 0}
MANIFEST_FIELDS = ["clip_id", "kind", "path", "seconds", "channels", "sample_rate", "licence", "params"]


@dataclass
class Sources:
    """Everything the renderers read: sample folders, kits, sound fonts, score list."""

    cache_dir: Path
    sonic_pi: Path | None = None
    kits: list[DrumKit] = field(default_factory=list)
    soundfonts: list[Path] = field(default_factory=list)
    scores: list[str] = field(default_factory=list)
    voices: dict[str, list[Path]] = field(default_factory=dict)
    phone: dict[str, tuple[list[Path], str]] = field(default_factory=dict)
    soundtrack: list[tuple[Path, str]] = field(default_factory=list)
    bank: SampleBank = field(default_factory=SampleBank)

    @classmethod
    def fetch(cls, cache_dir: Path, kinds: Iterable[str], soundfonts: tuple[str, ...]) -> "Sources":
        kinds = set(kinds)
        src = cls(cache_dir)
        if kinds & {"sonic-pi", "drums"}:
            src.sonic_pi = fetch_debian_package("sonic-pi-samples", cache_dir)
        if "drums" in kinds:
            kit_root = fetch_debian_package("hydrogen-drumkits", cache_dir)
            kits = [load_hydrogen_kit(d) for d in sorted(kit_root.iterdir()) if (d / "drumkit.xml").exists()]
            src.kits = [k for k in kits + [sonic_pi_kit(src.sonic_pi)] if k.playable()]
        if "music" in kinds:
            src.soundfonts = [fetch_debian_package(p, cache_dir) for p in soundfonts]
            src.scores = _score_paths()
        if "voices" in kinds:
            src.voices = voice_files(fetch_debian_package("ktuberling-data", cache_dir))
        if "phone" in kinds:
            src.phone = phone_files({p: fetch_debian_package(p, cache_dir) for p in PHONE_PACKAGES})
        if "soundtrack" in kinds:
            src.soundtrack = soundtrack_files({p: fetch_debian_package(p, cache_dir) for p in SOUNDTRACK_PACKAGES})
        return src


def render_clip(spec: ClipSpec, sources: Sources, out_dir: Path, seconds: float) -> tuple[np.ndarray, str, dict]:
    """Render one planned clip; returns audio [channels, samples] at 48 kHz, licence, parameters."""
    rng = np.random.default_rng(spec.seed)
    n = int(seconds * SAMPLE_RATE)
    if spec.kind == "sonic-pi":
        x, meta = render_loop(read_48k(sources.sonic_pi / spec.params["file"]), seconds, rng)
        meta["file"] = spec.params["file"]
        licence = LICENCES["sonic-pi"]
    elif spec.kind == "drums":
        kit = sources.kits[int(rng.integers(len(sources.kits)))]
        x, meta = render_drums(kit, seconds, rng, sources.bank)
        licence = kit.licence
    elif spec.kind == "music":
        soundfont = sources.soundfonts[int(rng.integers(len(sources.soundfonts)))]
        x, meta = render_music(soundfont, seconds, rng, sources.scores)
        licence = LICENCES[f"music-{'FluidR3_GM' if 'Fluid' in soundfont.name else 'MuseScore_General'}"]
    elif spec.kind == "speech":
        x, meta = render_speech(seconds, rng)
        licence = LICENCES["speech"]
    elif spec.kind == "voices":
        x, meta = render_voices(seconds, rng, sources.voices)
        licence = LICENCES["voices"]
    elif spec.kind == "phone":
        speakers = {name: files for name, (files, _) in sources.phone.items()}
        x, meta = render_voices(seconds, rng, speakers, "the asterisk-core-sounds packages")
        licence = sources.phone[meta["language"]][1]
    elif spec.kind == "soundtrack":
        x, meta, licence = render_soundtrack(seconds, rng, sources.soundtrack)
    elif spec.kind == "mixture":
        speech = read_48k(out_dir / f"speech/{spec.params['speech']}.flac")
        music_kind = spec.params["music"].split("_")[0].replace("sonicpi", "sonic-pi")
        music = read_48k(out_dir / f"{music_kind}/{spec.params['music']}.flac")
        return set_level(mix_speech_music(speech, music, spec.params["snr_db"]), float(rng.uniform(-24, -16))), \
            "mixture of the two source clips' licences", dict(spec.params)
    else:
        raise CorpusError(f"{spec.clip_id}: unknown clip kind {spec.kind!r}")
    x = fit_length(x, n)
    return set_level(x, float(rng.uniform(-26, -14))), licence, meta


def build_corpus(out_dir: Path, *, counts: dict[str, int] | None = None, seconds: float = 8.0, seed: int = 0,
                 cache_dir: Path | None = None, soundfonts: tuple[str, ...] = ("fluid-soundfont-gm", "musescore-general-soundfont-lossless"),
                 progress: Callable[[Iterable], Iterable] = lambda it: it) -> dict[str, int]:
    """Render the planned corpus into `out_dir`; returns counts of written, kept and failed clips."""
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir else default_source_cache()
    active = {k for k, v in counts.items() if v > 0}
    if "mixture" in active:
        active |= {"speech"}
    sources = Sources.fetch(cache_dir, active, soundfonts)
    sonic_files = sorted(p.name for p in sources.sonic_pi.glob("*.flac")) if sources.sonic_pi else []
    specs = plan_corpus(counts, seed, sonic_files)
    rows = _read_rows(out_dir / "corpus.csv")
    errors: list[dict] = []
    stats = {"written": 0, "kept": 0, "failed": 0}
    for spec in progress(specs):
        target = out_dir / spec.relpath
        if target.exists() and spec.clip_id in rows:
            stats["kept"] += 1
            continue
        try:
            x, licence, meta = render_clip(spec, sources, out_dir, seconds)
        except (DeepaqError, OSError, ValueError, subprocess.SubprocessError) as exc:
            errors.append({"clip_id": spec.clip_id, "kind": spec.kind, "error": str(exc)})
            stats["failed"] += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(target), x.T, SAMPLE_RATE, subtype="PCM_16")
        rows[spec.clip_id] = {"clip_id": spec.clip_id, "kind": spec.kind, "path": spec.relpath,
                              "seconds": round(x.shape[1] / SAMPLE_RATE, 3), "channels": x.shape[0],
                              "sample_rate": SAMPLE_RATE, "licence": licence, "params": json.dumps(meta, sort_keys=True)}
        stats["written"] += 1
        if stats["written"] % 10 == 0:
            _write_rows(out_dir / "corpus.csv", rows)
    _write_rows(out_dir / "corpus.csv", rows)
    with open(out_dir / "errors.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["clip_id", "kind", "error"])
        writer.writeheader()
        writer.writerows(errors)
    return stats


def _read_rows(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with open(path, newline="") as fh:
        return {row["clip_id"]: row for row in csv.DictReader(fh)}


def _write_rows(path: Path, rows: dict[str, dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows[k] for k in sorted(rows))
    tmp.replace(path)
