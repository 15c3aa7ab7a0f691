"""What a run reports while it trains: running means of every loss term to the run's loggers
(`train.loggers`: log.jsonl and TensorBoard by default, `dmvae.tracking`), the progress bar,
the model's diagnostics and, once per kind, a collapse warning (logged as a warning of the
"dmvae" logger and recorded by every logger).

Loss terms are summed on the device and read back every `log_every` steps only, so logging
costs no host synchronisation on the other steps.
"""

from __future__ import annotations

import logging
import time

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dmvae import distributed
from dmvae.data.batch import Batch
from dmvae.models.base import MultimodalVAE
from dmvae.tracking import Logger

log = logging.getLogger(__name__)

# Collapse is judged from this step on: content needs about 100-200 steps to form even in
# healthy runs (docs/protocol.md), and a very short run (the quickstart's 58 steps) is
# untrained, not collapsed.
COLLAPSE_CHECK_FROM = 300


class RunLog:
    def __init__(
        self,
        model: MultimodalVAE,
        loggers: Logger,
        *,
        start: int,
        total: int,
        every: int,
        batch_size: int,
        progress: bool,
        ctx: distributed.Context,
    ) -> None:
        self.model, self.every, self.batch_size, self.ctx = model, every, batch_size, ctx
        self.total, self.start, self.start_time = total, start, time.perf_counter()
        self.sums: dict[str, Tensor] = {}
        self.count = 0
        self.warned: dict[str, str] = {}
        self.loggers = loggers
        self.bar = tqdm(
            total=total,
            initial=start,
            disable=not (progress and ctx.is_main),
            desc="train",
            unit="step",
        )

    def step(
        self, step: int, epoch: int, terms: dict[str, Tensor], kl_weight: float, batch: Batch
    ) -> None:
        """Account for one finished step (`step` counts it); write a record every `every`."""
        for name, v in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + v.detach().float()
        self.count += 1
        if self.due(step):
            means = self._means(step, kl_weight, batch)
            new = self._collapse_check(means, step) if step >= COLLAPSE_CHECK_FROM else []
            self._write(step, epoch, means, new)
            postfix = {k: f"{v:.3g}" for k, v in means.items() if "/" not in k}
            if self.warned:
                postfix["collapse"] = "+".join(self.warned)
            self.bar.set_postfix(postfix)
            self.sums, self.count = {}, 0
        self.bar.update(1)

    def due(self, step: int) -> bool:
        """Whether finishing step `step` writes a record."""
        return step % self.every == 0 or step == self.total

    def _means(self, step: int, kl_weight: float, batch: Batch) -> dict[str, float]:
        stacked = distributed.mean_across(torch.stack(list(self.sums.values())), self.ctx)
        means = {k: float(v) / self.count for k, v in zip(self.sums, stacked, strict=True)}
        means["kl_weight"] = kl_weight
        elapsed = time.perf_counter() - self.start_time
        means["samples_per_s"] = (step - self.start) * self.batch_size / elapsed
        if self.ctx.is_main:
            with torch.no_grad():
                figures = self.model.diagnostics(batch)
            if figures:
                values = torch.stack(list(figures.values())).tolist()
                means.update(zip(figures, values, strict=True))
        return means

    def _collapse_check(self, means: dict[str, float], step: int) -> list[str]:
        """Warn (above the progress bar) the first time each kind of collapse shows."""
        new = []
        if not self.ctx.is_main:
            return new
        for kind, reason in self.model.collapse_warnings(means).items():
            if kind not in self.warned:
                self.warned[kind] = reason
                text = f"the model may have collapsed at step {step}: {reason}"
                log.warning(text)
                new.append(f"warning: {text}")
        return new

    def _write(self, step: int, epoch: int, means: dict[str, float], warnings: list[str]) -> None:
        for text in warnings:
            self.loggers.log_text(step, "warnings", text)
        self.loggers.log_metrics(step, {"epoch": epoch, **means})

    def close(self) -> None:
        self.bar.close()
