"""Generative coherence (Shi et al., 2019): does a classifier see the digit the model was asked
for? Conditional: encode a subset S of the test tuple, decode target j, compare with the label.
Joint: sample unconditionally, count samples on which every modality's classifier agrees.
Decoded means are clamped to [0, 1] before classification."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch
from torch import nn
from tqdm.auto import tqdm

from dmvae.classifiers import predict
from dmvae.data.batch import MultimodalData
from dmvae.models.base import ContentSampler, MultimodalVAE, Style


def mapping_name(subset: Sequence[str], target: str) -> str:
    return f"{'+'.join(subset)}->{target}"


def subset_maps(
    modalities: Sequence[str], all_subsets: bool = True
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(subset, targets) pairs: every non-empty proper subset with the modalities outside it
    (`all_subsets`), else single modalities and leave-one-out subsets only."""
    m = len(modalities)
    sizes = range(1, m) if all_subsets else sorted({1, m - 1})
    maps = []
    for k in sizes:
        for subset in combinations(modalities, k):
            maps.append((subset, tuple(t for t in modalities if t not in subset)))
    return maps


@torch.inference_mode()
def conditional_coherence(
    model: MultimodalVAE,
    data: MultimodalData,
    classifiers: dict[str, nn.Module],
    *,
    all_subsets: bool = True,
    batch_size: int = 1000,
    style: Style = "prior",
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Accuracy of every map S -> j ("m0+m1->m2"); each modality of a batch is encoded once,
    each subset's posterior built from those encodings, and all its targets decoded from it."""
    maps = subset_maps(model.modalities, all_subsets)
    correct = {mapping_name(s, t): 0 for s, targets in maps for t in targets}
    batches = data.batches(batch_size, shuffle=False, generator=generator)
    total = 0
    for batch in tqdm(
        batches, desc="coherence", total=data.num_batches(batch_size), disable=not progress
    ):
        total += len(batch)
        with model.reuse_encodings():
            for subset, targets in maps:
                out = model.conditional_generate(
                    batch.inputs, targets, subset, style=style, generator=generator
                )
                for t in targets:
                    pred = predict(classifiers[t], out[t])
                    correct[mapping_name(subset, t)] += int((pred == batch.labels).sum())
    return {k: v / max(total, 1) for k, v in correct.items()}


def summarise(coherence: dict[str, float], modalities: Sequence[str]) -> dict[str, float]:
    """Cross (i -> j) mean, leave-one-out mean (all others -> j) and their per-target values."""
    out: dict[str, float] = {}
    cross = [coherence[mapping_name((i,), j)] for i in modalities for j in modalities if i != j]
    out["cross_mean"] = sum(cross) / len(cross)
    loo = []
    for j in modalities:
        others = tuple(m for m in modalities if m != j)
        value = coherence.get(mapping_name(others, j))
        if value is not None:
            out[f"leave_one_out/{j}"] = value
            loo.append(value)
    out["leave_one_out_mean"] = sum(loo) / len(loo)
    return out


@torch.inference_mode()
def joint_coherence(
    model: MultimodalVAE,
    classifiers: dict[str, nn.Module],
    n: int,
    content_sampler: ContentSampler | None = None,
    *,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> float:
    """Fraction of unconditional samples on which all modalities' classifiers agree."""
    agree = 0
    for start in range(0, n, batch_size):
        k = min(batch_size, n - start)
        samples = model.generate(k, content_sampler, generator)
        preds = torch.stack([predict(classifiers[m], samples[m]) for m in model.modalities])
        agree += int((preds == preds[:1]).all(0).sum())
    return agree / n
