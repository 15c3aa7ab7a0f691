"""The short-run learning measure: a linear probe of the shared latent and the one-to-one
conditional coherence. The learning tests and the benchmark scripts that set their thresholds
both score with it, so that a threshold and the measurement behind it cannot drift apart."""

from __future__ import annotations

import torch

from dmvae.data.batch import MultimodalData
from dmvae.evaluation.coherence import conditional_coherence, summarise
from dmvae.evaluation.latent import embeddings, linear_probe_accuracy
from dmvae.models.base import MultimodalVAE


def probe_and_coherence(
    model: MultimodalVAE,
    probe_train: MultimodalData,
    test: MultimodalData,
    classifiers: dict[str, torch.nn.Module],
    generator: torch.Generator,
) -> tuple[float, dict[str, float]]:
    """The linear probe's accuracy (shared latent given all modalities, fitted on
    `probe_train`, scored on `test`) and every one-to-one conditional coherence on `test`,
    each modality's samples judged by its classifier."""
    names = tuple(model.modalities)
    probe = linear_probe_accuracy(
        *embeddings(model, probe_train, names), *embeddings(model, test, names)
    )
    per_map = conditional_coherence(
        model, test, classifiers, all_subsets=False, generator=generator, progress=False
    )
    return probe, per_map


def content_scores(
    model: MultimodalVAE,
    probe_train: MultimodalData,
    test: MultimodalData,
    classifier: torch.nn.Module,
    generator: torch.Generator,
) -> tuple[float, float]:
    """The probe's accuracy and the leave-one-out coherence on `test`, every modality judged by
    the same `classifier`, both in [0, 1]."""
    names = tuple(model.modalities)
    probe, per_map = probe_and_coherence(
        model, probe_train, test, {m: classifier for m in names}, generator
    )
    return probe, summarise(per_map, names)["leave_one_out_mean"]
