"""The paper's evaluation as six metric records: coherence, latent classification, the
ex-post GMM, joint coherence, FIDs and sample grids, in the order they run (they share one
seeded generator)."""

from __future__ import annotations

from dmvae.errors import DmvaeError
from dmvae.evaluation import coherence as coh
from dmvae.evaluation.context import EvalContext
from dmvae.evaluation.density import fit_gmm
from dmvae.evaluation.fid_metrics import fids, image_modalities
from dmvae.evaluation.latent import latent_accuracy, style_accuracy
from dmvae.evaluation.metric import Metric, Needs
from dmvae.evaluation.report import save_conditional_grid, save_unconditional_grid


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
    unconverged = {k: list(v.unconverged) for k, v in out.items() if v.unconverged}
    if unconverged:  # probes stopped at their iteration limit: their provenance says so
        ctx.notes["latent"] = {"unconverged": unconverged}
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


PAPER_METRICS = (
    Metric(
        "coherence",
        coherence,
        entries=("coherence",),
        settings=("max_test", "style", "all_subsets", "batch_size"),
        needs=Needs(classifiers=True, labels=True),
    ),
    Metric(
        "latent",
        latent,
        entries=("latent", "latent_style"),
        settings=("max_test", "with_style"),
        needs=Needs(labels=True),
    ),
    Metric("gmm", gmm),  # fitted on the whole training set: no setting changes it
    Metric(
        "joint",
        joint,
        entries=("joint_coherence",),
        settings=("num_samples",),
        needs=Needs(classifiers=True, gmm=True),
    ),
    Metric(
        "fid",
        fid,
        entries=("fid",),
        settings=("fid_features", "num_samples", "num_real", "max_test", "style"),
        needs=Needs(images=True, features=True),
    ),
    Metric("grids", grids, settings=("max_test", "style"), needs=Needs(images=True)),
)
"""The paper's metrics in the order they run (they share one seeded generator); the registry
starts with them."""
