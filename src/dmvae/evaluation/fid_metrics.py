"""The paper's Fréchet distances of one run: unconditional (prior and ex-post GMM), conditional
and class-specific conditional, each against cached statistics of the real test images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from dmvae.data.batch import MultimodalData
from dmvae.data.sources import user_cache_dir
from dmvae.evaluation import coherence as coh
from dmvae.evaluation.context import EvalContext
from dmvae.evaluation.fid import (
    ClassifierFeatures,
    FeatureStats,
    InceptionFeatures,
    class_conditional_fid,
    fid,
    real_statistics,
)
from dmvae.files import writable

Extractor = InceptionFeatures | ClassifierFeatures
CHUNK = 1000  # generated images per model call


def stats_dir(root: Path) -> Path:
    """Where real-image statistics are cached: next to the data if writable, else per user."""
    for d in (root / "dmvae_stats", user_cache_dir() / "stats"):
        if writable(d):
            return d
    raise OSError("no writable folder for feature statistics")


def fid_maps(modalities: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    """Cross maps for two modalities, leave-one-out maps for more (the paper's FIDs)."""
    if len(modalities) == 2:
        return [((a,), b) for a in modalities for b in modalities if a != b]
    return [(tuple(m for m in modalities if m != t), t) for t in modalities]


def image_modalities(ctx: EvalContext) -> list[str]:
    """The modalities distances are computed for (uint8 images; all in the paper's data)."""
    return [m for m in ctx.model.modalities if ctx.test.is_image(m)]


def feature_extractors(ctx: EvalContext) -> dict[str, Extractor]:
    """One extractor per image modality; one Inception network (it holds no per-data state)
    serves them all, e.g. PolyMNIST's five modalities of five classifier kinds."""
    images = image_modalities(ctx)
    if ctx.settings.fid_features == "inception":
        net = InceptionFeatures(ctx.device)
        return {m: net for m in images}
    return {m: ClassifierFeatures(ctx.classifiers[m]) for m in images}


@dataclass
class RealStatistics:
    """Feature statistics of the real test images of a modality, all or one digit's, cached on
    disk under a key naming the data set, digit and count."""

    test: MultimodalData
    kinds: dict[str, str]
    extractors: dict[str, Extractor]
    num_real: int | None
    cache_dir: Path

    def __call__(self, m: str, digit: int | None = None) -> FeatureStats:
        bank, labels = self.test.labelled_images(m)
        images = (bank if digit is None else bank[labels == digit])[: self.limit(digit)]
        key = f"{self.kinds[m]}-test-{'all' if digit is None else digit}-n{len(images)}"
        return real_statistics(self.cache_dir, key, self.extractors[m], images)

    def limit(self, digit: int | None) -> int | None:
        """`num_real` images in all, a tenth of them (at least 2) per digit."""
        if self.num_real is None or digit is None:
            return self.num_real
        return max(self.num_real // 10, 2)


def unconditional_fids(ctx: EvalContext, real: RealStatistics) -> dict[str, float]:
    """Joint samples from the prior, and from the ex-post GMM when one was fitted or saved."""
    n, out = ctx.settings.num_samples, {}
    gmm = ctx.saved_gmm()
    samplers = [("prior", None)] + ([("gmm", gmm)] if gmm is not None else [])
    for name, sampler in samplers:
        chunks = [
            ctx.model.generate(min(CHUNK, n - i), sampler, ctx.generator)
            for i in range(0, n, CHUNK)
        ]
        for m in image_modalities(ctx):
            fake = torch.cat([c[m] for c in chunks])
            out[f"unconditional_{name}/{m}"] = fid(real.extractors[m], real(m), fake)
    return out


def _generate(ctx: EvalContext, rows: Tensor, subset: tuple[str, ...], target: str) -> Tensor:
    """`target` generated from the test rows' `subset`, with the suite's style and generator."""
    batch = ctx.test.batch(rows, ctx.generator)
    out = ctx.model.conditional_generate(
        batch.inputs, [target], subset, style=ctx.style, generator=ctx.generator
    )
    return out[target]


def conditional_fid(
    ctx: EvalContext, real: RealStatistics, order: Tensor, subset: tuple[str, ...], target: str
) -> float:
    """Distance of `target` generated from the first `num_samples` shuffled test rows."""
    rows = order[: ctx.settings.num_samples]
    fake = torch.cat(
        [_generate(ctx, rows[i : i + CHUNK], subset, target) for i in range(0, len(rows), CHUNK)]
    )
    return fid(real.extractors[target], real(target), fake)


def class_specific_fid(
    ctx: EvalContext, real: RealStatistics, order: Tensor, subset: tuple[str, ...], target: str
) -> float:
    """Mean over digits of the distance between `target` generated from test rows of that
    digit (a tenth of `num_samples`, at least 2) and the real images of that digit."""
    per_digit = max(ctx.settings.num_samples // 10, 2)
    labels = ctx.test.labels[order.to(ctx.test.labels.device)].cpu()
    classes = labels.unique().tolist()
    fake = {d: _generate(ctx, order[labels == d][:per_digit], subset, target) for d in classes}
    real_by_digit = {d: real(target, d) for d in classes}
    mean, _ = class_conditional_fid(real.extractors[target], real_by_digit, fake)
    return mean


@torch.inference_mode()
def fids(ctx: EvalContext) -> dict[str, float | str]:
    """All FIDs of the paper for one run; conditional maps draw from the shared generator in
    turn (each map's conditional, then its class-specific samples)."""
    extractors = feature_extractors(ctx)
    real = RealStatistics(
        ctx.test, ctx.kinds, extractors, ctx.settings.num_real, stats_dir(ctx.cache_root)
    )
    out: dict[str, float | str] = {"features": ctx.settings.fid_features}
    out.update(unconditional_fids(ctx, real))
    order = torch.randperm(len(ctx.test), generator=torch.Generator().manual_seed(0))
    class_specific = []
    images = image_modalities(ctx)
    for subset, target in fid_maps(ctx.model.modalities):
        if target not in images:
            continue
        name = coh.mapping_name(subset, target)
        out[f"conditional/{name}"] = conditional_fid(ctx, real, order, subset, target)
        if ctx.test.labelled:  # class-specific distances need the classes
            class_specific.append(class_specific_fid(ctx, real, order, subset, target))
            out[f"class_conditional/{name}"] = class_specific[-1]
    if class_specific:
        out["class_conditional_leave_one_out_mean"] = sum(class_specific) / len(class_specific)
    return out
