"""The training loop: data on the device, batches by index, one `TrainStep` per batch, logs and
atomic checkpoints; `resume=True` continues a stopped run to the result it would have had.

Under torchrun (WORLD_SIZE > 1) it trains data-parallel: see `dmvae.distributed`.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from dmvae import distributed, remote
from dmvae.config import LOCATION, RunConfig, data_folder_key
from dmvae.data import signature
from dmvae.devices import resolve_device
from dmvae.errors import CheckpointError, ConfigError, TrainingDiverged
from dmvae.experiments import EXPERIMENTS
from dmvae.files import atomic_path
from dmvae.models.base import MultimodalVAE
from dmvae.objectives import kl_anneal_weight
from dmvae.tracking import Logger, Loggers, LogSite, check_loggers, open_loggers
from dmvae.training import rundir, state
from dmvae.training.log import RunLog
from dmvae.training.state import CHECKPOINT, EpochSampler
from dmvae.training.step import NonFiniteLoss, TrainStep


def train(config: RunConfig, resume: bool = False, overwrite: bool = False) -> MultimodalVAE:
    """Train the model `config` describes, writing config.json, logs and checkpoints to
    `config.train.out`; returns the model in eval mode. A directory that holds a run is
    continued with `resume` or replaced with `overwrite`, never silently."""
    return _train(config, resume, overwrite, distributed.setup(config.train.device))


def _train(
    config: RunConfig, resume: bool, overwrite: bool, ctx: distributed.Context
) -> MultimodalVAE:
    t, out = config.train, Path(config.train.out)
    rundir.check_start(out, config, resume, overwrite)
    config.check()
    check_loggers(t.loggers)
    torch.manual_seed(t.seed)
    data = config.build_data("train", ctx.device)  # data and networks are checked before
    model = config.build_model().to(ctx.device)  # anything is written
    sampler = EpochSampler(data, t.batch_size, t.drop_last, t.seed, ctx)
    distributed.barrier(ctx)  # every rank has read the old config before rank 0 replaces it
    with _writer(out, overwrite, ctx), _run_loggers(config, resume, ctx) as loggers:
        if ctx.is_main:
            with atomic_path(out / "config.json") as tmp:
                tmp.write_text(json.dumps(config.to_dict(), indent=2))
        model.train()
        step_fn = TrainStep(model, t.lr, t.amsgrad, t.amp, ctx)
        noise = torch.Generator(device=ctx.device).manual_seed(t.seed + 1)
        parts = (model, step_fn.optimizers, sampler, noise)
        start = state.restore(out / CHECKPOINT, *parts) if resume else 0
        if ctx.enabled:  # per-rank streams; a checkpoint holds rank 0's: restart them here
            noise.manual_seed(t.seed + 1 + 1000 * ctx.rank + start)
            torch.manual_seed(t.seed + 1000 * ctx.rank + start)
            distributed.broadcast_parameters(model, ctx)
        _loop(config, ctx, step_fn, parts, start, loggers)
    model.eval()
    return model


@contextmanager
def _writer(out: Path, overwrite: bool, ctx: distributed.Context) -> Iterator[None]:
    """Rank 0 holds the run's lock; an `overwrite` clears the old run, and files a killed
    writer left are removed."""
    if not ctx.is_main:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with rundir.locked(out):
        if overwrite:
            rundir.clear(out)
        rundir.remove_leftovers(out)
        yield


@contextmanager
def _run_loggers(config: RunConfig, resume: bool, ctx: distributed.Context) -> Iterator[Logger]:
    """Rank 0's loggers (`train.loggers`; the other ranks log nothing), opened in the locked
    run directory before config.json is written, and closed when training ends. A new run
    whose tracker cannot start (no wandb login) is left as if it never started."""
    if not ctx.is_main:
        yield Loggers({})
        return
    out = Path(config.train.out)
    try:
        loggers = open_loggers(config.train.loggers, LogSite(out, "train", resume))
    except BaseException:
        if not resume:
            rundir.clear(out)
        raise
    try:
        loggers.log_config(config.to_dict())
        yield loggers
    finally:
        loggers.close()


def _loop(config, ctx, step_fn, parts, start: int, loggers: Logger) -> None:
    """Steps from `start`, logging and checkpointing; Ctrl-C saves after the current step.

    The device is read only where the host must know: at log records, and before each
    checkpoint, where `step_fn.check()` stops a run whose loss became NaN since the last check,
    so that no checkpoint is written from such a step. Under torchrun the ranks agree on Ctrl-C
    at log and checkpoint steps only (each agreement is a collective that waits for the device).
    """
    t, out = config.train, Path(config.train.out)
    model, optimizers, sampler, noise = parts
    total = t.epochs * sampler.steps_per_epoch
    total = total if t.max_steps is None else min(total, t.max_steps)
    anneal_steps = round(t.anneal_epochs * sampler.steps_per_epoch)
    last_save = time.monotonic()

    def save(step: int) -> None:
        nonlocal last_save
        if ctx.is_main:
            try:
                state.save(out / CHECKPOINT, *parts, step, config.to_dict())
            except OSError as err:  # the write is atomic: the previous checkpoint is whole
                raise CheckpointError(_failed_write(out, step, err)) from err
        last_save = time.monotonic()

    def check() -> None:
        try:
            step_fn.check()
        except NonFiniteLoss as err:
            step = start + err.call
            raise TrainingDiverged(
                f"the loss became NaN or infinite at step {step}; {_kept(out)}"
            ) from None

    every = dict(start=start, total=total, every=t.log_every)
    log = RunLog(model, loggers, **every, batch_size=t.batch_size, progress=t.progress, ctx=ctx)
    with rundir.deferred_interrupt() as interrupted:
        try:
            for step, epoch, batch in sampler.batches(start, total, noise):
                kl_weight = kl_anneal_weight(step, anneal_steps)
                terms = step_fn(batch, kl_weight)
                done = step + 1
                timed = time.monotonic() - last_save >= 60 * t.checkpoint_minutes > 0
                saving = (done % t.checkpoint_every == 0 or timed) and done < total
                agreed = done % t.log_every == 0 or done % t.checkpoint_every == 0
                stop = (agreed or not ctx.enabled) and distributed.any_across(interrupted(), ctx)
                if saving or stop or log.due(done):
                    check()
                log.step(done, epoch, terms, kl_weight, batch)
                if stop:  # all ranks stop together
                    save(done)
                    raise KeyboardInterrupt(f"checkpoint at step {done} in {out}")
                if saving:
                    save(done)
            check()
            save(total)
            distributed.barrier(ctx)  # no rank returns before the final checkpoint is on disk
        finally:
            log.close()


def _kept_checkpoint(out: Path) -> int | None:
    """The step of the run's checkpoint, None when there is none."""
    path = out / CHECKPOINT
    if not path.exists():
        return None
    from dmvae.checkpoints import read_metadata

    return int(read_metadata(path)["info"]["step"])


def _kept(out: Path) -> str:
    """What a diverged run leaves, naming only files that exist."""
    step = _kept_checkpoint(out)
    if step is not None:
        return (
            f"the last good checkpoint (step {step}) is kept in {out / CHECKPOINT}; lower the "
            "learning rate or check the data, then continue with --resume"
        )
    return (
        "no checkpoint was written yet; lower the learning rate or check the data, then start "
        "the run again with --overwrite"
    )


def _failed_write(out: Path, step: int, err: OSError) -> str:
    """A checkpoint that could not be written (a full disk, a file size limit): the path, the
    error, what is kept and the fix."""
    kept = _kept_checkpoint(out)
    problem = err.strerror or str(err) or type(err).__name__
    fix = {
        errno.ENOSPC: "free disk space",
        errno.EDQUOT: "free space within your disk quota",
        errno.EFBIG: "raise the file size limit (ulimit -f)",
    }.get(err.errno, "fix that")
    if kept is None:
        left = f"no checkpoint was written before; {fix}, then start the run again with "
        left += "--overwrite"
    else:
        left = f"the previous checkpoint (step {kept}) is kept; {fix}, then continue with --resume"
    return f"cannot write the checkpoint of step {step} to {out / CHECKPOINT}: {problem}; {left}"


def same_run(out: str | Path, config: RunConfig) -> bool:
    """Whether OUT/config.json, if there is one, describes `config` (resumable settings aside)."""
    saved = Path(out) / "config.json"
    if not saved.exists():
        return True
    return not rundir.identity_diff(RunConfig.from_dict(json.loads(saved.read_text())), config)


def load_run(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    experiment: str | None = None,
    data: Mapping[str, Any] | None = None,
    data_root: str | None = None,
) -> tuple[MultimodalVAE, RunConfig]:
    """The trained model of a run directory (eval mode) and its config. `experiment` replaces
    the name config.json holds (a run trained from Python on an experiment registered there:
    name it as "module:attribute"); `data` overrides data settings (where the data are now
    and how they are scored, `config.LOCATION`, not what was trained on); `data_root` is the
    experiment's data folder setting, whatever its name ("root", or the folder's "path").

    `run_dir` may be a run shared on the Hugging Face Hub, "hf://user/name[@revision]"
    (`dmvae.hub`): it is downloaded into the Hugging Face cache, and refused if its config
    names code to import that `experiment` and `data` do not replace."""
    from dmvae import checkpoints as ckpt

    source, run_dir = run_dir, remote.local_run(run_dir)
    data = dict(data or {})
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.json); train it first")
    try:
        saved = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{cfg_path} is not valid JSON ({err}); restore it from a backup or retrain"
        ) from err
    if remote.is_hub_ref(source) and isinstance(saved, dict):
        remote.refuse_code(saved, str(source), experiment, data)
    if experiment:
        saved["experiment"] = experiment
    elif isinstance(saved, dict) and saved.get("experiment") not in EXPERIMENTS:
        name = saved.get("experiment")
        if isinstance(name, str) and ":" not in name:
            raise ConfigError(
                f"{source} was trained on experiment {name!r}, which is not registered here "
                "(it was registered in Python): register it first, or name the object with "
                "`--experiment package.module:ATTRIBUTE` (load_run(..., experiment=...))"
            )
    changed = sorted(set(data) - set(LOCATION))
    if changed:
        raise ConfigError(
            f"data settings {changed} change what the run was trained on; evaluation can only "
            f"override {list(LOCATION)}"
        )
    if data_root is not None:
        data[data_folder_key(saved.get("experiment", ""))] = data_root
    if data:
        saved["data"] = {**(saved.get("data") or {}), **data}
    config = RunConfig.from_dict(saved)
    model = config.build_model()
    tensors, meta = ckpt.read_checkpoint(run_dir / CHECKPOINT)
    ckpt.load_model_weights(model, tensors, run_dir / CHECKPOINT)
    if "data_signature" in meta["info"]:  # runs trained before it was recorded have none
        model.data_signature = signature.from_json(meta["info"]["data_signature"])
    model.to(resolve_device(str(device)) if isinstance(device, str) else device)
    model.eval()
    return model, config
