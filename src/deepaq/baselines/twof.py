"""The 2f-model (Kastner & Herre, WASPAA 2019): a MUSHRA-scale score from two PEAQ Basic MOVs.

    MMS = 56.1345 / (1 + (-0.0282 * AvgModDiff1 - 0.8628)^2) - 27.1451 * ADB + 86.3515

clipped to [0, 100] (higher is better). The MOVs are those of PEAQ Basic at 48 kHz as
PQevalAudio computes them (`deepaq.baselines.peaq`), which the model was fitted with.
"""

from __future__ import annotations

import math

MMS_MIN, MMS_MAX = 0.0, 100.0


def mms_2f(avg_mod_diff1: float, adb: float) -> float:
    """2f-model MUSHRA score from AvgModDiff1B and ADBB, clipped to [0, 100]."""
    if not (math.isfinite(avg_mod_diff1) and math.isfinite(adb)):
        raise ValueError(f"2f-model needs finite MOVs, got AvgModDiff1={avg_mod_diff1!r}, ADB={adb!r}")
    mms = 56.1345 / (1.0 + (-0.0282 * avg_mod_diff1 - 0.8628) ** 2) - 27.1451 * adb + 86.3515
    return min(MMS_MAX, max(MMS_MIN, mms))
