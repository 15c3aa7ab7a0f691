"""Per-modality likelihoods p(x_m | z) with a fixed scale and a weight on the log-likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from dmvae import objectives

KINDS = ("laplace", "bernoulli")


@dataclass(frozen=True)
class Likelihood:
    """`kind` "laplace" (location = decoder output, fixed `scale`) or "bernoulli" (probabilities).

    `weight` multiplies the log-likelihood: the paper balances MNIST against SVHN by 3072/784.
    """

    kind: Literal["laplace", "bernoulli"] = "laplace"
    scale: float = 0.75
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown likelihood {self.kind!r}: use 'laplace' or 'bernoulli'")
        if self.kind == "laplace" and self.scale <= 0:
            raise ValueError(f"the Laplace scale must be positive, got {self.scale}")

    def log_prob(self, x: Tensor, loc: Tensor) -> Tensor:
        """Weighted log-likelihood summed over all but the leading batch dimensions of `x`.

        `loc` may carry extra leading sample dimensions ([..., *x.shape]). The Laplace case is
        written as one reduction of |x - loc| plus a constant: it runs on every decoded sample
        (M x M x K of them for MMVAE), so fewer passes over the data matter.
        """
        event_dims = x.dim() - 1
        if self.kind == "laplace":
            dist = objectives.l1_distance(loc, x, event_dims)
            events = x[0].numel()
            lp = -dist / self.scale - events * math.log(2 * self.scale)
        else:
            lp = objectives.bernoulli_log_prob(x, loc)
            lp = lp.flatten(start_dim=lp.dim() - event_dims).sum(-1)
        return self.weight * lp
