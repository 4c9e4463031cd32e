"""Every quality metric behind one interface, built by name from a `MetricSpec`.

A pair metric (`Metric`) scores one degraded signal against its reference. A set metric
(`SetMetric`, FAD) summarises each file's embedding frames as Gaussian statistics and
scores a whole system/condition at once. A metric whose extra, module or weights are
missing raises `MetricUnavailable` with the reason; the evaluation reports it as skipped.

Built-in names: deepaq, deepaq_nmr, visqol, peaq, twof, haaqi, nomad, fad, dnsmos, and for
speech pesq_wb, pesq_nb, stoi, estoi, visqol_speech, sisdr (deepaq.baselines.speech). Two of
them read the degraded file alone and ignore the stimulus' reference: `deepaq_nmr` (DeePAQ's
non-matching-reference score against a bank of clean audio of other content) and `dnsmos`
(no reference at all). Options per metric come as
`name.key=value` on the command line (see docs/evaluation.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from deepaq.errors import ConfigError, DeepaqError


class MetricUnavailable(DeepaqError):
    """A metric that cannot run here: a missing extra, module or weights."""


@runtime_checkable
class Metric(Protocol):
    """A full-reference metric: one score per (reference, degraded) pair."""

    name: str
    direction: str  # "higher" or "lower" is better
    score_range: tuple[float, float] | None
    sample_rate: int | None
    version: str

    def score(self, *, reference, degraded) -> float: ...


@runtime_checkable
class SetMetric(Protocol):
    """A metric over sets of files (FAD): per-file statistics pooled per system."""

    name: str
    direction: str
    score_range: tuple[float, float] | None
    sample_rate: int | None
    version: str

    def file_stats(self, source): ...

    def distance(self, reference_stats, degraded_stats) -> float: ...


@dataclass(frozen=True)
class MetricSpec:
    """A metric name with its options, e.g. MetricSpec("haaqi", {"level_db_spl": 70})."""

    name: str
    options: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name if not self.options else f"{self.name}({json.dumps(self.options, sort_keys=True)})"


def parse_specs(names: str, options: list[str] | None = None) -> list[MetricSpec]:
    """`"deepaq,visqol"` plus `["haaqi.level_db_spl=70", ...]` -> specs (values parsed as JSON if they can be)."""
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in BUILDERS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(BUILDERS)}")
    opts: dict[str, dict] = {n: {} for n in wanted}
    for item in options or []:
        key, sep, value = item.partition("=")
        metric, dot, name = key.partition(".")
        if not (sep and dot and name):
            raise ConfigError(f"metric option {item!r} must look like METRIC.KEY=VALUE")
        if metric not in opts:
            raise ConfigError(f"metric option {item!r} names {metric!r}, which is not among --metrics")
        try:
            opts[metric][name] = json.loads(value)
        except ValueError:
            opts[metric][name] = value
    return [MetricSpec(n, opts[n]) for n in wanted]


@dataclass
class PairMetric:
    """Adapter over any object with `score(*, reference, degraded) -> float`."""

    name: str
    direction: str
    score_range: tuple[float, float] | None
    sample_rate: int | None
    version: str
    impl: Any

    def score(self, *, reference, degraded) -> float:
        return float(self.impl.score(reference=reference, degraded=degraded))


class NomadDistance:
    """NOMAD-style: L2 distance between time-averaged wav2vec 2.0 embeddings (lower is better).

    NOMAD (Ragano et al., 2024) fine-tunes wav2vec 2.0 so that this distance follows
    degradation; with plain pretrained weights the same distance is a weaker baseline.
    """

    name = "nomad"
    direction = "lower"
    score_range = (0.0, float("inf"))

    def __init__(self, weights: str | None = None, backbone: str = "wav2vec2", layer: int = -1):
        from deepaq.evaluation.embeddings import BackboneEmbedder

        weights = weights or os.environ.get("DEEPAQ_WAV2VEC2_WEIGHTS")
        if not weights:
            raise MetricUnavailable("nomad needs local wav2vec 2.0 weights: --metric-option nomad.weights=FOLDER "
                                    "or DEEPAQ_WAV2VEC2_WEIGHTS")
        self.embedder = BackboneEmbedder(backbone, weights, layer)
        self.sample_rate = self.embedder.sample_rate
        self.version = f"nomad-style L2 of mean embeddings, {self.embedder.version}"

    def score(self, *, reference, degraded) -> float:
        a = self.embedder.frames(reference).mean(0)
        b = self.embedder.frames(degraded).mean(0)
        return float(np.linalg.norm(a - b))


class FadMetric:
    """Frechet Audio Distance per system/condition on a backbone's frame embeddings."""

    name = "fad"
    direction = "lower"
    score_range = (0.0, float("inf"))

    def __init__(self, weights: str | None = None, backbone: str = "mert", layer: int = -1):
        from deepaq.evaluation.embeddings import BackboneEmbedder

        weights = weights or os.environ.get("DEEPAQ_MERT_WEIGHTS")
        if not weights:
            raise MetricUnavailable("fad needs local backbone weights (MERT-v1-95M by default): "
                                    "--metric-option fad.weights=FOLDER or DEEPAQ_MERT_WEIGHTS")
        self.embedder = BackboneEmbedder(backbone, weights, layer)
        self.sample_rate = self.embedder.sample_rate
        self.version = f"fad, {self.embedder.version}"

    def file_stats(self, source):
        from deepaq.baselines.fad import GaussianStats

        return GaussianStats.of(self.embedder.frames(source))

    def distance(self, reference_stats, degraded_stats) -> float:
        from deepaq.baselines.fad import fad

        return fad(reference_stats, degraded_stats)


def _visqol(options: dict) -> PairMetric:
    from deepaq.baselines.visqol import VisqolV3

    impl = VisqolV3(**options)
    return PairMetric("visqol", "higher", (1.0, 5.0), impl.sample_rate, impl.version, impl)


def _speech(name: str, cls: str, **fixed) -> Callable[[dict], PairMetric]:
    """Builder of a speech metric of deepaq.baselines.speech (PESQ, STOI, ESTOI, ViSQOL speech, SI-SDR)."""

    def build(options: dict) -> PairMetric:
        from deepaq.baselines import speech

        impl = getattr(speech, cls)(**fixed, **options)
        return PairMetric(name, "higher", impl.score_range, impl.sample_rate, impl.version, impl)

    return build


def _haaqi(options: dict) -> PairMetric:
    from deepaq.baselines.haaqi import Haaqi

    impl = Haaqi(**options)
    return PairMetric("haaqi", "higher", impl.score_range, None, impl.version, impl)


class PeaqScore:
    """PEAQ Basic ODG (`output="odg"`, -4..0.2) or 2f-model MMS (`output="mms_2f"`, 0..100).

    PEAQ needs time-aligned input: the pair is loaded at 48 kHz (channels kept; both
    downmixed when their channel counts differ) and aligned with `deepaq.audio.align_pair`.
    Results for file pairs are remembered (per process, up to `_MEMO_SIZE` pairs), so
    scoring peaq and twof on the same stimuli runs PEAQ once per pair.
    """

    _MEMO_SIZE = 100_000
    _memo: dict[tuple[str, str], Any] = {}

    def __init__(self, output: str, max_delay_s: float = 1.0):
        from deepaq import __version__
        from deepaq.baselines.peaq import peaq

        self._peaq = peaq
        self.output = output
        self.max_delay_s = float(max_delay_s)
        self.version = f"deepaq {__version__} PEAQ Basic (BS.1387-1 FFT model), aligned within {self.max_delay_s:g} s"

    def _result(self, reference, degraded):
        from deepaq.audio import align_pair, load_audio, to_mono

        key = (str(reference), str(degraded))
        files = not isinstance(reference, tuple) and not isinstance(degraded, tuple)
        if files and key in PeaqScore._memo:
            return PeaqScore._memo[key]
        ref, _ = load_audio(reference, sample_rate=48_000, mono=False)
        deg, _ = load_audio(degraded, sample_rate=48_000, mono=False)
        if ref.shape[0] != deg.shape[0]:
            ref, deg = to_mono(ref), to_mono(deg)
        pair = align_pair(ref, deg, 48_000, max_delay_s=self.max_delay_s,
                          names=(_name(reference), _name(degraded)))
        result = self._peaq(reference=(pair.reference, 48_000), degraded=(pair.degraded, 48_000))
        if files and len(PeaqScore._memo) < PeaqScore._MEMO_SIZE:
            PeaqScore._memo[key] = result
        return result

    def score(self, *, reference, degraded) -> float:
        return float(getattr(self._result(reference, degraded), self.output))


def _name(source) -> str:
    return "<array>" if isinstance(source, tuple) else str(source)


def _peaq(options: dict) -> PairMetric:
    impl = PeaqScore("odg", **options)
    return PairMetric("peaq", "higher", (-4.0, 0.2), 48_000, impl.version + ", ODG", impl)


def _twof(options: dict) -> PairMetric:
    impl = PeaqScore("mms_2f", **options)
    return PairMetric("twof", "higher", (0.0, 100.0), 48_000, impl.version + ", 2f-model MMS", impl)


class DeepaqDistance:
    """A DeePAQ model's full-reference score: its embedding distance (lower is better),
    unmapped, or for a model that ships a fusion (`deepaq.scoring.fusion`) its `quality`
    (higher is better), which needs the model's own mapping.

    The evaluation fits its own mappings on top; a plain distance is left unmapped.
    """

    def __init__(self, model: str | None = None, **options):
        from deepaq.scoring import DEFAULT_MODEL, Scorer

        self.scorer = Scorer(model or DEFAULT_MODEL, **options)
        self.fused = self.scorer.fusion is not None
        self.sample_rate = self.scorer.sample_rate
        level = "level aligned" if self.scorer.align_level else "level as it is"
        level += ", delay followed" if self.scorer.follow_delay else ", constant delay"
        what = (f"quality: {self.scorer.fusion.describe()}, mapping {self.scorer.mapping.fingerprint}"
                if self.fused else "full-reference distance")
        self.version = (f"{self.scorer.model_id} {self.scorer.model_version} ({self.scorer.weights_hash}), "
                        f"{what}, {level}")

    def score(self, *, reference, degraded) -> float:
        result = self.scorer.score(reference=reference, degraded=degraded)
        return float(result.quality if self.fused else result.distance)


def _deepaq(options: dict) -> PairMetric:
    impl = DeepaqDistance(**options)
    if impl.fused:
        return PairMetric("deepaq", "higher", (0.0, 100.0), impl.sample_rate, impl.version, impl)
    return PairMetric("deepaq", "lower", (0.0, float("inf")), impl.sample_rate, impl.version, impl)


class DeepaqNmr:
    """A DeePAQ model's non-matching-reference score of the degraded file (the stimulus'
    own reference is ignored), against `nmr_bank` ("default": the bank shipped with the model;
    or a bank file or a folder of clean audio). Lower is better, as for the distance."""

    def __init__(self, model: str | None = None, nmr_bank: str = "default", **options):
        from deepaq.scoring import DEFAULT_MODEL, Scorer

        self.scorer = Scorer(model or DEFAULT_MODEL, mapping=False, nmr_bank=nmr_bank, **options)
        self.sample_rate = self.scorer.sample_rate
        bank = self.scorer.load_bank(nmr_bank)
        head = self.scorer.nmr_head
        how = "mean distance to the bank" if head is None else f"NMR head {head.fingerprint}"
        self.version = (f"{self.scorer.model_id} {self.scorer.model_version} ({self.scorer.weights_hash}), "
                        f"NMR against bank {nmr_bank!r} ({len(bank)} files, {bank.fingerprint}), {how}")

    def score(self, *, reference, degraded) -> float:
        return float(self.scorer.score(degraded=degraded).distance)


def _deepaq_nmr(options: dict) -> PairMetric:
    impl = DeepaqNmr(**options)
    return PairMetric("deepaq_nmr", "lower", None, impl.sample_rate, impl.version, impl)


def _dnsmos(options: dict) -> PairMetric:
    from deepaq.baselines.dnsmos import Dnsmos

    impl = Dnsmos(**options)
    return PairMetric("dnsmos", "higher", impl.score_range, impl.sample_rate, impl.version, impl)


BUILDERS: dict[str, Callable[[dict], Metric | SetMetric]] = {
    "deepaq": _deepaq,
    "deepaq_nmr": _deepaq_nmr,
    "visqol": _visqol,
    "peaq": _peaq,
    "twof": _twof,
    "haaqi": _haaqi,
    "pesq_wb": _speech("pesq_wb", "Pesq", mode="wb"),
    "pesq_nb": _speech("pesq_nb", "Pesq", mode="nb"),
    "stoi": _speech("stoi", "Stoi", extended=False),
    "estoi": _speech("estoi", "Stoi", extended=True),
    "visqol_speech": _speech("visqol_speech", "VisqolSpeech"),
    "sisdr": _speech("sisdr", "SiSdr"),
    "dnsmos": _dnsmos,
    "nomad": lambda options: NomadDistance(**options),
    "fad": lambda options: FadMetric(**options),
}


def build_metric(spec: MetricSpec) -> Metric | SetMetric:
    """Build a metric; anything that keeps it from running here becomes `MetricUnavailable`."""
    if spec.name not in BUILDERS:
        raise ConfigError(f"unknown metric {spec.name!r}; known: {', '.join(BUILDERS)}")
    try:
        return BUILDERS[spec.name](dict(spec.options))
    except (MetricUnavailable, ConfigError):
        raise
    except ImportError as exc:
        raise MetricUnavailable(f"{spec.name}: {exc}") from exc
    except TypeError as exc:  # an option the metric does not take
        raise ConfigError(f"{spec.name}: bad option ({exc})") from exc
    except DeepaqError as exc:
        raise MetricUnavailable(f"{spec.name}: {exc}") from exc


def is_set_metric(metric: Metric | SetMetric) -> bool:
    return hasattr(metric, "file_stats")
