"""The training loop: data on the device, batches by index, one `TrainStep` per batch, logs and
atomic checkpoints; `resume=True` continues a stopped run to the result it would have had.

Under torchrun (WORLD_SIZE > 1) it trains data-parallel: see `dmvae.distributed`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dmvae import distributed
from dmvae.config import RunConfig
from dmvae.devices import resolve_device
from dmvae.errors import CheckpointError, ConfigError, TrainingDiverged
from dmvae.files import atomic_path
from dmvae.models.base import MultimodalVAE
from dmvae.objectives import kl_anneal_weight
from dmvae.training import state
from dmvae.training.log import RunLog
from dmvae.training.state import CHECKPOINT, EpochSampler
from dmvae.training.step import NonFiniteLoss, TrainStep


def train(config: RunConfig, resume: bool = False) -> MultimodalVAE:
    """Train the model `config` describes, writing config.json, logs and checkpoints to
    `config.train.out`; returns the model in eval mode."""
    return _train(config, resume, distributed.setup(config.train.device))


def _train(config: RunConfig, resume: bool, ctx: distributed.Context) -> MultimodalVAE:
    t = config.train
    out = Path(t.out)
    ckpt_path = out / CHECKPOINT
    _check_resume(out, config, resume)
    torch.manual_seed(t.seed)
    data = config.build_data("train", ctx.device)  # data and networks are checked before
    model = config.build_model().to(ctx.device)  # anything is written
    distributed.barrier(ctx)  # every rank has read the old config before rank 0 replaces it
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "config.json") as tmp:
            tmp.write_text(json.dumps(config.to_dict(), indent=2))
    model.train()
    step_fn = TrainStep(model, t.lr, t.amsgrad, t.amp, ctx)
    sampler = EpochSampler(data, t.batch_size, t.drop_last, t.seed, ctx)
    noise = torch.Generator(device=ctx.device).manual_seed(t.seed + 1)
    total = t.epochs * sampler.steps_per_epoch
    total = total if t.max_steps is None else min(total, t.max_steps)
    anneal_steps = round(t.anneal_epochs * sampler.steps_per_epoch)
    start = state.restore(ckpt_path, model, step_fn.optimizers, sampler, noise) if resume else 0
    if ctx.enabled:  # per-rank streams; a checkpoint holds rank 0's, so they restart from here
        noise.manual_seed(t.seed + 1 + 1000 * ctx.rank + start)
        torch.manual_seed(t.seed + 1000 * ctx.rank + start)
        distributed.broadcast_parameters(model, ctx)

    def save(step: int) -> None:
        if ctx.is_main:
            state.save(ckpt_path, model, step_fn.optimizers, sampler, noise, step, config.to_dict())

    log = RunLog(
        out,
        model,
        resume=resume,
        start=start,
        total=total,
        every=t.log_every,
        batch_size=t.batch_size,
        progress=t.progress,
        ctx=ctx,
    )
    try:
        for step, epoch, batch in sampler.batches(start, total, noise):
            kl_weight = kl_anneal_weight(step, anneal_steps)
            try:
                terms = step_fn(batch, kl_weight)
            except NonFiniteLoss as err:
                raise TrainingDiverged(
                    f"{err} at step {step}; the last good checkpoint is kept in {ckpt_path}; "
                    "lower the learning rate or check the data, then resume with --resume"
                ) from None
            log.step(step + 1, epoch, terms, kl_weight, batch)
            if (step + 1) % t.checkpoint_every == 0 and step + 1 < total:
                save(step + 1)
        save(total)
        distributed.barrier(ctx)  # no rank returns before the final checkpoint is on disk
    finally:
        log.close()
    model.eval()
    return model


def _check_resume(out: Path, config: RunConfig, resume: bool) -> None:
    if not resume:
        return
    if not (out / CHECKPOINT).exists():
        raise CheckpointError(f"--resume: no checkpoint in {out}; start the run without --resume")
    if not (out / "config.json").exists():
        raise CheckpointError(f"--resume: {out} has a checkpoint but no config.json")
    saved = RunConfig.from_dict(json.loads((out / "config.json").read_text()))
    if saved.unrecorded:
        raise ConfigError(
            f"{out}/config.json predates config versions and does not say which "
            f"{', '.join(saved.unrecorded)} the run was trained with, so it cannot be resumed "
            "safely; if you know them, add them to its model section (runs trained with the "
            'defaults since the release objective: "reconstruction": "release", "init": '
            '"release"; before it: "per_sample", "pytorch"), or start a new run'
        )
    if saved.identity() != config.identity():
        raise ConfigError(
            f"{out} was trained with another config; resume it with the same settings or "
            "choose a new --out"
        )


def same_run(out: str | Path, config: RunConfig) -> bool:
    """Whether OUT/config.json, if there is one, describes `config` (resumable settings aside)."""
    saved = Path(out) / "config.json"
    if not saved.exists():
        return True
    return RunConfig.from_dict(json.loads(saved.read_text())).identity() == config.identity()


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[MultimodalVAE, RunConfig]:
    """The trained model of a run directory (eval mode) and its config."""
    from dmvae import checkpoints as ckpt

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.json); train it first")
    config = RunConfig.from_dict(json.loads(cfg_path.read_text()))
    model = config.build_model()
    tensors, _ = ckpt.read_checkpoint(run_dir / CHECKPOINT)
    ckpt.load_model_weights(model, tensors, run_dir / CHECKPOINT)
    model.to(resolve_device(str(device)) if isinstance(device, str) else device)
    model.eval()
    return model, config
