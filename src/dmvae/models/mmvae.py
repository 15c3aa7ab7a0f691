"""MMVAE (Shi et al., 2019): a mixture of unimodal experts over one shared latent, Laplace
posteriors, a learned Laplace prior, and the stratified "looser" importance-weighted bound
(K samples from every expert, the average over experts outside the log), by default with the
DReG gradient estimator.

All E x K x B latents are decoded by one call per decoder, and Laplace log-densities are
computed directly, not through distribution objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from dmvae import objectives as obj
from dmvae.data.batch import Batch
from dmvae.densities import LAPLACE, Density, Factorised, Mixture
from dmvae.models.base import AuxiliaryUpdate, MultimodalVAE, Style
from dmvae.models.registry import ModelSpec, Preset, register_model


@dataclass(frozen=True)
class MMVAEConfig:
    """`estimator`: "dreg" (default, K samples), "iwae" or "elbo" (mean over K samples)."""

    latent_dim: int = 20
    K: int = 30
    estimator: Literal["dreg", "iwae", "elbo"] = "dreg"
    learn_prior: bool = True

    def __post_init__(self) -> None:
        if self.estimator not in ("dreg", "iwae", "elbo"):
            raise ValueError(f"unknown estimator {self.estimator!r}: use dreg, iwae or elbo")
        if self.latent_dim < 1 or self.K < 1:
            raise ValueError(
                f"MMVAE needs latent_dim >= 1 and K >= 1, got {self.latent_dim}, {self.K}"
            )


def laplace_scale(raw: Tensor) -> Tensor:
    """The official MMVAE parameterisation: softmax over dimensions times D, plus a floor."""
    return LAPLACE.scale(raw, 1e-6)


class MMVAE(MultimodalVAE):
    name = "mmvae"

    config_class = MMVAEConfig

    def setup(self) -> None:
        self.shared_dim = self.config.latent_dim
        self.prior_raw_scale = nn.Parameter(
            torch.zeros(self.config.latent_dim), requires_grad=self.config.learn_prior
        )

    def prior_scale(self) -> Tensor:
        return laplace_scale(self.prior_raw_scale)

    def _posteriors(
        self, inputs: Mapping[str, Tensor], names: Sequence[str]
    ) -> tuple[Tensor, Tensor]:
        """Laplace locations and scales of the unimodal experts, [E, B, D] each."""
        loc, raw = self.stack_experts(inputs, names)
        return loc, laplace_scale(raw)

    def encode(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the mixture of the experts in `subset`; used for
        embeddings, not for sampling."""
        return self.shared_posterior(inputs, subset).moments()

    def ex_post_embeddings(self, inputs: dict[str, Tensor]) -> Tensor:
        """Every expert's posterior location, stacked [M * B, D]: the mixture's components."""
        loc, _ = self._posteriors(inputs, self.modalities)
        return loc.reshape(-1, loc.shape[-1])

    def loss(
        self,
        batch: Batch,
        kl_weight: float = 1.0,
        update_auxiliary: AuxiliaryUpdate | None = None,
    ) -> dict[str, Tensor]:
        names = self.check_subset(batch.modalities)
        loc, scale = self._posteriors(batch.inputs, names)  # [E, B, D]
        observed = batch.mask.T  # [E, B]
        k = self.config.K
        z = obj.laplace_rsample(loc, scale, k).transpose(0, 1)  # [E, K, B, D]
        dreg = self.config.estimator == "dreg"
        q_loc, q_scale = (loc.detach(), scale.detach()) if dreg else (loc, scale)
        # log q(z | x_m') for every sample z and expert m': [E, K, B, E'].
        log_q = obj.laplace_log_prob(
            z[:, :, :, None], q_loc.transpose(0, 1), q_scale.transpose(0, 1)
        )
        log_q = log_q.sum(-1).masked_fill(~observed.T[None, None], float("-inf"))
        n_obs = observed.sum(0).clamp_min(1)
        log_mix = torch.logsumexp(log_q, dim=-1) - torch.log(n_obs.float())
        log_prior = obj.laplace_log_prob(
            z, torch.zeros_like(self.prior_scale()), self.prior_scale()
        )
        log_w = log_prior.sum(-1) - log_mix
        e, flat = z.shape[0], z.reshape(-1, z.shape[-1])
        terms: dict[str, Tensor] = {}
        for j, m in enumerate(names):
            target = batch.targets[m]
            loc_x = self.decoders[m](flat).view(e, k, *target.shape)
            lp = self.likelihoods[m].log_prob(target, loc_x) * observed[j]  # [E, K, B]
            terms[f"rec/{m}"] = -lp.mean(dim=(0, 1)).mean()
            log_w = log_w + lp
        log_w = log_w.masked_fill(~observed[:, None], 0.0)
        weight = observed.float() / n_obs
        if self.config.estimator == "dreg":
            objective = obj.dreg_looser(log_w, z)
        elif self.config.estimator == "iwae":
            objective = obj.iwae_looser(log_w)
        else:
            objective = log_w.mean(1)
        with torch.no_grad():
            bound = (obj.iwae_looser(log_w) * weight).sum(0).mean()
        terms["bound"] = bound
        terms["loss"] = -(objective * weight).sum(0).mean()
        return terms

    def shared_prior(self) -> Density:
        scale = self.prior_scale()
        return Factorised(LAPLACE, torch.zeros_like(scale), scale)

    def shared_posterior(
        self, inputs: Mapping[str, Tensor], names: Sequence[str] | None
    ) -> Mixture:
        """The uniform mixture of the experts in `names`."""
        return Mixture(LAPLACE, *self._posteriors(inputs, self.check_subset(names)))

    def conditional_generate(
        self,
        given: dict[str, Tensor],
        targets: Sequence[str],
        subset: Sequence[str] | None = None,
        n_per_input: int = 1,
        style: Style = "posterior",
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """ "posterior": z from the mixture of the given experts (one expert drawn uniformly per
        sample); "prior" (no style prior in MMVAE): the mean of the experts' locations."""
        names, targets = self.generation_subsets(given, targets, subset)
        loc, scale = self._posteriors(given, names)
        loc = loc.repeat_interleave(n_per_input, dim=1)
        scale = scale.repeat_interleave(n_per_input, dim=1)
        if style == "posterior":
            n = loc.shape[1]
            pick = torch.randint(len(names), (n,), generator=generator, device=loc.device)
            rows = torch.arange(n, device=loc.device)
            z = obj.laplace_rsample(loc[pick, rows], scale[pick, rows], 1, generator)[0]
        else:
            z = loc.mean(0)
        return {t: self.decoders[t](z) for t in targets}

    def reconstruct(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        names = self.check_subset(subset if subset is not None else tuple(inputs))
        loc, _ = self._posteriors(inputs, names)
        return {m: self.decoders[m](loc.mean(0)) for m in self.modalities if m in inputs}


# The official MMVAE settings (both experiments).
_PAPER = Preset(
    train=dict(
        epochs=30, batch_size=128, lr=1e-3, amsgrad=True, anneal_epochs=0, likelihood_scale=0.75
    ),
    model=dict(latent_dim=20, K=30),
)
# MoPoE's PolyMNIST script (job_polymnist, METHOD="moe"): 512-d latent, one sample, plain ELBO.
_MOPOE_POLYMNIST = Preset(
    train=dict(epochs=300, batch_size=256, lr=5e-4, anneal_epochs=0, likelihood_scale=0.75),
    model=dict(latent_dim=512, K=1, estimator="elbo"),
)
register_model(
    ModelSpec(
        "mmvae",
        MMVAE,
        MMVAEConfig,
        summary="a uniform mixture of unimodal Laplace experts, trained on a stratified "
        "importance-weighted bound (DReG gradients)",
        paper="Shi, Siddharth, Paige and Torr, Variational Mixture-of-Experts Autoencoders for "
        "Multi-Modal Deep Generative Models, NeurIPS 2019",
        presets={"mnist-svhn": _PAPER, "paired-mnist": _PAPER, "polymnist": _MOPOE_POLYMNIST},
    )
)
