"""Factorised densities over latents and uniform mixtures of them: the posteriors and priors of
the models, drawn from and scored in one place (MMVAE+'s objective, and the importance-sampled
log-likelihoods of evaluation). A family (Laplace, normal) knows its log-density, its samples
and how a network's raw output becomes its scale; `Factorised` and `Mixture` are densities
over [B, D] rows built from a family's parameters."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from dmvae import objectives as obj


class Family(abc.ABC):
    """Log-density, reparameterised samples and scale parameterisation of one distribution
    family; one instance serves every density of that family."""

    @abc.abstractmethod
    def scale(self, raw: Tensor, floor: float = 0.0) -> Tensor:
        """Positive scales from unconstrained `raw` (normalised over its last dimension or not)."""

    @abc.abstractmethod
    def log_prob(self, x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """Elementwise log-density of `x`."""

    @abc.abstractmethod
    def variance(self, scale: Tensor) -> Tensor:
        """Elementwise variance (for a mixture's moments)."""

    @abc.abstractmethod
    def rsample(
        self, loc: Tensor, scale: Tensor, k: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """`k` samples [k, *loc.shape] that keep gradients to loc and scale."""


class LaplaceFamily(Family):
    """MMVAE's and MMVAE+'s family: scales softmax(raw) * D, which keeps their mean at 1."""

    def scale(self, raw: Tensor, floor: float = 0.0) -> Tensor:
        return F.softmax(raw, dim=-1) * raw.shape[-1] + floor

    def log_prob(self, x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        return obj.laplace_log_prob(x, loc, scale)

    def variance(self, scale: Tensor) -> Tensor:
        return 2 * scale.pow(2)

    def rsample(
        self, loc: Tensor, scale: Tensor, k: int, generator: torch.Generator | None = None
    ) -> Tensor:
        return obj.laplace_rsample(loc, scale, k, generator)


class NormalFamily(Family):
    """Gaussians; raw scales through softplus (the MMVAE+ release's commented-out choice)."""

    def scale(self, raw: Tensor, floor: float = 0.0) -> Tensor:
        return F.softplus(raw) + floor

    def log_prob(self, x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        return obj.gaussian_log_prob(x, loc, 2 * torch.log(scale))

    def variance(self, scale: Tensor) -> Tensor:
        return scale.pow(2)

    def rsample(
        self, loc: Tensor, scale: Tensor, k: int, generator: torch.Generator | None = None
    ) -> Tensor:
        eps = torch.randn((k, *loc.shape), generator=generator, device=loc.device, dtype=loc.dtype)
        return loc + scale * eps


FAMILIES: dict[str, type[Family]] = {"laplace": LaplaceFamily, "normal": NormalFamily}
"""The families by name (MMVAE+'s `distribution` choices)."""

LAPLACE, NORMAL = LaplaceFamily(), NormalFamily()


class Density(Protocol):
    """A density over rows [B, D]: `sample(k)` gives [k, B, D], `log_prob` of [..., B, D]
    gives [..., B] (summed over D)."""

    def sample(self, k: int, generator: torch.Generator | None = None) -> Tensor: ...

    def log_prob(self, z: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Factorised:
    """Independent dimensions of one family: loc and scale [B, D] (or [D], the same for all
    rows, as a prior)."""

    family: Family
    loc: Tensor
    scale: Tensor

    @classmethod
    def normal(cls, mu: Tensor, logvar: Tensor) -> Factorised:
        """A diagonal Gaussian from an encoder's mean and log-variance."""
        return cls(NORMAL, mu, torch.exp(0.5 * logvar))

    @classmethod
    def standard_normal(cls, dim: int, like: Tensor) -> Factorised:
        """N(0, I) over `dim` dimensions, on the device and dtype of `like`."""
        zeros = like.new_zeros(dim)
        return cls(NORMAL, zeros, torch.ones_like(zeros))

    def sample(self, k: int, generator: torch.Generator | None = None) -> Tensor:
        return self.family.rsample(self.loc, self.scale, k, generator)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.family.log_prob(z, self.loc, self.scale).sum(-1)


@dataclass(frozen=True)
class Mixture:
    """The uniform mixture of C factorised components, loc and scale [C, B, D]: MMVAE's and
    MMVAE+'s joint posterior (the unimodal experts), MoPoE's (the subsets' products)."""

    family: Family
    loc: Tensor
    scale: Tensor

    def sample(self, k: int, generator: torch.Generator | None = None) -> Tensor:
        """Each of the k x B draws from a component picked uniformly at random."""
        c, b = self.loc.shape[:2]
        pick = torch.randint(c, (k, b), generator=generator, device=self.loc.device)
        rows = torch.arange(b, device=self.loc.device).expand(k, b)
        return self.family.rsample(self.loc[pick, rows], self.scale[pick, rows], 1, generator)[0]

    def moments(self) -> tuple[Tensor, Tensor]:
        """The mixture's mean and log-variance per dimension, [B, D] each (the embeddings of a
        mixture posterior)."""
        mean = self.loc.mean(0)
        second = (self.family.variance(self.scale) + self.loc.pow(2)).mean(0)
        return mean, torch.log((second - mean.pow(2)).clamp_min(1e-12))

    def log_prob(self, z: Tensor) -> Tensor:
        """log (1/C) sum_c q_c(z), z [..., B, D] -> [..., B]."""
        per_component = self.family.log_prob(z.unsqueeze(-3), self.loc, self.scale).sum(-1)
        return torch.logsumexp(per_component, dim=-2) - math.log(self.loc.shape[0])
