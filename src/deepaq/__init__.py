"""deepaq: perceptual audio quality with DeePAQ and classic baselines.

Public API (imported on first use, so `import deepaq` stays light):

    Scorer(model="deepaq-compact", device="cpu", mapping=None, cache_dir=None)
    score(*, reference=..., degraded=..., model=...)   one-off full-reference score
    embed(audio, model=...)                           one-off embedding
    load_model(name_or_path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"
__all__ = ["Scorer", "embed", "load_model", "score"]

if TYPE_CHECKING:
    from deepaq.models import load_model
    from deepaq.scoring import Embedding, Scorer, ScoreResult

_scorers: dict[str, Any] = {}


def _scorer(model: str) -> "Scorer":
    if model not in _scorers:
        from deepaq.scoring import Scorer

        _scorers[model] = Scorer(model)
    return _scorers[model]


def score(*, reference: Any = None, degraded: Any, model: str = "deepaq-compact", **kwargs: Any) -> "ScoreResult":
    """Score `degraded` against `reference` (paths or `(array, sample_rate)`); the model is
    loaded once per process. For NMR leave out `reference` and pass `nmr_bank=`."""
    return _scorer(str(model)).score(reference=reference, degraded=degraded, **kwargs)


def embed(audio: Any, *, model: str = "deepaq-compact") -> "Embedding":
    """Embedding of one signal (path or `(array, sample_rate)`) with a model loaded once."""
    return _scorer(str(model)).embed(audio)


def __getattr__(name: str) -> Any:
    if name == "Scorer":
        from deepaq.scoring import Scorer

        return Scorer
    if name == "load_model":
        from deepaq.models import load_model

        return load_model
    raise AttributeError(f"module 'deepaq' has no attribute {name!r}")
