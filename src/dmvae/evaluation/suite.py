"""The paper's whole evaluation of one run directory: coherence, latent classification,
ex-post GMM, FIDs and sample grids, written to RUN_DIR/eval/.

Each metric is a function of an `EvalContext` returning the result entries it adds; `METRICS`
runs them in a fixed order because they share one seeded generator. `ENTRIES` names the
top-level keys of eval/metrics.json each metric owns, and `NUMBER_SETTINGS` the settings its
numbers depend on: an evaluation of some metrics replaces only their entries there and records
where each came from (`evaluate_run`). The numbers an evaluation computed also go to the
run's loggers (`train.loggers`, `log_results`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from dmvae import remote
from dmvae.errors import ConfigError, DmvaeError
from dmvae.evaluation import coherence as coh
from dmvae.evaluation.context import EvalContext, build_context
from dmvae.evaluation.density import fit_gmm
from dmvae.evaluation.fid_metrics import fids, image_modalities
from dmvae.evaluation.latent import latent_accuracy, style_accuracy
from dmvae.evaluation.report import metrics_markdown, save_conditional_grid, save_unconditional_grid
from dmvae.files import atomic_path
from dmvae.tracking import Loggers, LogSite, flat_numbers, open_loggers

log = logging.getLogger(__name__)

FID_FEATURES = ("inception", "classifier", "none")
STYLES = ("prior", "posterior")


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate a run; checked on creation so that a bad value fails before the run is
    loaded. `metrics=None` means all, `style=None` the model's default, `all_subsets=None`
    every subset for more than two modalities; `max_test` / `num_real` None: the whole test set.
    `experiment` replaces the run's experiment name (one registered in Python, named as
    "module:attribute"); `data_root` and `data` override where the data are and how they are
    scored (`load_run`), e.g. data={"classifiers": {"image": "cnn"}}.
    """

    metrics: Sequence[str] | None = None
    num_samples: int = 10000
    fid_features: str = "inception"
    batch_size: int = 1000
    data_root: str | None = None
    experiment: str | None = None
    data: Mapping[str, Any] | None = None
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


METRICS: dict[str, Callable[[EvalContext], dict]] = {
    "coherence": coherence,
    "latent": latent,
    "gmm": gmm,
    "joint": joint,
    "fid": fid,
    "grids": grids,
}

# The top-level keys of metrics.json each metric owns (replaced whenever it runs).
ENTRIES: dict[str, tuple[str, ...]] = {
    "coherence": ("coherence",),
    "latent": ("latent", "latent_style"),
    "gmm": (),
    "joint": ("joint_coherence",),
    "fid": ("fid",),
    "grids": (),
}

# The settings (besides seed, device and the metrics run before it) that change each metric's
# numbers, recorded in its provenance. The GMM is fitted on the whole training set.
NUMBER_SETTINGS: dict[str, tuple[str, ...]] = {
    "coherence": ("max_test", "style", "all_subsets", "batch_size"),
    "latent": ("max_test", "with_style"),
    "gmm": (),
    "joint": ("num_samples",),
    "fid": ("fid_features", "num_samples", "num_real", "max_test", "style"),
    "grids": ("max_test", "style"),
}

# The metrics whose numbers classifiers produce (the distances only with classifier features):
# their provenance names the classifiers (`EvalContext.classifier_info`).
SCORED_BY_CLASSIFIERS = ("coherence", "joint", "fid")

# Keys of metrics.json that belong to the evaluation as a whole, not to one metric.
HEADER = ("run", "model", "experiment", "modalities", "style", "num_samples", "seed", "step")
BOOKKEEPING = ("skipped", "seconds", "provenance")


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
    allow_running: bool = False,
    **options: Any,
) -> dict:
    """Evaluate a trained run; writes eval/metrics.{json,md} and grids, and returns what
    metrics.json now holds.

    The run is held while it is evaluated (`rundir.evaluation_lock`): a second evaluation, or
    one of a run whose training still runs, is refused; `allow_running` evaluates the current
    checkpoint of a running training instead, and marks each result `while_training`.

    Pass an `EvalSettings`, or its fields as keyword arguments (`metrics=["latent"]`, ...).

    Results merge into an existing eval/metrics.json, metric by metric: the entries of each
    metric run now (`ENTRIES`) replace its old ones, and everything else stays (other metrics'
    entries, their `seconds`, keys other tools added such as the reproduce runner's
    `train_seconds` and `budget`); the header keys describe this evaluation. A metric skipped
    now keeps its old entries beside its `skipped` reason. `provenance` maps each metric to the
    checkpoint step, seed, device, date (ISO-8601, UTC), the metrics run before it in its
    evaluation (they share the generator) and the settings its numbers depend on
    (`NUMBER_SETTINGS`).

    Stale results are kept, never silently mixed: when the run's checkpoint step differs from
    the step a kept metric was computed at (the run was trained further, or an evaluation
    before provenance was recorded), its provenance says `"stale": true` and metrics.md names
    it; re-running the metric clears the mark. A saved GMM (eval/gmm.npz) from another step is
    deleted instead, so that "joint" refits it and FIDs and grids never sample a stale one.
    metrics.json and metrics.md are written atomically.
    """
    if settings is not None and options:
        raise ConfigError(f"pass settings or their fields, not both (got {sorted(options)})")
    settings = settings or EvalSettings(**options)
    if remote.is_hub_ref(run_dir):
        raise ConfigError(
            f"evaluation writes its results beside the run: copy {run_dir} into a folder of "
            f"yours first (dmvae.hub.pull_run({run_dir!r}, DIR)) and evaluate that"
        )
    from dmvae.training.rundir import evaluation_lock

    with evaluation_lock(Path(run_dir), allow_running) as training:
        return _evaluate(run_dir, settings, device, training)


def _evaluate(
    run_dir: str | Path, settings: EvalSettings, device: torch.device | str, training: Any
) -> dict:
    ctx = build_context(run_dir, settings, device)
    ctx.while_training = training is not None
    path = ctx.out_dir / "metrics.json"
    old = read_metrics(path)
    provenance = _kept_provenance(old, ctx)
    entries: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    ran: list[str] = []
    for name in schedule(settings, ctx.gmm_path):
        reason = cannot_run(ctx, name)
        if reason:
            skipped[name] = reason
            continue
        start = time.perf_counter()
        produced = METRICS[name](ctx)
        ctx.timings[name] = round(time.perf_counter() - start, 2)
        foreign = sorted(set(produced) - set(ENTRIES[name]))
        if foreign:
            raise DmvaeError(f"metric {name!r} returned entries {foreign} it does not own")
        entries.update(produced)
        provenance[name] = _provenance(ctx, name, before=ran)
        ran.append(name)
    result = _merge(old, ctx, entries, ran, skipped, provenance)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_path(ctx.out_dir / "metrics.md") as tmp:
        tmp.write_text(metrics_markdown(result, ctx.run_table))
    log_results(ctx, entries)
    return result


def log_results(ctx: EvalContext, entries: dict) -> None:
    """Send the numbers this evaluation computed to the loggers the run trained with, as
    "eval/<entry>/<key>" at the checkpoint's step, into the same tracker runs as training
    (their ids are in RUN_DIR/trackers.json). metrics.json already holds the results, so a
    logger that cannot be opened here (a tracker not installed on this machine, or without a
    run recorded for this run directory) is skipped with a warning, and the others log."""
    values = flat_numbers(entries, "eval/")
    if not values:
        return
    site, opened = LogSite(ctx.run_dir, "evaluate", True), {}
    for name in dict.fromkeys(ctx.config.train.loggers):
        try:
            opened.update(open_loggers([name], site).loggers)
        except Exception as err:  # a tracker must not fail an evaluation whose results are saved
            log.warning("the results are not sent to the %s logger: %s", name, err)
    loggers = Loggers(opened)
    try:
        loggers.log_metrics(ctx.step or 0, values)
    finally:
        loggers.close()


def read_metrics(path: Path) -> dict:
    """An existing metrics.json (empty when there is none); a clear error if it is unreadable,
    rather than overwriting the results it holds."""
    if not path.exists():
        return {}
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DmvaeError(
            f"{path} cannot be read ({err}); evaluation merges its results into it: repair it, "
            "or move it away to start afresh"
        ) from err
    if not isinstance(metrics, dict):
        raise DmvaeError(f"{path} holds no JSON object; repair it, or move it away")
    return metrics


def _kept_provenance(old: dict, ctx: EvalContext) -> dict[str, dict]:
    """The provenance of the old results, each marked stale when its checkpoint step is not the
    run's; a stale saved GMM is deleted. Files written before provenance was recorded get
    `step: None` for the metrics whose entries they hold."""
    if "provenance" in old:
        records = {name: dict(record) for name, record in old["provenance"].items()}
    else:
        records = {
            name: {"step": None} for name, keys in ENTRIES.items() if any(k in old for k in keys)
        }
    if not ctx.gmm_path.exists() or records.get("gmm", {}).get("step") != ctx.step:
        ctx.gmm_path.unlink(missing_ok=True)  # fitted on another checkpoint's embeddings
        records.pop("gmm", None)
    for record in records.values():
        if record.get("step") == ctx.step:
            record.pop("stale", None)
        else:
            record["stale"] = True
    return records


def _provenance(ctx: EvalContext, name: str, before: Sequence[str]) -> dict:
    s = ctx.settings
    effective = {
        "style": ctx.style,
        "all_subsets": len(ctx.model.modalities) > 2 if s.all_subsets is None else s.all_subsets,
    }
    record = {
        "step": ctx.step,
        "seed": s.seed,
        "device": str(ctx.device),
        "date": datetime.now(timezone.utc).isoformat(),
        "after": list(before),
        "settings": {k: effective.get(k, getattr(s, k)) for k in NUMBER_SETTINGS[name]},
        **({"while_training": True} if ctx.while_training else {}),
        **ctx.notes.get(name, {}),
    }
    if name in SCORED_BY_CLASSIFIERS and (name != "fid" or s.fid_features == "classifier"):
        used = image_modalities(ctx) if name == "fid" else ctx.model.modalities
        info = ctx.classifier_info
        record["classifiers"] = {m: info[m] for m in used if m in info}
    return record


def _merge(
    old: dict,
    ctx: EvalContext,
    entries: dict,
    ran: Sequence[str],
    skipped: dict[str, str],
    provenance: dict[str, dict],
) -> dict:
    """metrics.json after this evaluation: its header, each metric's entries (new where it ran,
    else the old ones), skip reasons, seconds and provenance per metric, then any other keys
    of the old file."""
    replaced = {key for name in ran for key in ENTRIES[name]}
    kept = {k: v for k, v in old.items() if k not in replaced}
    result = _header(ctx)
    for name in METRICS:
        for key in ENTRIES[name]:
            if key in entries or key in kept:
                result[key] = entries[key] if key in entries else kept[key]
    old_skipped = {k: v for k, v in old.get("skipped", {}).items() if k not in ran}
    if old_skipped or skipped:
        result["skipped"] = {**old_skipped, **skipped}
    seconds = {**old.get("seconds", {}), **ctx.timings}
    result["seconds"] = {k: seconds[k] for k in ("load", *METRICS) if k in seconds}
    result["provenance"] = {k: provenance[k] for k in METRICS if k in provenance}
    owned = {key for keys in ENTRIES.values() for key in keys}
    result.update(
        (k, v) for k, v in kept.items() if k not in (*HEADER, *BOOKKEEPING) and k not in owned
    )
    return result


def cannot_run(ctx: EvalContext, name: str) -> str | None:
    """Why metric `name` cannot score this run (data without classifiers, labels or images),
    or None. The paper's experiments have both, so nothing is skipped there."""
    lacking = [m for m in ctx.model.modalities if m not in ctx.classifiers]
    images = image_modalities(ctx)
    if name in ("coherence", "joint") and lacking:
        return f"no classifier for {lacking}: give the experiment classifiers"
    if name in ("coherence", "latent") and not ctx.test.labelled:
        return "the data have no labels (give labels.npy, or labels to from_tensors)"
    if name in ("fid", "grids") and not images:
        return "no image modality (uint8 [N, C, H, W])"
    if name == "fid" and ctx.settings.fid_features == "classifier":
        featureless = [m for m in images if not hasattr(ctx.classifiers.get(m), "features")]
        if featureless:
            return f"classifier-feature distances need classifiers with `features`: {featureless}"
    return None


def _header(ctx: EvalContext) -> dict:
    """What the latest evaluation was: each metric's own settings are in its provenance."""
    return {
        "run": str(ctx.run_dir),
        "model": ctx.config.model,
        "experiment": ctx.config.experiment,
        "modalities": list(ctx.model.modalities),
        "style": ctx.style,
        "num_samples": ctx.settings.num_samples,
        "seed": ctx.settings.seed,
        "step": ctx.step,
    }
