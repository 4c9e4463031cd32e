"""PEAQ Basic (ITU-R BS.1387-1, FFT model) with Kabal's interpretations, in numpy.

    from deepaq.baselines.peaq import peaq
    r = peaq(reference="ref.wav", degraded="coded.wav")
    r.odg, r.distortion_index, r.movs, r.mms_2f

Modules: `tables` (band table, network weights), `earmodel` (ear model and excitation
patterns), `movs` (model output variables), `core` (framing, boundaries, averaging, network).
"""

from deepaq.baselines.peaq.core import MIN_SECONDS, PeaqResult, data_bounds, network, peaq
from deepaq.baselines.peaq.tables import MOV_NAMES

__all__ = ["MIN_SECONDS", "MOV_NAMES", "PeaqResult", "data_bounds", "network", "peaq"]
