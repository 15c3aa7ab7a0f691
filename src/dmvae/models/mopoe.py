"""MoPoE (Sutter, Daunhawer & Vogt, ICLR 2021): the joint posterior is a uniform mixture over
the products of experts of every non-empty subset of modalities, trained by one ELBO whose KL
to the N(0, I) prior is the mixture weights' sum of the subsets' KLs (the official upper bound).

As in the official code, each sample of a batch is assigned one mixture component (the batch is
split into equal, stratified parts, one per subset, the full set's part also taking the rows
that do not divide evenly), its latent is drawn from that subset's PoE and decoded into every
modality; only the full set's product contains the N(0, I) prior expert.
With missing modalities a sample's mixture runs over the subsets it fully observes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dmvae import objectives as obj
from dmvae.data.batch import Batch
from dmvae.densities import NORMAL, Density, Mixture
from dmvae.models.base import AuxiliaryUpdate, GaussianPosteriorVAE
from dmvae.models.registry import ModelSpec, Preset, register_model


@dataclass(frozen=True)
class MoPoEConfig:
    """`beta` weighs the KL term; `joint_prior_expert` puts the N(0, I) expert into the full
    set's product only (official code; MultiVae does the same)."""

    latent_dim: int = 20
    beta: float = 1.0
    joint_prior_expert: bool = True

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"MoPoE beta must be >= 0, got {self.beta}")
        if self.latent_dim < 1:
            raise ValueError(f"MoPoE needs latent_dim >= 1, got {self.latent_dim}")


CPU = torch.device("cpu")


@functools.cache
def all_subsets(m: int, device: torch.device = CPU) -> Tensor:
    """Bool [2^m - 1, m]: every non-empty subset of m modalities, in binary order (the last row
    is the full set). Cached per (m, device); callers must not modify it."""
    codes = torch.arange(1, 2**m)
    return ((codes[:, None] >> torch.arange(m)) & 1 == 1).to(device)


def subset_posteriors(
    mu: Tensor, logvar: Tensor, subsets: Tensor, prior_expert_full: bool
) -> tuple[Tensor, Tensor]:
    """The PoE of every subset: experts mu, logvar [M, B, D], subsets bool [S, M] -> [S, B, D].

    With `prior_expert_full`, a subset holding all M experts also multiplies the N(0, I) expert.
    """
    m, b, d = mu.shape
    s = subsets.shape[0]
    experts_mu = torch.cat([mu, torch.zeros_like(mu[:1])]).repeat(1, s, 1)
    experts_logvar = torch.cat([logvar, torch.zeros_like(logvar[:1])]).repeat(1, s, 1)
    full = subsets.all(1) & prior_expert_full
    mask = torch.cat([subsets.T, full[None]])  # [M + 1, S]
    mask = mask.repeat_interleave(b, dim=1)  # [M + 1, S * B]
    joint_mu, joint_logvar = obj.product_of_experts(experts_mu, experts_logvar, mask)
    return joint_mu.view(s, b, d), joint_logvar.view(s, b, d)


def stratified_components(available: Tensor) -> Tensor:
    """One mixture component per sample: available bool [S, B] -> index [B].

    The official deterministic selection (`mixture_component_selection`; the batch itself is
    shuffled): in component order, each of a sample's n available components holds B // n
    consecutive rows, and its last available component also the rows that do not divide evenly
    (with every component available, the full set, last: up to twice its share). Row b takes
    the component whose rows hold b. A sample without any available component (it counts for
    nothing) gets the last.
    """
    s, b = available.shape
    index = torch.arange(s, device=available.device)[:, None]
    share = b // available.sum(0).clamp_min(1)  # [B]
    ends = (available * share).cumsum(0)  # [S, B]: the end of each component's rows
    last = (available * index).amax(0)  # [B]: the sample's last available component
    ends = ends.masked_fill((index >= last) & available.any(0), b)
    rows = torch.arange(b, device=available.device)
    return (ends <= rows).sum(0).clamp_max(s - 1)


class MoPoE(GaussianPosteriorVAE):
    name = "mopoe"

    config_class = MoPoEConfig

    def encode(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """The subset's own component: the PoE of its experts (with the prior expert when the
        subset is every modality)."""
        names = self.check_subset(subset)
        mu, logvar = self.stack_experts(inputs, names)
        full = set(names) == set(self.modalities) and self.config.joint_prior_expert
        return obj.product_of_experts(mu, logvar, None, prior_expert=full)

    def shared_posterior(self, inputs: Mapping[str, Tensor], names: Sequence[str]) -> Density:
        """MoPoE's posterior given `names`: the uniform mixture of the products of every
        non-empty subset of them (with the prior expert in the full set's, as `encode`)."""
        names = self.check_subset(names)
        mu, logvar = self.stack_experts(inputs, names)
        full = set(names) == set(self.modalities) and self.config.joint_prior_expert
        subsets = all_subsets(len(names), mu.device)
        loc, logvar = subset_posteriors(mu, logvar, subsets, full)
        return Mixture(NORMAL, loc, torch.exp(0.5 * logvar))

    def loss(
        self,
        batch: Batch,
        kl_weight: float = 1.0,
        update_auxiliary: AuxiliaryUpdate | None = None,
    ) -> dict[str, Tensor]:
        names = self.check_subset(batch.modalities)
        mu, logvar = self.stack_experts(batch.inputs, names)  # [M, B, D]
        subsets = all_subsets(len(names), mu.device)  # [S, M]
        full_set = self.config.joint_prior_expert and len(names) == len(self.modalities)
        sub_mu, sub_logvar = subset_posteriors(mu, logvar, subsets, full_set)  # [S, B, D]
        observed = batch.mask.T  # [M, B]
        # A subset is available to a sample when the sample observes all its modalities.
        available = ~(subsets[:, :, None] & ~observed[None]).any(1)  # [S, B]
        weights = available.float() / available.sum(0, keepdim=True).clamp_min(1)
        kl = (weights * obj.kl_normal_standard(sub_mu, sub_logvar)).sum(0)  # [B]
        pick = stratified_components(available)
        rows = torch.arange(mu.shape[1], device=mu.device)
        z = obj.reparameterize(sub_mu[pick, rows], sub_logvar[pick, rows])
        terms: dict[str, Tensor] = {}
        rec = torch.zeros_like(kl)
        for k, m in enumerate(names):
            lp = self.likelihoods[m].log_prob(batch.targets[m], self.decoders[m](z))
            lp = lp * observed[k]
            terms[f"rec/{m}"] = -lp.mean()
            rec = rec + lp
        active = available.any(0).float()
        terms["kl"] = (kl * active).mean()
        terms["loss"] = -((rec - kl_weight * self.config.beta * kl) * active).mean()
        return terms


# The official PolyMNIST settings (job_polymnist); paired MNIST has no official MoPoE regime,
# so it gets the schedule the paper gives its baselines (docs/protocol.md, "MoPoE").
_POLYMNIST = Preset(
    train=dict(epochs=300, batch_size=256, lr=5e-4, anneal_epochs=0, likelihood_scale=0.75),
    model=dict(latent_dim=512, beta=2.5),
)
_PAIRED_MNIST = Preset(
    train=dict(epochs=300, batch_size=1024, lr=1e-3, anneal_epochs=50, likelihood_scale=0.1),
    model=dict(latent_dim=20),
)
register_model(
    ModelSpec(
        "mopoe",
        MoPoE,
        MoPoEConfig,
        summary="a uniform mixture of the products of experts of every subset of modalities "
        "(the generalized multimodal ELBO)",
        paper="Sutter, Daunhawer and Vogt, Generalized Multimodal ELBO, ICLR 2021",
        title="MoPoE",
        presets={"paired-mnist": _PAIRED_MNIST, "polymnist": _POLYMNIST},
    )
)
