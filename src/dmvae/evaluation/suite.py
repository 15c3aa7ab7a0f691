"""The paper's whole evaluation of one run directory: coherence, latent classification,
ex-post GMM, FIDs and sample grids, written to RUN_DIR/eval/.

Each metric is a function of an `EvalContext` returning the result entries it adds; `METRICS`
runs them in a fixed order because they share one seeded generator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dmvae.errors import ConfigError, DmvaeError
from dmvae.evaluation import coherence as coh
from dmvae.evaluation.context import EvalContext, build_context
from dmvae.evaluation.density import fit_gmm
from dmvae.evaluation.fid_metrics import fids, image_modalities
from dmvae.evaluation.latent import latent_accuracy, style_accuracy
from dmvae.evaluation.report import metrics_markdown, save_conditional_grid, save_unconditional_grid

FID_FEATURES = ("inception", "classifier", "none")
STYLES = ("prior", "posterior")


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate a run; checked on creation so that a bad value fails before the run is
    loaded. `metrics=None` means all, `style=None` the model's default, `all_subsets=None`
    every subset for more than two modalities; `max_test` / `num_real` None: the whole test set.
    """

    metrics: Sequence[str] | None = None
    num_samples: int = 10000
    fid_features: str = "inception"
    batch_size: int = 1000
    data_root: str | None = None
    max_test: int | None = None
    num_real: int | None = None
    style: str | None = None
    with_style: bool = False
    all_subsets: bool | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        metrics = (self.metrics,) if isinstance(self.metrics, str) else self.metrics
        object.__setattr__(self, "metrics", tuple(metrics or METRICS))
        _choose("metric", self.metrics, METRICS)
        _choose("fid_features", [self.fid_features], FID_FEATURES)
        _choose("style", [self.style], (*STYLES, None))
        _count("num_samples", self.num_samples, 1)
        _count("batch_size", self.batch_size, 1)
        _count("max_test", self.max_test, 1, optional=True)
        _count("num_real", self.num_real, 2, optional=True)


def _choose(name: str, values: Sequence[Any], valid: Sequence[Any]) -> None:
    unknown = [v for v in values if v not in valid]
    if unknown:
        shown = ", ".join(map(repr, unknown))
        raise ConfigError(f"unknown {name} {shown}: choose from {', '.join(map(repr, valid))}")


def _count(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        valid = f"an integer >= {low}" + (" or None (the whole test set)" if optional else "")
        raise ConfigError(f"{name}={value!r} is invalid: use {valid}")


def coherence(ctx: EvalContext) -> dict:
    """Accuracy of conditional generation for every subset -> target map (paper, Table 1)."""
    s, names = ctx.settings, ctx.model.modalities
    per_map = coh.conditional_coherence(
        ctx.model,
        ctx.test,
        ctx.classifiers,
        all_subsets=len(names) > 2 if s.all_subsets is None else s.all_subsets,
        batch_size=s.batch_size,
        style=ctx.style,
        generator=ctx.generator,
        progress=s.progress,
    )
    return {"coherence": {**per_map, **coh.summarise(per_map, names)}}


def latent(ctx: EvalContext) -> dict:
    """Linear digit probes of the shared latent (and of DMVAE's style, which should fail)."""
    s = ctx.settings
    out = {
        "latent": latent_accuracy(
            ctx.model, ctx.train, ctx.test, seed=s.seed, with_style=s.with_style
        )
    }
    if ctx.model.has_style:
        out["latent_style"] = style_accuracy(ctx.model, ctx.train, ctx.test, seed=s.seed)
    return out


def gmm(ctx: EvalContext) -> dict:
    """Fit the ex-post GMM and save it to eval/gmm.npz for later metrics and evaluations; it
    adds no entry of its own."""
    ctx.gmm = fit_gmm(ctx.model, ctx.train, seed=ctx.settings.seed)
    ctx.gmm.save(ctx.gmm_path)
    return {}


def joint(ctx: EvalContext) -> dict:
    """Agreement of the classifiers on joint samples from the prior and from the GMM."""
    sampler = ctx.saved_gmm()
    if sampler is None:
        raise DmvaeError(f"joint coherence needs the ex-post GMM ({ctx.gmm_path}): run 'gmm'")
    n, g = ctx.settings.num_samples, ctx.generator
    return {
        "joint_coherence": {
            "prior": coh.joint_coherence(ctx.model, ctx.classifiers, n, None, generator=g),
            "gmm": coh.joint_coherence(ctx.model, ctx.classifiers, n, sampler, generator=g),
        }
    }


def fid(ctx: EvalContext) -> dict:
    """Unconditional, conditional and class-specific FIDs; the GMM-sampled ones only when a GMM
    was fitted now or saved before."""
    return {"fid": fids(ctx)}


def grids(ctx: EvalContext) -> dict:
    """Sample grids (paper, Fig. 2) as PNGs in eval/; they add no entry."""
    names, g, images = ctx.model.modalities, ctx.generator, image_modalities(ctx)
    for source, target in [(names[0], names[1]), (names[1], names[0])]:
        if target in images:
            path = ctx.out_dir / f"conditional_{source}_to_{target}.png"
            save_conditional_grid(
                ctx.model, ctx.test, source, target, path, style=ctx.style, generator=g
            )
    path = ctx.out_dir / "unconditional_prior.png"
    save_unconditional_grid(ctx.model, path, generator=g, images=images)
    sampler = ctx.saved_gmm()
    if sampler is not None:
        path = ctx.out_dir / "unconditional_gmm.png"
        save_unconditional_grid(ctx.model, path, sampler=sampler, generator=g, images=images)
    return {}


METRICS: dict[str, Callable[[EvalContext], dict]] = {
    "coherence": coherence,
    "latent": latent,
    "gmm": gmm,
    "joint": joint,
    "fid": fid,
    "grids": grids,
}


def schedule(settings: EvalSettings, gmm_path: Path) -> list[str]:
    """The metrics to run, in registry order: "joint" brings "gmm" along unless a GMM is saved,
    and "fid" is dropped with `fid_features="none"`."""
    wanted = set(settings.metrics)
    if "joint" in wanted and not gmm_path.exists():
        wanted.add("gmm")
    if settings.fid_features == "none":
        wanted.discard("fid")
    return [name for name in METRICS if name in wanted]


def evaluate_run(
    run_dir: str | Path,
    *,
    settings: EvalSettings | None = None,
    device: torch.device | str = "cpu",
    **options: Any,
) -> dict:
    """Evaluate a trained run; returns the metrics and writes eval/metrics.{json,md} and grids.

    Pass an `EvalSettings`, or its fields as keyword arguments (`metrics=["latent"]`, ...).
    """
    if settings is not None and options:
        raise ConfigError(f"pass settings or their fields, not both (got {sorted(options)})")
    settings = settings or EvalSettings(**options)
    ctx = build_context(run_dir, settings, device)
    result, skipped = _header(ctx), {}
    for name in schedule(settings, ctx.gmm_path):
        reason = cannot_run(ctx, name)
        if reason:
            skipped[name] = reason
            continue
        start = time.perf_counter()
        result.update(METRICS[name](ctx))
        ctx.timings[name] = round(time.perf_counter() - start, 2)
    if skipped:
        result["skipped"] = skipped
    result["seconds"] = ctx.timings
    (ctx.out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    (ctx.out_dir / "metrics.md").write_text(metrics_markdown(result, ctx.run_table))
    return result


def cannot_run(ctx: EvalContext, name: str) -> str | None:
    """Why metric `name` cannot score this run (data without classifiers or without images),
    or None. The paper's experiments have both, so nothing is skipped there."""
    lacking = [m for m in ctx.model.modalities if m not in ctx.classifiers]
    images = image_modalities(ctx)
    if name in ("coherence", "joint") and lacking:
        return f"no classifier for {lacking}: give the experiment classifiers"
    if name in ("fid", "grids") and not images:
        return "no image modality (uint8 [N, C, H, W])"
    if name == "fid" and ctx.settings.fid_features == "classifier":
        featureless = [m for m in images if not hasattr(ctx.classifiers.get(m), "features")]
        if featureless:
            return f"classifier-feature distances need classifiers with `features`: {featureless}"
    return None


def _header(ctx: EvalContext) -> dict:
    return {
        "run": str(ctx.run_dir),
        "model": ctx.config.model,
        "experiment": ctx.config.experiment,
        "modalities": list(ctx.model.modalities),
        "style": ctx.style,
        "num_samples": ctx.settings.num_samples,
        "seed": ctx.settings.seed,
    }
