"""What the suite knows about a metric, in one frozen record: the function that computes it
from the evaluation's context, the top-level keys of eval/metrics.json it owns, the settings
its numbers depend on (its provenance), and what it needs of the run and its data (a metric
lacking something is skipped with the reason). Registered in registry.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dmvae.evaluation.context import EvalContext


@dataclass(frozen=True)
class Needs:
    """What a metric needs; without it the metric is skipped and says why (`lacking`)."""

    classifiers: bool = False
    """A classifier for every modality; the provenance then names them."""
    labels: bool = False
    """Labelled test data."""
    images: bool = False
    """At least one image modality (uint8 [N, C, H, W])."""
    features: bool = False
    """Distances in the feature space `fid_features` names: dropped with "none", and with
    "classifier" the image modalities' classifiers need `features` (the provenance names them)."""
    gmm: bool = False
    """The ex-post GMM: the "gmm" metric is scheduled before it unless one is saved."""
    style: bool = False
    """A model with modality-specific latents (`has_style`)."""


@dataclass(frozen=True)
class Metric:
    """One metric: `compute` returns the entries it adds to metrics.json (a subset of
    `entries`, the keys it owns and replaces whenever it runs); `settings` names the
    `EvalSettings` fields that change its numbers, besides the seed and the metrics that ran
    before it (they share the generator). `by_default`: whether an evaluation that names no
    metrics runs it (the costly ones run when named)."""

    name: str
    compute: Callable[[EvalContext], dict]
    entries: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    needs: Needs = Needs()
    by_default: bool = True
