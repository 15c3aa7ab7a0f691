"""The metrics `evaluate_run` can compute, one `Metric` record each (metric.py), in the order
they run: the paper's (paper_metrics.py), then your own (`register_metric`); and what the
records' needs mean for a run (`lacking`, `scoring_classifiers`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from dmvae.errors import ConfigError
from dmvae.evaluation.context import EvalContext
from dmvae.evaluation.fid_metrics import image_modalities
from dmvae.evaluation.loglik import loglik
from dmvae.evaluation.metric import Metric
from dmvae.evaluation.paper_metrics import PAPER_METRICS
from dmvae.evaluation.settings import EvalSettings, check_choice

RESERVED = ("run", "model", "experiment", "modalities", "style", "num_samples", "seed", "step")
RESERVED += ("skipped", "seconds", "provenance")
"""Keys of metrics.json that belong to the evaluation as a whole, not to one metric."""


LOGLIK = Metric(
    "loglik",
    loglik,
    entries=("loglik",),
    settings=("max_test", "loglik_test", "loglik_samples", "batch_size"),
    by_default=False,  # 2 M K decoder passes per test tuple: minutes on a CPU (loglik.py)
)
"""Test log-likelihoods (loglik.py): the MMVAE and MoPoE papers' measure, after the paper's;
run when named."""

METRICS: dict[str, Metric] = {m.name: m for m in (*PAPER_METRICS, LOGLIK)}
"""The registered metrics by name, in the order an evaluation runs them: the paper's first,
then the log-likelihoods, then your own."""


def register_metric(metric: Metric) -> Metric:
    """Add a metric after the registered ones (it then runs last); returns it. Refuses a name
    or an entry that is taken and settings that `EvalSettings` does not have."""
    if metric.name in METRICS:
        raise ConfigError(f"metric {metric.name!r} is registered already")
    owners = {key: m.name for m in METRICS.values() for key in m.entries}
    owners.update((key, "the evaluation") for key in RESERVED)
    taken = {key: owners[key] for key in metric.entries if key in owners}
    if taken:
        raise ConfigError(f"metric {metric.name!r}: entries owned by others: {taken}")
    fields = [f.name for f in dataclasses.fields(EvalSettings)]
    check_choice(f"setting of metric {metric.name!r}", metric.settings, fields)
    METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric (its entries in existing metrics.json files are kept as other keys)."""
    check_metric_names([name])
    del METRICS[name]


def wanted_metrics(settings: EvalSettings) -> list[str]:
    """The metrics `settings` asks for, in registry order: those named, else the ones that run
    by default."""
    if settings.metrics:
        check_metric_names(settings.metrics)
        return [name for name in METRICS if name in settings.metrics]
    return [name for name, metric in METRICS.items() if metric.by_default]


def check_metric_names(names: Iterable[str]) -> None:
    """A ConfigError for names that are not registered metrics."""
    check_choice("metric", list(names), list(METRICS))


def lacking(ctx: EvalContext, metric: Metric) -> str | None:
    """Why `metric` cannot score this run (data without classifiers, labels or images), or
    None. The paper's experiments have all it needs, so nothing is skipped there."""
    needs, names = metric.needs, ctx.model.modalities
    no_classifier = [m for m in names if m not in ctx.classifiers]
    images = image_modalities(ctx)
    if needs.classifiers and no_classifier:
        return f"no classifier for {no_classifier}: give the experiment classifiers"
    if needs.labels and not ctx.test.labelled:
        return "the data have no labels (give labels.npy, or labels to from_tensors)"
    if needs.images and not images:
        return "no image modality (uint8 [N, C, H, W])"
    if needs.features and ctx.settings.fid_features == "classifier":
        featureless = [m for m in images if not hasattr(ctx.classifiers.get(m), "features")]
        if featureless:
            return f"classifier-feature distances need classifiers with `features`: {featureless}"
    if needs.style and not ctx.model.has_style:
        return "the model has no modality-specific latents"
    return None


def scoring_classifiers(ctx: EvalContext, metric: Metric) -> list[str]:
    """The modalities whose classifiers produce the metric's numbers (its provenance names
    them): all for a metric that needs classifiers, the image modalities for distances in
    classifier features, none otherwise."""
    if metric.needs.classifiers:
        return list(ctx.model.modalities)
    if metric.needs.features and ctx.settings.fid_features == "classifier":
        return image_modalities(ctx)
    return []
