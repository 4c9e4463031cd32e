"""A batch of ScoreJobs scored on an engine's workers (`deepaq.engine`: processes or Ray).

Each worker process builds the Scorer once per set of options and keeps it for every job it
is given; an NMR reference bank is embedded once on the driver and shipped to the workers
with the options (on Ray it is stored once in the object store). Outcomes come back in job
order, as from `Scorer.iter_scores`, so a batch writes the same rows in the same order
whichever engine ran it.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from deepaq.engine import Engine
from deepaq.errors import DeepaqError
from deepaq.scoring.bank import EmbeddingBank
from deepaq.scoring.results import ScoreResult
from deepaq.scoring.scorer import Scorer, ScoreJob
from deepaq.scoring.sources import source_name

_SCORERS: dict[str, Scorer] = {}  # options as JSON -> this process's Scorer


def worker_scorer(options: dict[str, Any]) -> Scorer:
    """This process's Scorer built with `options` (Scorer keyword arguments), made once."""
    key = json.dumps(options, sort_keys=True, default=str)
    if key not in _SCORERS:
        _SCORERS[key] = Scorer(**options)
    return _SCORERS[key]


def score_one(shared: tuple[dict[str, Any], EmbeddingBank | None], job: ScoreJob) -> ScoreResult | DeepaqError:
    """One job's result, or its error as a plain DeepaqError (every subclass's message kept)."""
    options, bank = shared
    _, outcome = next(worker_scorer(options).iter_scores([job], nmr_bank=bank if job.reference is None else None))
    return outcome if isinstance(outcome, ScoreResult) else DeepaqError(str(outcome))


def score_on_engine(engine: Engine, options: dict[str, Any], jobs: list[ScoreJob],
                    bank: EmbeddingBank | None = None) -> Iterator[tuple[ScoreJob, ScoreResult | DeepaqError]]:
    """`(job, result or error)` in job order, computed on `engine` with a Scorer of `options`."""
    yield from engine.map(score_one, jobs, desc=None, shared=(options, bank), ordered=True, on_crash=_job_crashed)


def _job_crashed(job: ScoreJob, why: str) -> DeepaqError:
    return DeepaqError(f"{source_name(job.degraded)}: {why}")
