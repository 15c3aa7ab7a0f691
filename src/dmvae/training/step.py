"""The training step: the trainer, the benchmarks and the profilers all call this one.

Main objective and auxiliary networks (DMVAE's discriminators) each have an optimiser owned
here. The model's `loss` hands the auxiliary losses back through `update_auxiliary` at the point
of the pass where their step belongs (for DMVAE: each D_m just before its TC estimate, as in the
authors' release), so `loss` itself never changes a weight. Under torchrun the gradients of
both are averaged across ranks before each optimiser step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dmvae import distributed
from dmvae.data.batch import Batch
from dmvae.errors import TrainingDiverged
from dmvae.models.base import MultimodalVAE


class NonFiniteLoss(TrainingDiverged):
    """The loss of a step is NaN or infinite; `terms` are the step's loss terms."""

    def __init__(self, terms: dict[str, float]) -> None:
        super().__init__(f"the loss became {terms['loss']} (terms {terms})")
        self.terms = terms


class TrainStep:
    """`step(batch, kl_weight)` runs the loss, the auxiliary updates and one Adam step of the
    main parameters; it returns the loss terms (tensors, not synchronised to the host)."""

    def __init__(
        self,
        model: MultimodalVAE,
        lr: float,
        amsgrad: bool = False,
        amp: bool = False,
        ctx: distributed.Context | None = None,
    ) -> None:
        self.model, self.amp = model, amp
        self.device_type = next(model.parameters()).device.type
        self.ctx = ctx or distributed.Context()
        self.optimizers = {
            "main": torch.optim.Adam(model.main_parameters(), lr=lr, amsgrad=amsgrad),
            **model.auxiliary_optimizers(),
        }
        self.params = {
            name: [p for group in opt.param_groups for p in group["params"]]
            for name, opt in self.optimizers.items()
        }

    def __call__(self, batch: Batch, kl_weight: float) -> dict[str, Tensor]:
        with torch.autocast(self.device_type, torch.bfloat16, enabled=self.amp):
            terms = self.model.loss(batch, kl_weight, self.update_auxiliary)
        if distributed.any_across(not torch.isfinite(terms["loss"]), self.ctx):
            raise NonFiniteLoss({k: float(v.detach()) for k, v in terms.items()})
        main = self.optimizers["main"]
        main.zero_grad(set_to_none=True)
        terms["loss"].backward()
        distributed.average_gradients(self.params["main"], self.ctx)
        main.step()
        return terms

    def update_auxiliary(self, name: str, loss: Tensor) -> None:
        """One step of the optimiser `name` on `loss` (the models' `update_auxiliary`)."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(self.params[name], self.ctx)
        opt.step()
        opt.zero_grad(set_to_none=True)
