"""deepaq: perceptual audio quality with DeePAQ and classic baselines."""

__version__ = "0.1.0"
