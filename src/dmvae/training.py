"""Training: one config dataclass, one loop, checkpoints that resume to the same result.

The loop is deliberately short. Data live on the device; each epoch draws one permutation from
a seeded generator and gathers batches by index. Three RNG streams make runs reproducible and
resumable: `order` (the epoch permutations), `noise` (input noise of denoising data sets) and
torch's global generator (the models' own sampling). A checkpoint stores all three, the
optimisers and the weights, so `resume=True` continues exactly where the last checkpoint was.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dmvae import checkpoints as ckpt
from dmvae import distributed, experiments
from dmvae.devices import resolve_device
from dmvae.errors import CheckpointError, ConfigError, TrainingDiverged
from dmvae.models.base import MultimodalVAE
from dmvae.objectives import kl_anneal_weight

CHECKPOINT = "checkpoint.safetensors"
# Collapse is judged from this step on: content needs about 100-200 steps to form even in
# healthy runs (docs/protocol.md), and a very short run (the quickstart's 58 steps) is
# untrained, not collapsed.
COLLAPSE_CHECK_FROM = 300


@dataclass
class DataConfig:
    root: str | None = None
    download: bool = False
    modalities: int = 2
    noise_std: float = 1.0
    pairing_seed: int = 42
    dm: int = 20
    max_per_class: int = 10000
    verify: bool = True


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as RUN_DIR/config.json."""

    out: str = "runs/default"
    experiment: str = "paired-mnist"
    model: str = "dmvae"
    model_config: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 1
    batch_size: int = 1024
    lr: float = 1e-3
    amsgrad: bool = False
    anneal_epochs: float = 0.0
    likelihood_scale: float = 0.75
    drop_last: bool = True
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    checkpoint_every: int = 500
    log_every: int = 10
    progress: bool = True

    @classmethod
    def from_preset(cls, experiment: str, model: str, **overrides: Any) -> TrainConfig:
        """The paper's settings for (experiment, model), then `overrides` (dotted keys allowed)."""
        settings = experiments.preset(experiment, model)
        config = cls(experiment=experiment, model=model, **settings)
        for key, value in overrides.items():
            config.set(key, value)
        return config

    def set(self, key: str, value: Any) -> None:
        """Set `key` ("lr", "data.noise_std", "model_config.gamma") to `value`."""
        head, _, rest = key.partition(".")
        if head == "model_config" and rest:
            self.model_config[rest] = value
            return
        target = self.data if head == "data" and rest else self
        name = rest if target is self.data else key
        if name not in {f.name for f in dataclasses.fields(target)}:
            valid = [f.name for f in dataclasses.fields(self)] + [
                f"data.{f.name}" for f in dataclasses.fields(self.data)
            ]
            raise ConfigError(f"unknown setting {key!r}; valid: {valid} and model_config.<name>")
        setattr(target, name, value)

    def to_run_config(self) -> dict[str, Any]:
        """The layout of config.json: experiment, model (name + settings), data, train."""
        train = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("experiment", "model", "model_config", "data")
        }
        return {
            "experiment": self.experiment,
            "model": {"name": self.model, **self.model_config},
            "data": dataclasses.asdict(self.data),
            "train": train,
        }

    @classmethod
    def from_run_config(cls, run: dict[str, Any]) -> TrainConfig:
        model = dict(run["model"])
        name = model.pop("name")
        return cls(
            experiment=run["experiment"],
            model=name,
            model_config=model,
            data=DataConfig(**run["data"]),
            **run["train"],
        )


# Settings a resumed run may change: how long it runs, where, and how it reports.
RESUMABLE = ("epochs", "max_steps", "device", "progress", "log_every", "checkpoint_every", "amp")


def _identity(run: dict[str, Any]) -> dict[str, Any]:
    """The part of a run config that must match for a checkpoint to be resumed."""
    train = {k: v for k, v in run["train"].items() if k not in RESUMABLE}
    data = {k: v for k, v in run["data"].items() if k not in ("root", "download")}
    return {**run, "train": train, "data": data}


def same_run(out: str | Path, run: dict[str, Any]) -> bool:
    """Whether OUT/config.json, if there is one, describes `run` (resumable settings aside)."""
    saved = Path(out) / "config.json"
    return not saved.exists() or _identity(json.loads(saved.read_text())) == _identity(run)


def _rng_state(order: torch.Generator, noise: torch.Generator) -> dict[str, torch.Tensor]:
    state = {"order": order.get_state(), "noise": noise.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


class _Logger:
    """JSONL + TensorBoard logs of running means of every loss term."""

    def __init__(self, out: Path, resume: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.jsonl = open(out / "log.jsonl", "a" if resume else "w")  # noqa: SIM115
        self.tb = SummaryWriter(str(out / "tb"))

    def log(
        self, step: int, epoch: int, means: dict[str, float], warnings: list[str] | None = None
    ) -> None:
        record = {"step": step, "epoch": epoch, **means}
        if warnings:
            record["warnings"] = warnings
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        for k, v in means.items():
            self.tb.add_scalar(k, v, step)
        for text in warnings or ():
            self.tb.add_text("warnings", text, step)

    def close(self) -> None:
        self.jsonl.close()
        self.tb.close()


def train(config: TrainConfig, resume: bool = False) -> MultimodalVAE:
    """Train the model `config` describes, writing config, logs and checkpoints to `config.out`.

    Under torchrun (WORLD_SIZE > 1) it trains data-parallel: see `dmvae.distributed`.
    """
    return _train(config, resume, distributed.setup(config.device))


def _train(config: TrainConfig, resume: bool, ctx: distributed.Context) -> MultimodalVAE:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = ctx.device
    run = config.to_run_config()
    ckpt_path = out / CHECKPOINT
    if resume and ckpt_path.exists() and not same_run(out, run):
        raise ConfigError(
            f"{out} was trained with another config; resume it with the same settings or "
            "choose a new --out"
        )
    distributed.barrier(ctx)  # every rank has read the old config before rank 0 replaces it
    if ctx.is_main:
        (out / "config.json").write_text(json.dumps(run, indent=2))

    torch.manual_seed(config.seed)
    data = experiments.build_data(run, "train", device)
    model = experiments.build_model(run).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.main_parameters(), lr=config.lr, amsgrad=config.amsgrad)
    optimizers = {"main": optimizer, **model.auxiliary_optimizers()}
    # The order stream is shared by all ranks (one global permutation); noise and the models'
    # own sampling differ per rank.
    order_gen = torch.Generator(device=device).manual_seed(config.seed)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)

    steps_per_epoch = data.num_batches(config.batch_size, config.drop_last)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch size {config.batch_size} exceeds the {len(data)} training samples with "
            "drop_last; lower --batch-size"
        )
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    anneal_steps = round(config.anneal_epochs * steps_per_epoch)

    step, epoch_start_order = 0, order_gen.get_state()
    if resume and ckpt_path.exists():
        tensors, meta = ckpt.read_checkpoint(ckpt_path)
        ckpt.load_model_weights(model, tensors, ckpt_path)
        for name, opt in optimizers.items():
            ckpt.load_optimizer(opt, name, tensors, meta)
        rng = ckpt.rng_states(tensors)
        step = meta["info"]["step"]
        epoch_start_order = rng["epoch_order"]
        noise_gen.set_state(rng["noise"])
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"])
    elif resume:
        raise CheckpointError(f"--resume: no checkpoint in {out}; start the run without --resume")

    if ctx.enabled:  # per-rank streams; a checkpoint holds rank 0's, so they restart from here
        noise_gen.manual_seed(config.seed + 1 + 1000 * ctx.rank + step)
        torch.manual_seed(config.seed + 1000 * ctx.rank + step)
    net = distributed.wrap(model, ctx)

    def save(step: int) -> None:
        if not ctx.is_main:
            return
        rng = _rng_state(order_gen, noise_gen)
        rng["epoch_order"] = epoch_start_order
        info = {"step": step, "epoch": step / steps_per_epoch, "config": run}
        ckpt.save_checkpoint(ckpt_path, model, optimizers, rng, info)

    logger = _Logger(out, resume) if ctx.is_main else None
    sums: dict[str, torch.Tensor] = {}
    count = 0
    bar = tqdm(
        total=total,
        initial=step,
        disable=not (config.progress and ctx.is_main),
        desc="train",
        unit="step",
    )
    start_time, start_step = time.perf_counter(), step
    warned: dict[str, str] = {}
    try:
        while step < total:
            epoch, offset = divmod(step, steps_per_epoch)
            order_gen.set_state(epoch_start_order)
            order = torch.randperm(len(data), generator=order_gen, device=device)
            for k in range(offset, steps_per_epoch):
                if step >= total:
                    break
                rows = order[k * config.batch_size : (k + 1) * config.batch_size]
                batch = data.batch(distributed.shard(rows, ctx), noise_gen)
                kl_weight = kl_anneal_weight(step, anneal_steps)
                with torch.autocast(device.type, torch.bfloat16, enabled=config.amp):
                    terms = net(batch, kl_weight)
                loss = terms["loss"]
                if distributed.any_across(not torch.isfinite(loss), ctx):
                    bad = {k: float(v.detach()) for k, v in terms.items()}
                    raise TrainingDiverged(
                        f"the loss became {bad['loss']} at step {step} (terms {bad}); the last "
                        f"good checkpoint is kept in {ckpt_path}; lower the learning rate or "
                        "check the data, then resume with --resume"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                for name, v in terms.items():
                    sums[name] = sums.get(name, 0.0) + v.detach().float()
                count += 1
                if step % config.log_every == 0 or step == total:
                    stacked = distributed.mean_across(torch.stack(list(sums.values())), ctx)
                    means = {k: float(v) / count for k, v in zip(sums, stacked, strict=True)}
                    means["kl_weight"] = kl_weight
                    elapsed = time.perf_counter() - start_time
                    means["samples_per_s"] = (step - start_step) * config.batch_size / elapsed
                    new_warnings = []
                    if ctx.is_main:
                        means.update(_diagnostics(model, batch))
                        if step >= COLLAPSE_CHECK_FROM:
                            new_warnings = _collapse_check(model, means, step, warned)
                    if logger:
                        logger.log(step, epoch, means, new_warnings)
                    postfix = {k: f"{v:.3g}" for k, v in means.items() if "/" not in k}
                    if warned:
                        postfix["collapse"] = "+".join(warned)
                    bar.set_postfix(postfix)
                    sums, count = {}, 0
                bar.update(1)
                if step % config.checkpoint_every == 0 and step < total:
                    save(step)
            else:
                epoch_start_order = order_gen.get_state()
        save(step)
        distributed.barrier(ctx)  # no rank returns before the final checkpoint is on disk
    finally:
        bar.close()
        if logger:
            logger.close()
    model.eval()
    return model


def _diagnostics(model: MultimodalVAE, batch: Any) -> dict[str, float]:
    with torch.no_grad():
        figures = model.diagnostics(batch)
    if not figures:
        return {}
    return dict(zip(figures, torch.stack(list(figures.values())).tolist(), strict=True))


def _collapse_check(
    model: MultimodalVAE, means: dict[str, float], step: int, warned: dict[str, str]
) -> list[str]:
    """Warn (above the progress bar) the first time each kind of collapse shows."""
    new = []
    for kind, reason in model.collapse_warnings(means).items():
        if kind not in warned:
            warned[kind] = reason
            text = f"warning: the model may have collapsed at step {step}: {reason}"
            tqdm.write(text, file=sys.stderr)
            new.append(text)
    return new


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[MultimodalVAE, dict]:
    """The trained model of a run directory (eval mode) and its config dict."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.json); train it first")
    config = json.loads(cfg_path.read_text())
    model = experiments.build_model(config)
    tensors, _ = ckpt.read_checkpoint(run_dir / CHECKPOINT)
    ckpt.load_model_weights(model, tensors, run_dir / CHECKPOINT)
    model.to(resolve_device(str(device)) if isinstance(device, str) else device)
    model.eval()
    return model, config
