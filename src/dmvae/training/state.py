"""What a checkpoint holds beyond the weights: the optimisers and the three RNG streams that
make a resumed run continue exactly where the checkpoint was.

`order` draws one permutation per epoch, `noise` the input noise of denoising data sets, and
torch's global generator the models' own sampling. `EpochSampler` keeps the order stream's
state at the start of the current epoch, so a run resumed at any step redraws that epoch's
permutation and skips the batches already done.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from dmvae import checkpoints as ckpt
from dmvae import distributed
from dmvae.data import signature
from dmvae.data.batch import Batch, MultimodalData
from dmvae.errors import ConfigError
from dmvae.models.base import MultimodalVAE

CHECKPOINT = "checkpoint.safetensors"


class EpochSampler:
    """Batches by index from a seeded permutation per epoch; each rank takes its shard of every
    global batch (`distributed.shard`)."""

    def __init__(
        self,
        data: MultimodalData,
        batch_size: int,
        drop_last: bool,
        seed: int,
        ctx: distributed.Context,
    ) -> None:
        self.data, self.batch_size, self.ctx = data, batch_size, ctx
        self.steps_per_epoch = data.num_batches(batch_size, drop_last)
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"batch size {batch_size} exceeds the {len(data)} training samples with "
                "drop_last; lower --batch-size"
            )
        self.order = torch.Generator(device=data.device).manual_seed(seed)
        self.epoch_start = self.order.get_state()

    def batches(
        self, step: int, total: int, noise: torch.Generator
    ) -> Iterator[tuple[int, int, Batch]]:
        """(step, epoch, batch) from `step` up to `total`."""
        while step < total:
            epoch, offset = divmod(step, self.steps_per_epoch)
            self.order.set_state(self.epoch_start)
            perm = torch.randperm(len(self.data), generator=self.order, device=self.data.device)
            for k in range(offset, min(self.steps_per_epoch, offset + total - step)):
                if k == self.steps_per_epoch - 1:  # a checkpoint after it starts the next epoch
                    self.epoch_start = self.order.get_state()
                rows = perm[k * self.batch_size : (k + 1) * self.batch_size]
                yield step, epoch, self.data.batch(distributed.shard(rows, self.ctx), noise)
                step += 1


def save(
    path: Path,
    model: MultimodalVAE,
    optimizers: dict[str, torch.optim.Optimizer],
    sampler: EpochSampler,
    noise: torch.Generator,
    step: int,
    run: dict[str, Any],
) -> None:
    """Weights, optimisers, RNG states, the step and the data signature (what inference checks
    inputs against), written atomically."""
    rng = {
        "order": sampler.order.get_state(),
        "epoch_order": sampler.epoch_start,
        "noise": noise.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    info = {"step": step, "epoch": step / sampler.steps_per_epoch, "config": run}
    info["data_signature"] = signature.to_json(signature.signature_of(sampler.data))
    ckpt.save_checkpoint(path, model, optimizers, rng, info)


def restore(
    path: Path,
    model: MultimodalVAE,
    optimizers: dict[str, torch.optim.Optimizer],
    sampler: EpochSampler,
    noise: torch.Generator,
) -> int:
    """Load what `save` wrote into the live objects; returns the step to continue from."""
    tensors, meta = ckpt.read_checkpoint(path)
    ckpt.load_model_weights(model, tensors, path)
    for name, opt in optimizers.items():
        ckpt.load_optimizer(opt, name, tensors, meta)
    rng = ckpt.rng_states(tensors)
    sampler.epoch_start = rng["epoch_order"]
    noise.set_state(rng["noise"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and sampler.data.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"])
    return int(meta["info"]["step"])
