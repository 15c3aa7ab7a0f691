"""The evaluation of one run directory: the registered metrics (`registry.METRICS`; the
paper's are coherence, latent classification, ex-post GMM, FIDs and sample grids) scheduled,
run in registry order on one shared context, and written to RUN_DIR/eval/ (`metrics_file`).
The numbers an evaluation computed also go to the run's loggers (`train.loggers`,
`log_results`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from dmvae import remote
from dmvae.errors import ConfigError, DmvaeError
from dmvae.evaluation import metrics_file
from dmvae.evaluation.context import EvalContext, build_context
from dmvae.evaluation.registry import METRICS, check_metric_names, lacking, wanted_metrics
from dmvae.evaluation.settings import EvalSettings
from dmvae.tracking import Loggers, LogSite, flat_numbers, open_loggers
from dmvae.training.rundir import evaluation_lock

log = logging.getLogger(__name__)

GMM = "gmm"
"""The metric that fits the ex-post GMM, which metrics with `Needs(gmm=True)` sample."""


def schedule(settings: EvalSettings, gmm_path: Path) -> list[str]:
    """The metrics to run, in registry order (`settings.metrics`, or those that run by
    default): a metric that needs the GMM brings "gmm" along unless a GMM is saved, and
    distances are dropped with `fid_features="none"`. Unknown names are a ConfigError."""
    wanted = set(wanted_metrics(settings))
    if any(METRICS[m].needs.gmm for m in wanted) and not gmm_path.exists():
        wanted.add(GMM)
    if settings.fid_features == "none":
        wanted = {m for m in wanted if not METRICS[m].needs.features}
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
    metric run now (`Metric.entries`) replace its old ones, and everything else stays (other
    metrics' entries, their `seconds`, keys other tools added such as the reproduce runner's
    `train_seconds` and `budget`); the header keys describe this evaluation. A metric skipped
    now keeps its old entries beside its `skipped` reason. `provenance` maps each metric to the
    checkpoint step, seed, device, date (ISO-8601, UTC), the metrics run before it in its
    evaluation (they share the generator) and the settings its numbers depend on
    (`Metric.settings`).

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
    check_metric_names(settings.metrics or ())  # before the run is loaded
    if remote.is_hub_ref(run_dir):
        raise ConfigError(
            f"evaluation writes its results beside the run: copy {run_dir} into a folder of "
            f"yours first (dmvae.hub.pull_run({run_dir!r}, DIR)) and evaluate that"
        )
    with evaluation_lock(Path(run_dir), allow_running) as training:
        return _evaluate(run_dir, settings, device, training)


def _evaluate(
    run_dir: str | Path, settings: EvalSettings, device: torch.device | str, training: Any
) -> dict:
    ctx = build_context(run_dir, settings, device)
    ctx.while_training = training is not None
    old = metrics_file.read_metrics(ctx.out_dir / "metrics.json")
    provenance = metrics_file.kept_provenance(old, ctx)
    entries: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    ran: list[str] = []
    for name in schedule(settings, ctx.gmm_path):
        metric = METRICS[name]
        reason = lacking(ctx, metric)
        if reason:
            skipped[name] = reason
            continue
        start = time.perf_counter()
        produced = metric.compute(ctx)
        ctx.timings[name] = round(time.perf_counter() - start, 2)
        foreign = sorted(set(produced) - set(metric.entries))
        if foreign:
            raise DmvaeError(f"metric {name!r} returned entries {foreign} it does not own")
        entries.update(produced)
        provenance[name] = metrics_file.provenance(ctx, name, before=ran)
        ran.append(name)
    result = metrics_file.merge(old, ctx, entries, ran, skipped, provenance)
    metrics_file.write_metrics(ctx, result)
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
