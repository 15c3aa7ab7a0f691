"""The training step: the trainer, the benchmarks and the profilers all call this one.

Main objective and auxiliary networks (DMVAE's discriminators) each have an optimiser owned
here. The model's `loss` hands the auxiliary losses back through `update_auxiliary` at the point
of the pass where their step belongs (for DMVAE: each D_m just before its TC estimate, as in the
authors' release), so `loss` itself never changes a weight. Under torchrun the gradients of
both are averaged across ranks before each optimiser step.

A step never waits for the GPU: a non-finite loss is recorded on the device and `check` reads
that record back, which the trainer does at every log record and before every checkpoint, so a
checkpoint is only ever written from finite steps (docs/performance.md, "GPU steps").
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.distributed as dist
from torch import Tensor

from dmvae import distributed
from dmvae.data.batch import Batch
from dmvae.devices import adam
from dmvae.errors import TrainingDiverged
from dmvae.models.base import MultimodalVAE

# `first_bad` holds this while every loss since the last check was finite.
_NONE = 2**62


class NonFiniteLoss(TrainingDiverged):
    """A loss since the last check was NaN or infinite; `call` counts the steps of this
    `TrainStep` up to the first such loss (1 for its first step)."""

    def __init__(self, call: int) -> None:
        super().__init__(f"the loss became NaN or infinite in step {call} of this run")
        self.call = call


class TrainStep:
    """`step(batch, kl_weight)` runs the loss, the auxiliary updates and one Adam step of the
    main parameters; it returns the loss terms (tensors, not synchronised to the host).
    `check()` raises `NonFiniteLoss` if any loss since the previous check was not finite."""

    def __init__(
        self,
        model: MultimodalVAE,
        lr: float,
        amsgrad: bool = False,
        amp: bool = False,
        ctx: distributed.Context | None = None,
    ) -> None:
        self.model, self.amp = model, amp
        device = next(model.parameters()).device
        self.device_type = device.type
        self.ctx = ctx or distributed.Context()
        self.optimizers = {
            "main": adam(model.main_parameters(), lr=lr, amsgrad=amsgrad),
            **model.auxiliary_optimizers(),
        }
        self.params = {
            name: [p for group in opt.param_groups for p in group["params"]]
            for name, opt in self.optimizers.items()
        }
        self.calls = 0
        self.first_bad = torch.full((), _NONE, dtype=torch.int64, device=device)

    def __call__(self, batch: Batch, kl_weight: float) -> dict[str, Tensor]:
        autocast = torch.autocast(self.device_type, torch.bfloat16) if self.amp else nullcontext()
        with autocast:
            terms = self.model.loss(batch, kl_weight, self.update_auxiliary)
        self._record_finite(terms["loss"].detach())
        main = self.optimizers["main"]
        main.zero_grad(set_to_none=True)
        terms["loss"].backward()
        distributed.average_gradients(self.params["main"], self.ctx)
        main.step()
        return terms

    def _record_finite(self, loss: Tensor) -> None:
        """Keep the first call whose loss is not finite, on the device (every rank's, under
        torchrun: the minimum is reduced without waiting for it)."""
        self.calls += 1
        call = torch.where(torch.isfinite(loss), _NONE, self.calls)
        self.first_bad = torch.minimum(self.first_bad, call)
        if self.ctx.enabled:
            dist.all_reduce(self.first_bad, op=dist.ReduceOp.MIN)

    def check(self) -> None:
        """Raise `NonFiniteLoss` if a loss since the last check was not finite (this waits for
        the device; every rank holds the same record, so all ranks raise together)."""
        first = int(self.first_bad)
        if first != _NONE:
            raise NonFiniteLoss(first)

    def update_auxiliary(self, name: str, loss: Tensor) -> None:
        """One step of the optimiser `name` on `loss` (the models' `update_auxiliary`)."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.params[name], self.ctx)
        opt.step()
        opt.zero_grad(set_to_none=True)
