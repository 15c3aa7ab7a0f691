"""Per-modality likelihoods p(x_m | z) with a fixed scale and a weight on the log-likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from dmvae import objectives

LOG_2PI = math.log(2 * math.pi)

KINDS = ("laplace", "normal", "bernoulli")


@dataclass(frozen=True)
class Likelihood:
    """`kind` "laplace" or "normal" (location = decoder output, fixed `scale`: the Laplace's
    scale, the normal's standard deviation) or "bernoulli" (probabilities).

    `weight` multiplies the log-likelihood in training objectives: the paper balances MNIST
    against SVHN by 3072/784. `log_density` is the unweighted one, of the model as a density.
    """

    kind: Literal["laplace", "normal", "bernoulli"] = "laplace"
    scale: float = 0.75
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown likelihood {self.kind!r}: use one of {list(KINDS)}")
        if self.kind != "bernoulli" and self.scale <= 0:
            raise ValueError(
                f"the {self.kind} likelihood's scale must be positive, got {self.scale}"
            )

    def log_prob(self, x: Tensor, loc: Tensor) -> Tensor:
        """Weighted log-likelihood (`weight` * `log_density`), what training objectives use."""
        return self.weight * self.log_density(x, loc)

    def log_density(self, x: Tensor, loc: Tensor) -> Tensor:
        """log p(x | loc) summed over all but the leading batch dimensions of `x`.

        `loc` may carry extra leading sample dimensions ([..., *x.shape]). The Laplace case is
        written as one reduction of |x - loc| plus a constant: it runs on every decoded sample
        (M x M x K of them for MMVAE), so fewer passes over the data matter.
        """
        event_dims = x.dim() - 1
        events = x[0].numel()
        if self.kind == "laplace":
            dist = objectives.l1_distance(loc, x, event_dims)
            return -dist / self.scale - events * math.log(2 * self.scale)
        if self.kind == "normal":
            sq = (loc - x).pow(2).flatten(start_dim=loc.dim() - event_dims).sum(-1)
            return -0.5 * sq / self.scale**2 - events * (math.log(self.scale) + 0.5 * LOG_2PI)
        lp = objectives.bernoulli_log_prob(x, loc)
        return lp.flatten(start_dim=lp.dim() - event_dims).sum(-1)
