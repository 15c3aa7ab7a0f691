"""Per-modality likelihoods p(x_m | z) with a fixed scale and a weight on the log-likelihood."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from dmvae import objectives


@dataclass(frozen=True)
class Likelihood:
    """`kind` "laplace" (location = decoder output, fixed `scale`) or "bernoulli" (probabilities).

    `weight` multiplies the log-likelihood: the paper balances MNIST against SVHN by 3072/784.
    """

    kind: Literal["laplace", "bernoulli"] = "laplace"
    scale: float = 0.75
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("laplace", "bernoulli"):
            raise ValueError(f"unknown likelihood {self.kind!r}: use 'laplace' or 'bernoulli'")
        if self.kind == "laplace" and self.scale <= 0:
            raise ValueError(f"the Laplace scale must be positive, got {self.scale}")

    def log_prob(self, x: Tensor, loc: Tensor) -> Tensor:
        """Weighted log-likelihood summed over all but the leading batch dimensions of `x`."""
        if self.kind == "laplace":
            lp = objectives.laplace_log_prob(x, loc, self.scale)
        else:
            lp = objectives.bernoulli_log_prob(x, loc)
        return self.weight * lp.flatten(start_dim=lp.dim() - x.dim() + 1).sum(-1)
