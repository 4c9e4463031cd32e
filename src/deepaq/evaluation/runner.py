"""Score every stimulus of a listening test with one metric: cached, parallel, fault-tolerant.

Cached scores are reused; the rest run on an engine (`deepaq.engine`: local worker processes
or a Ray cluster) shared by all metrics, each worker building each metric once, or in this
process. A stimulus whose audio a metric cannot use (a `DeepaqError`) is recorded with its
message and the run goes on; each finished score is written to the cache at once, so an
interrupted run resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from deepaq.baselines.fad import GaussianStats
from deepaq.engine import Engine
from deepaq.errors import DeepaqError
from deepaq.evaluation.cache import ScoreCache, file_hash, metric_identity
from deepaq.evaluation.manifest import Stimulus
from deepaq.evaluation.metrics import MetricSpec, build_metric, is_set_metric


@dataclass
class MetricScores:
    """One metric's results: per-stimulus scores (NaN where it failed) or per-condition scores."""

    spec: MetricSpec
    name: str
    direction: str
    version: str
    stimulus_scores: np.ndarray | None = None  # pair metrics, aligned with the stimuli
    condition_scores: dict[tuple[str, str], float] = field(default_factory=dict)  # set metrics
    errors: dict[str, str] = field(default_factory=dict)  # "test/item/condition" -> message
    computed: int = 0
    cached: int = 0


_METRICS: dict[str, object] = {}  # spec label -> built metric, per process


def _metric(spec: MetricSpec):
    """The metric of `spec`, built once per process."""
    if spec.label not in _METRICS:
        _METRICS[spec.label] = build_metric(spec)
    return _METRICS[spec.label]


def _score_one(spec: MetricSpec, task: tuple[int, str, str]) -> tuple[int, float | None, str | None]:
    index, reference, degraded = task
    try:
        value = float(_metric(spec).score(reference=reference, degraded=degraded))
    except DeepaqError as exc:
        return index, None, str(exc)
    if not np.isfinite(value):
        return index, None, f"{degraded}: {spec.name} returned {value} against {reference}"
    return index, value, None


def _stats_one(spec: MetricSpec, task: tuple[int, str]) -> tuple[int, GaussianStats | None, str | None]:
    index, path = task
    try:
        return index, _metric(spec).file_stats(path), None
    except DeepaqError as exc:
        return index, None, str(exc)


def _run(spec: MetricSpec, fn, tasks: list[tuple], pool: Engine | None, desc: str):
    """Yield fn(spec, task) results, in this process or on the engine's workers."""
    if pool is not None and len(tasks) > 1:
        def crashed(task: tuple, why: str) -> tuple[int, None, str]:
            return task[0], None, f"{task[-1]}: {spec.name}: {why}"

        for _, value in pool.map(fn, tasks, desc=desc, unit="file", shared=spec, on_crash=crashed):
            yield value
        return
    bar = tqdm(total=len(tasks), desc=desc, unit="file", disable=not tasks)
    try:
        for task in tasks:
            yield fn(spec, task)
            bar.update()
    finally:
        bar.close()


def score_stimuli(stimuli: list[Stimulus], spec: MetricSpec, cache: ScoreCache,
                  pool: Engine | None = None) -> MetricScores:
    """Score all stimuli with the metric `spec` (raises `MetricUnavailable` if it cannot run).

    Uncached work runs on the engine `pool` (`deepaq.engine.open_engine`) or, without one, here.
    """
    metric = _metric(spec)
    identity = metric_identity(metric.name, metric.version, spec.options)
    result = MetricScores(spec, metric.name, metric.direction, metric.version)
    if is_set_metric(metric):
        _score_sets(stimuli, spec, metric, identity, cache, pool, result)
        return result
    scores = np.full(len(stimuli), np.nan)
    tasks, keys = [], {}
    for i, s in enumerate(stimuli):
        try:
            key = cache.key(identity, file_hash(s.reference), file_hash(s.degraded))
        except DeepaqError as exc:
            result.errors["/".join(s.key)] = str(exc)
            continue
        hit = cache.get(metric.name, key)
        if hit is not None:
            scores[i] = hit
            result.cached += 1
        else:
            keys[i] = key
            tasks.append((i, str(s.reference), str(s.degraded)))
    for i, value, error in _run(spec, _score_one, tasks, pool, metric.name):
        if error is not None:
            result.errors["/".join(stimuli[i].key)] = error
            continue
        scores[i] = value
        cache.put(metric.name, keys[i], value)
        result.computed += 1
    result.stimulus_scores = scores
    return result


def _score_sets(stimuli, spec, metric, identity, cache, pool, result: MetricScores) -> None:
    """Per-file Gaussian statistics (cached), pooled per (test, condition) into one FAD each."""
    files: dict[str, str] = {}  # path -> cache key
    bad: dict[str, str] = {}
    for s in stimuli:
        for p in (str(s.reference), str(s.degraded)):
            if p not in files and p not in bad:
                try:
                    files[p] = cache.key(identity, file_hash(p))
                except DeepaqError as exc:
                    bad[p] = str(exc)
    stats: dict[str, GaussianStats] = {}
    tasks = []
    for p, key in files.items():
        path = cache.stats_path(metric.name, key)
        if path.exists():
            stats[p] = GaussianStats.load(path)
            result.cached += 1
        else:
            tasks.append((len(tasks), p))
    for i, value, error in _run(spec, _stats_one, tasks, pool, metric.name):
        p = tasks[i][1]
        if error is not None:
            bad[p] = error
            continue
        value.save(cache.stats_path(metric.name, files[p]))
        stats[p] = value
        result.computed += 1
    groups: dict[tuple[str, str], list[Stimulus]] = {}
    for s in stimuli:
        groups.setdefault((s.test, s.condition), []).append(s)
    for (test, condition), members in groups.items():
        failed = [bad[str(p)] for s in members for p in (s.reference, s.degraded) if str(p) in bad]
        if failed:
            result.errors[f"{test}/*/{condition}"] = failed[0]
            continue
        refs = {str(s.reference) for s in members}
        ref_stats = sum((stats[p] for p in sorted(refs)[1:]), stats[sorted(refs)[0]])
        deg_stats = sum((stats[str(s.degraded)] for s in members[1:]), stats[str(members[0].degraded)])
        try:
            result.condition_scores[(test, condition)] = metric.distance(ref_stats, deg_stats)
        except DeepaqError as exc:
            result.errors[f"{test}/*/{condition}"] = str(exc)
