"""MVAE (Wu & Goodman, 2018): one shared latent, a product of Gaussian experts with a N(0, I)
prior expert, trained by the sub-sampled ELBO (joint + unimodal + random-subset ELBOs).

Each modality is encoded once per step; every ELBO term reuses those experts through a PoE
mask, and each decoder runs once on the stacked latents of all terms that reconstruct it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dmvae import objectives as obj
from dmvae.data.batch import Batch
from dmvae.devices import to_device
from dmvae.models.base import AuxiliaryUpdate, GaussianPosteriorVAE
from dmvae.models.registry import ModelSpec, Preset, register_model


@dataclass(frozen=True)
class MVAEConfig:
    """`num_random_subsets` extra ELBOs per batch when M > 2, each on a subset drawn uniformly
    among those of 2..M-1 modalities (the reference code's; singletons and the full set already
    have their own ELBO terms)."""

    latent_dim: int = 20
    beta: float = 1.0
    num_random_subsets: int = 1

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"MVAE beta must be >= 0, got {self.beta}")
        if self.latent_dim < 1 or self.num_random_subsets < 0:
            raise ValueError(
                f"MVAE needs latent_dim >= 1 and num_random_subsets >= 0, got {self.latent_dim} "
                f"and {self.num_random_subsets}"
            )


class MVAE(GaussianPosteriorVAE):
    name = "mvae"

    config_class = MVAEConfig

    def encode(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        names = self.check_subset(subset)
        mu, logvar = self.stack_experts(inputs, names)
        return obj.product_of_experts(mu, logvar, None, prior_expert=True)

    def training_subsets(self) -> Tensor:
        """Bool [T, M] on the CPU: the joint subset, each single modality, and random subsets if
        M > 2. Drawn by torch's CPU generator whatever the device: which decoders run on which
        terms is decided by the host, and a draw on a GPU would make it wait every step."""
        m = len(self.modalities)
        rows = [torch.ones(1, m, dtype=torch.bool), torch.eye(m, dtype=torch.bool)]
        if m > 2 and self.config.num_random_subsets > 0:
            candidates = proper_subsets(m)
            pick = torch.randint(len(candidates), (self.config.num_random_subsets,), device=CPU)
            rows.append(candidates[pick])
        return torch.cat(rows)

    def loss(
        self,
        batch: Batch,
        kl_weight: float = 1.0,
        update_auxiliary: AuxiliaryUpdate | None = None,
    ) -> dict[str, Tensor]:
        names = self.check_subset(batch.modalities)
        mu, logvar = self.stack_experts(batch.inputs, names)  # [M, B, D]
        subsets = self.training_subsets()  # [T, M], on the host
        observed = batch.mask.T  # [M, B]
        t, m_count, b = subsets.shape[0], len(names), mu.shape[1]
        masks = to_device(subsets, mu.device)[:, :, None] & observed[None]  # [T, M, B]
        # One PoE over all terms at once: experts [M, T*B, D] with masks [M, T*B].
        joint_mu, joint_logvar = obj.product_of_experts(
            mu.repeat(1, t, 1),
            logvar.repeat(1, t, 1),
            masks.permute(1, 0, 2).reshape(m_count, t * b),
            prior_expert=True,
        )
        z = obj.reparameterize(joint_mu, joint_logvar).view(t, b, -1)
        kl = obj.kl_normal_standard(joint_mu, joint_logvar).view(t, b)
        active = masks.any(1)  # [T, B]: the term has at least one observed modality
        terms: dict[str, Tensor] = {}
        elbo: Tensor | None = None  # in the likelihoods' dtype (float32 under bf16 autocast)
        for k, m in enumerate(names):
            rows = subsets[:, k].nonzero().squeeze(1)  # terms reconstructing m, on the host
            rows = to_device(rows, mu.device)
            loc = self.decoders[m](z[rows].reshape(-1, z.shape[-1]))
            target = batch.targets[m].repeat(len(rows), *[1] * (batch.targets[m].dim() - 1))
            lp = self.likelihoods[m].log_prob(target, loc).view(len(rows), b)
            lp = lp * observed[k]
            elbo = (lp.new_zeros(t, b) if elbo is None else elbo).index_add(0, rows, lp)
            terms[f"rec/{m}"] = -lp[0].mean()  # row 0 is the joint term
        elbo = elbo - kl_weight * self.config.beta * kl
        elbo = elbo * active
        per_term = -elbo.sum(1) / active.sum(1).clamp_min(1)
        terms["elbo/joint"] = per_term[0]
        for k, m in enumerate(names):
            terms[f"elbo/{m}"] = per_term[1 + k]
        if t > 1 + m_count:
            terms["elbo/random"] = per_term[1 + m_count :].mean()
        terms["kl/joint"] = kl[0].mean()
        terms["loss"] = -elbo.sum() / b
        return terms


CPU = torch.device("cpu")


@functools.cache
def proper_subsets(m: int) -> Tensor:
    """Bool [S, m] on the CPU: every subset of 2..m-1 of m modalities, by size, then in binary
    order. Cached, since MVAE draws from it at every step; callers must not modify it."""
    codes = torch.arange(1, 2**m - 1)
    masks = (codes[:, None] >> torch.arange(m)) & 1 == 1
    sizes = masks.sum(1)
    keep = sizes >= 2
    order = torch.argsort(sizes[keep], stable=True)
    return masks[keep][order]


_PAPER = Preset(
    train=dict(epochs=50, batch_size=1024, lr=1e-3, anneal_epochs=5, likelihood_scale=0.1),
    model=dict(latent_dim=20),
)
# MoPoE's PolyMNIST script (job_polymnist, METHOD="poe"): 512-d latent, beta 2.5.
_MOPOE_POLYMNIST = Preset(
    train=dict(epochs=300, batch_size=256, lr=5e-4, anneal_epochs=0, likelihood_scale=0.75),
    model=dict(latent_dim=512, beta=2.5),
)
register_model(
    ModelSpec(
        "mvae",
        MVAE,
        MVAEConfig,
        summary="a product of the modalities' Gaussian experts and a prior expert, trained on "
        "the ELBOs of the joint, of each modality and of random subsets",
        paper="Wu and Goodman, Multimodal Generative Models for Scalable Weakly-Supervised "
        "Learning, NeurIPS 2018",
        presets={
            "mnist-svhn": _PAPER,
            "paired-mnist": Preset(
                {**_PAPER.train, "epochs": 300, "anneal_epochs": 50}, _PAPER.model
            ),
            "polymnist": _MOPOE_POLYMNIST,
        },
    )
)
