"""Scoring with a DeePAQ model: full reference, non-matching reference, windows, banks."""

from deepaq.scoring.bank import EmbeddingBank
from deepaq.scoring.results import Embedding, ScoreResult, WindowScore
from deepaq.scoring.scorer import DEFAULT_MODEL, Scorer, ScoreJob, list_audio

__all__ = ["DEFAULT_MODEL", "Embedding", "EmbeddingBank", "ScoreJob", "ScoreResult", "Scorer", "WindowScore",
           "list_audio"]
