"""The clean corpus builder: planning, drum kits, levels, and real renders where the tools exist.

Renders need system programs and Debian source packages; each such test skips with the
reason when they are missing (CI: apt-get install fluidsynth espeak-ng; sources are fetched
with `apt-get download` into deepaq's cache folder).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepaq.cli import main
from deepaq.data import corpus
from deepaq.data.corpus import SAMPLE_RATE, CorpusError


def _source(package: str) -> Path:
    try:
        return corpus.fetch_debian_package(package, corpus.default_source_cache())
    except (CorpusError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"Debian package {package} cannot be fetched here: {exc}")


def test_plan_is_deterministic_and_mixtures_point_at_planned_clips():
    counts = {"sonic-pi": 3, "drums": 2, "music": 4, "speech": 2, "mixture": 3}
    files = [f"s{i}.flac" for i in range(10)]
    a = corpus.plan_corpus(counts, 7, files)
    with_voices = corpus.plan_corpus({**counts, "voices": 2, "phone": 3, "soundtrack": 2}, 7, files)  # an added kind moves no other clip
    assert [s for s in with_voices if s.kind not in ("voices", "phone", "soundtrack")] == a
    assert sum(s.kind == "voices" for s in with_voices) == 2 and sum(s.kind == "phone" for s in with_voices) == 3
    b = corpus.plan_corpus(counts, 7, files)
    assert [(s.clip_id, s.seed, s.params) for s in a] == [(s.clip_id, s.seed, s.params) for s in b]
    assert sum(s.kind == "music" for s in a) == 4 and sum(s.kind == "sonic-pi" for s in a) == 3
    ids = {s.clip_id for s in a}
    assert len(ids) == len(a)
    for mix in (s for s in a if s.kind == "mixture"):
        assert mix.params["speech"] in ids and mix.params["music"] in ids
    assert [s.seed for s in corpus.plan_corpus(counts, 8, files)] != [s.seed for s in a]


def test_drum_class_from_names():
    assert corpus.drum_class("Kick") == "kick"
    assert corpus.drum_class("BassDrum") == "kick"
    assert corpus.drum_class("Snare Rock") == "snare"
    assert corpus.drum_class("Closed HH") == "hat"
    assert corpus.drum_class("Tom Low") == "tom"
    assert corpus.drum_class("Crash Jazz") == "cymbal"
    assert corpus.drum_class("27", "kick-hard.wav") == "kick"  # numbered instrument: file name decides
    assert corpus.drum_class("Maraca") == "perc"


def test_set_level_and_fit_length():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros((2, 4800)), 0.1 * rng.standard_normal((2, 96000))], axis=1).astype(np.float32)
    y = corpus.fit_length(x, 48000)
    assert y.shape == (2, 48000) and np.all(np.abs(y[:, 300:]).max(axis=1) > 0)  # leading silence skipped
    z = corpus.set_level(y, -20.0)
    assert 20 * np.log10(np.sqrt(np.mean(z**2))) == pytest.approx(-20.0, abs=0.1)
    loud = corpus.set_level(np.sign(y), -3.0)  # a square wave cannot reach -3 dB RMS below a -1 dB peak
    assert np.max(np.abs(loud)) <= 10 ** (-1 / 20) + 1e-6
    with pytest.raises(CorpusError, match="silent"):
        corpus.set_level(np.zeros((1, 100), np.float32), -20.0)
    with pytest.raises(CorpusError, match="shorter"):
        corpus.fit_length(x[:, :10000], 48000)


def test_broken_drum_kit_names_the_file(tmp_path):
    (tmp_path / "drumkit.xml").write_text("<drumkit_info><instrumentList>")
    with pytest.raises(CorpusError, match="drumkit.xml"):
        corpus.load_hydrogen_kit(tmp_path)


def test_speech_render():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng)")
    x, meta = corpus.render_speech(3.0, np.random.default_rng(1))
    assert x.shape[0] == 1 and x.shape[1] >= 3 * SAMPLE_RATE
    assert np.sqrt(np.mean(x**2)) > 1e-3 and "+" in meta["voice"]


def test_recorded_voices_render():
    """KTuberling's recorded words (ktuberling-data): several languages, joined into one mono utterance."""
    voices = corpus.voice_files(_source("ktuberling-data"))
    assert len(voices) >= 5 and all(len(files) >= 5 for files in voices.values())
    x, meta = corpus.render_voices(3.0, np.random.default_rng(2), voices)
    assert x.shape[0] == 1 and x.shape[1] >= 3 * SAMPLE_RATE and np.sqrt(np.mean(x**2)) > 1e-3
    assert meta["language"] in voices and len(meta["words"]) >= 2
    with pytest.raises(CorpusError, match="no recorded voices"):
        corpus.render_voices(3.0, np.random.default_rng(2), {})


def test_telephone_prompts_render():
    """Asterisk's recorded prompts (asterisk-core-sounds-en-wav): one speaker's phrases at 8 kHz,
    joined into one mono utterance at 48 kHz with nothing above the telephone band."""
    package = "asterisk-core-sounds-en-wav"
    speakers = corpus.phone_files({package: _source(package)})
    assert list(speakers) == ["en_US_f_Allison"] and len(speakers["en_US_f_Allison"][0]) > 100
    assert speakers["en_US_f_Allison"][1].startswith("CC-BY-SA-3.0")
    x, meta = corpus.render_voices(4.0, np.random.default_rng(3), {k: v[0] for k, v in speakers.items()})
    assert x.shape[0] == 1 and x.shape[1] >= 4 * SAMPLE_RATE and meta["language"] == "en_US_f_Allison"
    power = np.abs(np.fft.rfft(x[0])) ** 2
    above = power[np.fft.rfftfreq(x.shape[1], 1 / SAMPLE_RATE) > 4200].sum()
    assert above < 1e-4 * power.sum()


def test_soundtrack_excerpts(tmp_path):
    """Soundtrack tracks are kept only when long and coded well enough; an excerpt is stereo 48 kHz,
    not quiet, from inside the track, with the package's licence."""
    rng = np.random.default_rng(0)
    t = np.arange(30 * 44100) / 44100
    music = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1) * 0.3
    music[:, :] += 0.05 * rng.standard_normal(music.shape)
    music[: 12 * 44100] *= 1e-4  # a quiet opening
    sf.write(tmp_path / "theme.ogg", music, 44100, format="OGG", subtype="VORBIS", compression_level=0.0)  # ~500 kbit/s
    sf.write(tmp_path / "jingle.ogg", music[: 5 * 44100], 44100, format="OGG", subtype="VORBIS", compression_level=0.0)
    sf.write(tmp_path / "lofi.ogg", music, 44100, format="OGG", subtype="VORBIS", compression_level=1.0)  # too low a bitrate
    tracks = corpus.soundtrack_files({"hyperrogue-music": tmp_path})
    assert [p.name for p, _ in tracks] == ["theme.ogg"] and tracks[0][1].startswith("GPL-2+ (hyperrogue-music")
    x, meta, licence = corpus.render_soundtrack(6.0, np.random.default_rng(1), tracks)
    assert x.shape == (2, 6 * SAMPLE_RATE) and licence == tracks[0][1]
    assert 12 <= meta["start_s"] <= 30 - 5 - 6 and np.sqrt(np.mean(x**2)) > 0.1
    with pytest.raises(CorpusError, match="no soundtrack"):
        corpus.render_soundtrack(6.0, np.random.default_rng(1), [])


def test_music_render_from_a_score():
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed (Debian package fluidsynth)")
    pytest.importorskip("music21")
    soundfont = _source("fluid-soundfont-gm")
    x, meta = corpus.render_music(soundfont, 3.0, np.random.default_rng(3), [p for p in corpus._score_paths() if "bwv66.6" in p])
    y = corpus.fit_length(x, 3 * SAMPLE_RATE)
    assert y.shape == (2, 3 * SAMPLE_RATE) and np.sqrt(np.mean(y**2)) > 1e-3
    assert meta["programs"] and 60 <= meta["bpm"] <= 150


def test_build_corpus_cli_writes_resumes_and_records(tmp_path):
    _source("sonic-pi-samples")
    speech = 1 if shutil.which("espeak-ng") else 0
    out = tmp_path / "corpus"
    args = ["build-corpus", str(out), "--sonic-pi", "2", "--drums", "0", "--music", "0",
            "--speech", str(speech), "--mixture", str(speech), "--seconds", "2"]
    assert main(args) == 0
    with open(out / "corpus.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 + 2 * speech
    for row in rows:
        info = sf.info(str(out / row["path"]))
        assert info.samplerate == SAMPLE_RATE and info.frames == 2 * SAMPLE_RATE and info.format == "FLAC"
        assert row["licence"]
    first = (out / rows[0]["path"]).stat().st_mtime_ns
    assert main(args) == 0  # resumed: nothing rendered again
    assert (out / rows[0]["path"]).stat().st_mtime_ns == first
    assert not list(out.rglob("*.deb")) and not (out / "_cache").exists()  # sources live in the cache folder


def test_drum_pattern_from_sonic_pi_kit():
    kit = corpus.sonic_pi_kit(_source("sonic-pi-samples"))
    assert kit.playable()
    x, meta = corpus.render_drums(kit, 2.0, np.random.default_rng(5), corpus.SampleBank())
    y = corpus.fit_length(x, 2 * SAMPLE_RATE)
    assert y.shape == (2, 2 * SAMPLE_RATE) and np.max(np.abs(y)) > 0.01
    assert meta["style"] in corpus.PATTERNS
