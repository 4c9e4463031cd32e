"""Audio in and out: read any format, validate, resample, downmix, align pairs."""

from deepaq.audio.align import AlignedPair, align_pair, estimate_delay, follow_delay
from deepaq.audio.io import read_audio, validate_audio, write_audio
from deepaq.audio.load import AudioSource, load_audio
from deepaq.audio.resample import resample, to_mono

__all__ = [
    "AlignedPair",
    "AudioSource",
    "align_pair",
    "estimate_delay",
    "follow_delay",
    "load_audio",
    "read_audio",
    "resample",
    "to_mono",
    "validate_audio",
    "write_audio",
]
