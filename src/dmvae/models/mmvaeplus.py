"""MMVAE+ (Palumbo, Daunhawer and Vogt, ICLR 2023): MMVAE's mixture of unimodal experts over a
shared latent z, plus a modality-specific latent w_m per modality.

Each encoder outputs parameters over [w_m, z] (style first, as DMVAE). For each expert m and
each of K samples (w_m, z) ~ q(w_m | x_m) q(z | x_m), the log weight is

    log w = sum_n log p(x_n | w_n', z)
            + beta * (log p(w_m, z) - log q_mix(z | X) - log q(w_m | x_m))

with w_n' = w_m for n = m and w_n' ~ r_n (the learned auxiliary prior) for n != m, and
q_mix the uniform mixture of the observed experts; the bound is the stratified ("looser") IWAE
bound of MMVAE, by default with K = 1. The facts taken from the official code are in
docs/protocol.md, "MMVAE+".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from dmvae import objectives as obj
from dmvae.data.batch import Batch
from dmvae.densities import FAMILIES, Density, Factorised, Mixture
from dmvae.models.base import AuxiliaryUpdate, SharedPrivateVAE, StyleOf
from dmvae.models.registry import ModelSpec, Preset, register_model

ETA = 1e-6  # the official floor on posterior scales (utils.Constants.eta)
ESTIMATORS = ("dreg", "iwae", "elbo")


@dataclass(frozen=True)
class MMVAEPlusConfig:
    """`estimator`: "dreg" (DReG gradients of the K-sample bound), "iwae" or "elbo" (mean of
    log w over K). `distribution`: prior, auxiliary prior and posterior family; "laplace" with
    scales softmax(raw) * D (the official code), "normal" with softplus(raw) (its commented-out
    alternative). `learn_aux_prior`: learn the auxiliary priors' scales (official: yes);
    `learn_prior`: learn the prior's scale (official: no, so it is 1 for "laplace")."""

    shared_dim: int = 32
    style_dim: int = 32
    K: int = 1
    estimator: Literal["dreg", "iwae", "elbo"] = "iwae"
    beta: float = 1.0
    distribution: Literal["laplace", "normal"] = "laplace"
    learn_aux_prior: bool = True
    learn_prior: bool = False

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(
                f"MMVAE+ estimator={self.estimator!r} is unknown: choose from {list(ESTIMATORS)}"
            )
        if self.distribution not in FAMILIES:
            raise ValueError(
                f"MMVAE+ distribution={self.distribution!r} is unknown: choose from "
                f"{list(FAMILIES)}"
            )
        for name in ("shared_dim", "style_dim", "K"):
            if getattr(self, name) < 1:
                raise ValueError(f"MMVAE+ {name} must be at least 1, got {getattr(self, name)}")
        if self.beta < 0:
            raise ValueError(f"MMVAE+ beta must be >= 0, got {self.beta}")

    @property
    def latent_dim(self) -> int:
        """Width of each encoder's output and each decoder's input: style, then shared."""
        return self.style_dim + self.shared_dim


class MMVAEPlus(SharedPrivateVAE):
    name = "mmvaeplus"
    latent_choices = ("sample",)  # z is sampled from one expert (the official cross-generation)

    config_class = MMVAEPlusConfig

    def setup(self) -> None:
        cfg = self.config
        self.style_dim, self.shared_dim = cfg.style_dim, cfg.shared_dim
        self.family = FAMILIES[cfg.distribution]()
        # Raw scales (locations are fixed at 0, as in the official code).
        self.prior_raw_scale = nn.Parameter(
            torch.zeros(cfg.latent_dim), requires_grad=cfg.learn_prior
        )
        self.aux_raw_scale = nn.ParameterDict(
            {
                m: nn.Parameter(torch.zeros(cfg.style_dim), requires_grad=cfg.learn_aux_prior)
                for m in self.modalities
            }
        )

    def split_scale(self, raw: Tensor, floor: float = 0.0) -> Tensor:
        """Scales of [w, z] from one raw vector, normalised over w and over z separately (the
        official encoders have one head per latent, each with its own softmax)."""
        s = self.style_dim
        return torch.cat(
            [self.family.scale(raw[..., :s], floor), self.family.scale(raw[..., s:], floor)], -1
        )

    def prior_scale(self) -> Tensor:
        """Scale of p(w_m, z), [style_dim + shared_dim] (the same for every modality's w): one
        family scale over the whole [w, z] vector, as the official `pu_params` (one softmax for
        "laplace"); it matters only with `learn_prior`, the raw scale being 0 otherwise."""
        return self.family.scale(self.prior_raw_scale)

    def aux_scale(self, m: str) -> Tensor:
        """Scale of the auxiliary prior r_m(w_m) used for cross-reconstructions in training."""
        return self.family.scale(self.aux_raw_scale[m])

    def _posteriors(
        self, inputs: Mapping[str, Tensor], names: Sequence[str]
    ) -> tuple[Tensor, Tensor]:
        """Locations and scales of q(w_m, z | x_m) per expert, [E, B, style_dim + shared_dim]."""
        locs, scales = [], []
        width = self.style_dim + self.shared_dim
        for m in names:
            if m not in inputs:
                raise KeyError(f"modality {m!r} is in the subset but not in the inputs")
            loc, raw = self.encode_modality(m, inputs[m])
            if loc.shape[-1] != width:
                raise ValueError(
                    f"modality {m!r}: the encoder returns {loc.shape[-1]} dimensions, MMVAE+ "
                    f"needs style_dim + shared_dim = {width}"
                )
            locs.append(loc)
            scales.append(self.split_scale(raw, ETA))
        return torch.stack(locs), torch.stack(scales)

    def encode(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the mixture of the experts' z posteriors in `subset`;
        for embeddings, not for sampling."""
        return self.shared_posterior(inputs, subset).moments()

    def embed(
        self,
        inputs: dict[str, Tensor],
        subset: Sequence[str] | None = None,
        with_style: bool = False,
    ) -> Tensor:
        """Mixture mean of z; `with_style` appends the w location of each modality in `subset`."""
        names = self.check_subset(subset)
        loc, _ = self._posteriors(inputs, names)
        shared = loc[..., self.style_dim :].mean(0)
        if not with_style:
            return shared
        return torch.cat([shared, *loc[..., : self.style_dim]], dim=-1)

    def ex_post_embeddings(self, inputs: dict[str, Tensor]) -> Tensor:
        """Every expert's z location, stacked [M * B, shared_dim]: the mixture's components."""
        loc, _ = self._posteriors(inputs, self.modalities)
        return loc[..., self.style_dim :].reshape(-1, self.shared_dim)

    def loss(
        self,
        batch: Batch,
        kl_weight: float = 1.0,
        update_auxiliary: AuxiliaryUpdate | None = None,
    ) -> dict[str, Tensor]:
        """Minus the stratified bound at beta * `kl_weight`, averaged over the observed experts
        of each sample and over the batch."""
        names = self.check_subset(batch.modalities)
        beta = self.config.beta * kl_weight
        loc, scale = self._posteriors(batch.inputs, names)  # [E, B, D]
        observed = batch.mask.T  # [E, B]
        u = self.family.rsample(loc, scale, self.config.K).transpose(0, 1)  # [E, K, B, D]
        dreg = self.config.estimator == "dreg"
        q = (loc.detach(), scale.detach()) if dreg else (loc, scale)
        kl_like = self.kl_like_terms(u, *q, observed)
        log_w, terms = self.reconstruction_terms(u, batch, names, observed)
        log_w = (log_w + beta * kl_like).masked_fill(~observed[:, None], 0.0)
        n_obs = observed.sum(0).clamp_min(1)
        weight = observed.float() / n_obs
        if dreg:
            objective = obj.dreg_looser(log_w, u, beta)
        elif self.config.estimator == "iwae":
            objective = obj.iwae_looser(log_w)
        else:
            objective = log_w.mean(1)
        with torch.no_grad():
            kl = -kl_like.masked_fill(~observed[:, None], 0.0).mean(1)  # [E, B]
            terms["kl"] = (kl * weight).sum(0).mean()
            terms["bound"] = (obj.iwae_looser(log_w) * weight).sum(0).mean()
        terms["loss"] = -(objective * weight).sum(0).mean()
        return terms

    def kl_like_terms(self, u: Tensor, loc: Tensor, scale: Tensor, observed: Tensor) -> Tensor:
        """log p(w_m, z) - log q_mix(z | X) - log q(w_m | x_m) per expert and sample, [E, K, B].

        u: [E, K, B, D] samples; loc, scale: [E, B, D] posterior parameters (detached for DReG);
        observed: bool [E, B]. The mixture runs over the observed experts of each sample.
        """
        s, fam = self.style_dim, self.family
        z = u[..., s:]
        log_qz = fam.log_prob(
            z[:, :, :, None], loc[..., s:].transpose(0, 1), scale[..., s:].transpose(0, 1)
        ).sum(-1)  # [E, K, B, E']: sample of expert e under expert e'
        log_qz = log_qz.masked_fill(~observed.T[None, None], float("-inf"))
        n_obs = observed.sum(0).clamp_min(1)
        log_mix = torch.logsumexp(log_qz, dim=-1) - torch.log(n_obs.to(u.dtype))
        log_qw = fam.log_prob(u[..., :s], loc[:, None, :, :s], scale[:, None, :, :s]).sum(-1)
        prior = self.prior_scale()
        log_prior = fam.log_prob(u, torch.zeros_like(prior), prior).sum(-1)
        return log_prior - log_mix - log_qw

    def reconstruction_terms(
        self, u: Tensor, batch: Batch, names: Sequence[str], observed: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """sum_n log p(x_n | w_n', z_e) per expert e and sample ([E, K, B]), with w_n' = w_e for
        n = e and a sample of r_n otherwise (unobserved targets count 0), and the logged
        self- and cross-reconstruction NLLs."""
        s, e, k = self.style_dim, u.shape[0], u.shape[1]
        total = torch.zeros(u.shape[:3], device=u.device, dtype=u.dtype)
        terms: dict[str, Tensor] = {}
        for j, m in enumerate(names):
            aux = self.family.rsample(
                torch.zeros_like(self.aux_scale(m)), self.aux_scale(m), math.prod(u.shape[:3])
            ).view(*u.shape[:3], s)
            own = (torch.arange(e, device=u.device) == j)[:, None, None, None]
            latent = torch.cat([torch.where(own, u[..., :s], aux), u[..., s:]], dim=-1)
            target = batch.targets[m]
            loc_x = self.decoders[m](latent.reshape(-1, latent.shape[-1]))
            lp = self.likelihoods[m].log_prob(target, loc_x.view(e, k, *target.shape))
            lp = lp * observed[j]  # [E, K, B]
            total = total + lp
            with torch.no_grad():
                both = observed & observed[j]  # expert observed and target observed
                terms[f"rec/{m}"] = -obj.masked_mean(lp[j].mean(0), both[j])
                others = both.clone()
                others[j] = False
                cross = (lp.mean(1) * others).sum() / others.sum().clamp_min(1)
                terms[f"cross/{m}"] = -cross
        return total, terms

    def shared_prior(self) -> Density:
        scale = self.prior_scale()[self.style_dim :]
        return Factorised(self.family, torch.zeros_like(scale), scale)

    def style_prior(self, modality: str) -> Density:
        scale = self.prior_scale()[: self.style_dim]
        return Factorised(self.family, torch.zeros_like(scale), scale)

    def shared_posterior(
        self, inputs: Mapping[str, Tensor], names: Sequence[str] | None
    ) -> Mixture:
        """The uniform mixture of the experts' z posteriors in `names`."""
        loc, scale = self._posteriors(inputs, self.check_subset(names))
        return Mixture(self.family, loc[..., self.style_dim :], scale[..., self.style_dim :])

    def style_posterior(self, inputs: Mapping[str, Tensor], modality: str) -> Density:
        loc, scale = self._posteriors(inputs, [modality])
        return Factorised(self.family, loc[0, :, : self.style_dim], scale[0, :, : self.style_dim])

    def conditional_latents(
        self,
        given: dict[str, Tensor],
        names: tuple[str, ...],
        n_per_input: int,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, StyleOf]:
        """z sampled from the mixture of the experts in `names` (one expert drawn uniformly
        per sample, the official cross-generation); a target's posterior w is sampled from its
        own posterior, for targets in `names` only."""
        loc, scale = self._posteriors(given, names)
        loc = loc.repeat_interleave(n_per_input, dim=1)
        scale = scale.repeat_interleave(n_per_input, dim=1)
        n, s = loc.shape[1], self.style_dim
        rows = torch.arange(n, device=loc.device)
        pick = torch.randint(len(names), (n,), generator=generator, device=loc.device)
        z = self.family.rsample(loc[pick, rows, s:], scale[pick, rows, s:], 1, generator)[0]

        def posterior_style(t: str) -> Tensor | None:
            if t not in names:
                return None
            i = names.index(t)
            return self.family.rsample(loc[i, :, :s], scale[i, :, :s], 1, generator)[0]

        return z, posterior_style


# Official PolyMNIST settings and our paired-MNIST choice (docs/protocol.md, "MMVAE+").
register_model(
    ModelSpec(
        "mmvaeplus",
        MMVAEPlus,
        MMVAEPlusConfig,
        summary="MMVAE's mixture over a shared latent plus a modality-specific latent per "
        "modality, with auxiliary priors for cross-modal generation",
        paper="Palumbo, Daunhawer and Vogt, MMVAE+: Enhancing the Generative Quality of "
        "Multimodal VAEs without Compromises, ICLR 2023",
        title="MMVAE+",
        presets={
            "polymnist": Preset(
                train=dict(
                    epochs=150,
                    batch_size=32,
                    lr=1e-3,
                    amsgrad=True,
                    anneal_epochs=0,
                    likelihood_scale=0.75,
                ),
                model=dict(shared_dim=32, style_dim=32, K=1, estimator="iwae", beta=2.5),
            ),
            "paired-mnist": Preset(
                train=dict(
                    epochs=30,
                    batch_size=128,
                    lr=1e-3,
                    amsgrad=True,
                    anneal_epochs=0,
                    likelihood_scale=0.75,
                ),
                model=dict(shared_dim=20, style_dim=10, K=1, estimator="iwae", beta=1.0),
            ),
        },
    )
)
