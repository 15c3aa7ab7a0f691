"""Data-parallel training on torch.distributed: `torchrun --nproc_per_node N -m dmvae train ...`.

Every rank holds the whole data set in memory and draws the same global permutation; each rank
takes its shard (every N-th row) of each global batch, so `--batch-size` stays the global batch.
`TrainStep` averages the gradients of every optimiser across ranks before it steps
(`average_gradients`: one all-reduce per optimiser step), the main one and the auxiliary ones
(DMVAE's discriminators) alike, so every rank keeps the same weights. DMVAE's contrastive term
gathers the content samples of all ranks (`gather_batch`), so its negatives are the whole
global batch as on one process. Rank 0 alone logs and checkpoints.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dmvae.devices import resolve_device


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Context:
    """Join the process group torchrun describes (env WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=resolve_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
        # Kept until the process exits: a second `train` in the same process then reuses it.
        # Destroying and re-joining the same rendezvous port can deadlock when one rank re-joins
        # before another has left.
        atexit.register(_destroy_group)
    return Context(rank, world, resolved)


def _destroy_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(rows: Tensor, ctx: Context) -> Tensor:
    """This rank's rows of a global batch."""
    return rows[ctx.rank :: ctx.world_size] if ctx.enabled else rows


def average_gradients(params: list[nn.Parameter], ctx: Context) -> None:
    """Replace each gradient by its mean over ranks, in one all-reduce."""
    if not ctx.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(part.view_as(g))


def broadcast_parameters(model: nn.Module, ctx: Context) -> None:
    """Give every rank rank 0's weights and buffers."""
    if ctx.enabled:
        for t in model.state_dict().values():
            dist.broadcast(t, src=0)


def gather_batch(x: Tensor) -> Tensor:
    """Concatenate every rank's rows of `x` (rank order), with gradients flowing back to each
    rank's own rows; `x` itself outside a process group.

    For batch-level objectives (InfoNCE negatives): if every rank evaluates the loss on the
    gathered batch, DDP's gradient averaging yields exactly the gradient of that loss.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    # the default `group` argument is bound when torch imports it: name the current one
    return torch.cat(all_gather(x, group=dist.group.WORLD))


def mean_across(values: Tensor, ctx: Context) -> Tensor:
    """Average a tensor over ranks (for logging the global loss)."""
    if ctx.enabled:
        values = values.clone()
        dist.all_reduce(values)
        values /= ctx.world_size
    return values


def any_across(flag: bool, ctx: Context) -> bool:
    """True on every rank if it is true on any (stops all ranks together on a NaN)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([float(flag)], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()
