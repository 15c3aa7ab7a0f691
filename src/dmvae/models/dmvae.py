"""DMVAE: modality-specific style s_m and shared content c (Daunhawer et al., GCPR 2020).

The objective (paper eq. 4) is L = L_VAE + gamma * L_shared - delta * L_disent:
- L_VAE: per modality a VAE over s_m whose decoder also sees the content mean of a random
  subset (A or its complement B) of the modalities; content is detached there.
- L_shared: InfoNCE between content sampled from all modalities and from a random subset; the
  only term that trains the content heads.
- L_disent: per modality the total correlation TC(s_m, c) estimated by a discriminator D_m (the
  density-ratio trick); the trainer steps D_m by its own optimiser when `loss` hands it D_m's
  loss, before the TC estimate and the main step, and the estimate's gradient reaches s_m only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dmvae import objectives as obj
from dmvae.data.batch import Batch
from dmvae.densities import Density, Factorised
from dmvae.devices import adam, to_device
from dmvae.distributed import gather_batch
from dmvae.models.base import AuxiliaryUpdate, SharedPrivateVAE, StyleOf
from dmvae.models.registry import ModelSpec, Preset, register_model
from dmvae.nets import TCDiscriminator, release_init

# Collapse thresholds (docs/protocol.md says how they were measured).
STYLE_KL_FLOOR = 0.5
CONTENT_EFFECT_FLOOR = 0.05


RECONSTRUCTIONS = ("release", "per_sample")
INITS = ("release", "pytorch")


PAPER = (
    "Daunhawer, Sutter, Marcinkevics and Vogt, Self-supervised Disentanglement of "
    "Modality-specific and Shared Factors Improves Multimodal Generative Models, GCPR 2020"
)
"""The paper this library reproduces (its model, and its paired-MNIST benchmark)."""


def select_rows(device: torch.device) -> bool:
    """Whether the TC terms compute only subset A's rows (the CPU), or all rows with the others
    weighted 0 (the GPU, where counting the rows would stall every step)."""
    return device.type == "cpu"


@dataclass(frozen=True)
class DMVAEConfig:
    """Hyperparameters; `beta` and `delta` are one value for all modalities or one per name.

    `reconstruction="release"` scales the reconstruction term as the authors' release did (mean
    over the A rows plus mean over the B rows, about twice a per-sample mean), so that the
    released beta, gamma and delta mean what they meant; `"per_sample"` is a plain per-sample
    mean (halve beta, gamma and delta for the same balance). `init="release"` re-initialises
    every Linear and Conv2d of the encoders, decoders and discriminators as the release did
    (N(0, 0.05) weights, zero biases); `"pytorch"` keeps the networks' own initialisation.
    Both defaults were measured to matter (docs/protocol.md).
    """

    style_dim: int = 10
    content_dim: int = 10
    beta: float | dict[str, float] = 1.0
    gamma: float = 100.0
    delta: float | dict[str, float] = 100.0
    temperature: float = 1.0
    disc_width: int = 500
    disc_lr: float = 1e-4
    disc_betas: tuple[float, float] = (0.5, 0.9)
    subset_prob: float = 0.5
    reconstruction: str = "release"
    init: str = "release"

    def __post_init__(self) -> None:
        for name, allowed in (("reconstruction", RECONSTRUCTIONS), ("init", INITS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"DMVAE {name}={value!r} is unknown: choose from {list(allowed)}")
        for name in ("style_dim", "content_dim", "disc_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"DMVAE {name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.subset_prob < 1:
            raise ValueError(f"DMVAE subset_prob must lie in (0, 1), got {self.subset_prob}")
        for name in ("beta", "gamma", "delta"):
            value = getattr(self, name)
            values = value.values() if isinstance(value, Mapping) else [value]
            if any(v < 0 for v in values):
                raise ValueError(f"DMVAE {name} must be >= 0, got {value}")
        if self.temperature <= 0 or self.disc_lr <= 0:
            raise ValueError(
                f"DMVAE temperature and disc_lr must be positive, got {self.temperature}, "
                f"{self.disc_lr}"
            )
        if not all(0 <= b < 1 for b in self.disc_betas):
            raise ValueError(f"DMVAE disc_betas must lie in [0, 1), got {self.disc_betas}")

    @property
    def latent_dim(self) -> int:
        """Width of each encoder's Gaussian and each decoder's input: style, then content."""
        return self.style_dim + self.content_dim


def per_modality(value: float | Mapping[str, float], names: Sequence[str], what: str) -> dict:
    if isinstance(value, Mapping):
        missing = [m for m in names if m not in value]
        unknown = [m for m in value if m not in names]
        if missing or unknown:
            raise ValueError(
                f"{what} per modality must name exactly {list(names)} (missing {missing}, "
                f"unknown {unknown})"
            )
        return {m: float(value[m]) for m in names}
    return {m: float(value) for m in names}


class DMVAE(SharedPrivateVAE):
    """Encoders output Gaussian parameters over style_dim + content_dim dimensions (style first);
    decoders take concat(s_m, c)."""

    name = "dmvae"
    latent_choices = ("mean",)  # generation decodes the content posterior's mean (the paper's)

    config_class = DMVAEConfig

    def setup(self) -> None:
        config = self.config
        self.style_dim, self.shared_dim = config.style_dim, config.content_dim
        self.beta = per_modality(config.beta, self.modalities, "beta")
        self.delta = per_modality(config.delta, self.modalities, "delta")
        self.discriminators = nn.ModuleDict(
            {
                m: TCDiscriminator(config.style_dim, config.content_dim, config.disc_width)
                for m in self.modalities
            }
        )
        if config.init == "release":
            for net in (self.encoders, self.decoders, self.discriminators):
                release_init(net)

    def auxiliary_networks(self) -> dict[str, nn.Module]:
        return {"discriminators": self.discriminators}

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        params = self.discriminators.parameters()
        return {"discriminators": adam(params, lr=cfg.disc_lr, betas=cfg.disc_betas)}

    # ---------------------------------------------------------------- encoding
    def _encode_each(
        self, inputs: Mapping[str, Tensor], names: Sequence[str]
    ) -> dict[str, tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per modality (style mu, style logvar, content mu, content logvar)."""
        out = {}
        s = self.style_dim
        for m in names:
            if m not in inputs:
                raise KeyError(f"modality {m!r} is in the subset but not in the inputs")
            mu, logvar = self.encode_modality(m, inputs[m])
            if mu.shape[-1] != s + self.shared_dim:
                raise ValueError(
                    f"modality {m!r}: the encoder returns {mu.shape[-1]} dimensions, DMVAE needs "
                    f"style_dim + content_dim = {s + self.shared_dim}"
                )
            out[m] = (mu[:, :s], logvar[:, :s], mu[:, s:], logvar[:, s:])
        return out

    def _content_poe(
        self, enc: Mapping[str, tuple[Tensor, ...]], names: Sequence[str], mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        mu = torch.stack([enc[m][2] for m in names])
        logvar = torch.stack([enc[m][3] for m in names])
        return obj.product_of_experts(mu, logvar, mask)

    def encode(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        names = self.check_subset(subset)
        return self._content_poe(self._encode_each(inputs, names), names, None)

    def style_posterior(self, inputs: Mapping[str, Tensor], modality: str) -> Density:
        s_mu, s_logvar = self._encode_each(inputs, [modality])[modality][:2]
        return Factorised.normal(s_mu, s_logvar)

    def embed(
        self,
        inputs: dict[str, Tensor],
        subset: Sequence[str] | None = None,
        with_style: bool = False,
    ) -> Tensor:
        """Content mean (the paper's latent representation); `with_style` appends style means."""
        names = self.check_subset(subset)
        enc = self._encode_each(inputs, names)
        content = self._content_poe(enc, names, None)[0]
        if not with_style:
            return content
        return torch.cat([content] + [enc[m][0] for m in names], dim=-1)

    # ---------------------------------------------------------------- training
    def loss(
        self,
        batch: Batch,
        kl_weight: float = 1.0,
        update_auxiliary: AuxiliaryUpdate | None = None,
    ) -> dict[str, Tensor]:
        """Steps the discriminators through `update_auxiliary` ("discriminators"), each D_m
        just before its TC estimate, as the release did."""
        names = self.check_subset(batch.modalities)
        unknown = [m for m in batch.modalities if m not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modalities {unknown}; this model has {list(self.modalities)}")
        enc = self._encode_each(batch.inputs, names)
        observed = batch.mask.T  # [M, B]
        in_a = observed & self.draw_partition(observed.shape, observed.device)
        in_b = observed & ~in_a
        mu_a, logvar_a = self._content_poe(enc, names, in_a)
        mu_b, _ = self._content_poe(enc, names, in_b)
        c_a = obj.reparameterize(mu_a, logvar_a)

        terms: dict[str, Tensor] = {}
        total = torch.zeros((), device=batch.labels.device)
        styles = {}
        for k, m in enumerate(names):
            s_mu, s_logvar = enc[m][0], enc[m][1]
            s = obj.reparameterize(s_mu, s_logvar)
            styles[m] = s
            content = torch.where(in_a[k, :, None], mu_a, mu_b).detach()
            loc = self.decoders[m](torch.cat([s, content], dim=-1))
            nll = -self.likelihoods[m].log_prob(batch.targets[m], loc)
            if self.config.reconstruction == "release":
                rec = obj.subset_mean_nll(nll, in_a[k], in_b[k])
            else:
                rec = obj.masked_mean(nll, observed[k])
            kl = obj.masked_mean(obj.kl_normal_standard(s_mu, s_logvar), observed[k])
            terms[f"rec/{m}"] = rec
            terms[f"kl/{m}"] = kl
            total = total + rec + kl_weight * self.beta[m] * kl

        shared, terms["shared_chance"] = self._shared_term(enc, names, observed)
        terms["shared"] = shared
        total = total + self.config.gamma * shared

        for k, m in enumerate(names):
            tc, disc = self._tc_term(m, styles[m], c_a.detach(), in_a[k], update_auxiliary)
            terms[f"tc/{m}"] = tc
            terms[f"disc/{m}"] = disc
            total = total + self.delta[m] * tc
        terms["loss"] = total
        return terms

    def draw_partition(self, shape: torch.Size, device: torch.device) -> Tensor:
        """Bool [M, B]: subset A of each sample, each modality kept with `subset_prob`."""
        return torch.rand(shape, device=device) < self.config.subset_prob

    def draw_contrast_subset(self, num_modalities: int, device: torch.device) -> Tensor:
        """Bool [M]: the batch's random non-empty subset that InfoNCE contrasts with all.

        Drawn by torch's CPU generator whatever the device: redrawing an empty subset is a
        decision the host takes, and on a GPU it would wait for the device every step.
        """
        subset = torch.rand(num_modalities, device="cpu") < self.config.subset_prob
        if not subset.any():
            subset[torch.randint(num_modalities, (1,), device="cpu")] = True
        return to_device(subset, device)

    def _shared_term(
        self, enc: Mapping, names: Sequence[str], observed: Tensor
    ) -> tuple[Tensor, Tensor]:
        """InfoNCE between content from all modalities and from one random non-empty subset, and
        its chance value log(2N - 1) (content that tells the samples apart scores below it).

        On incomplete data, both contents use the observed modalities only, and a sample that
        has none of the subset's modalities has no subset content: its pair is left out
        (`info_nce`'s `valid`), and the chance value counts the pairs that remain."""
        mu_all, logvar_all = self._content_poe(enc, names, observed)
        subset = self.draw_contrast_subset(len(names), observed.device)
        in_subset = observed & subset[:, None]
        mu_sub, logvar_sub = self._content_poe(enc, names, in_subset)
        c = obj.reparameterize(mu_all, logvar_all)
        c_tilde = obj.reparameterize(mu_sub, logvar_sub)
        valid = in_subset.any(0)
        if self.training:  # under torchrun: negatives from the whole global batch
            c, c_tilde = gather_batch(c), gather_batch(c_tilde)
            valid = gather_batch(valid.to(c.dtype)) > 0.5  # collectives take no bool
        chance = torch.log(c.shape[0] + valid.sum() - 1.0)
        loss = obj.info_nce(c, c_tilde, temperature=self.config.temperature, valid=valid)
        return loss, chance

    # ---------------------------------------------------------------- health
    @torch.no_grad()
    def diagnostics(self, batch: Batch, max_rows: int = 512) -> dict[str, Tensor]:
        """Figures behind `collapse_warnings`, on the first `max_rows` rows of a batch.

        `content_norm`: mean norm of the all-modality content mean. `content_effect`: how much
        each decoder's output changes when the content is swapped between samples (style
        kept), relative to how much the clean samples themselves differ, averaged over the
        modalities: about 0 when decoders ignore the content, so that cross-generated samples
        no longer follow their input.
        """
        names = self.check_subset(batch.modalities)
        rows = torch.arange(min(max_rows, len(batch.labels)), device=batch.labels.device)
        inputs = {m: batch.inputs[m][rows] for m in names}
        enc = self._encode_each(inputs, names)
        content = self._content_poe(enc, names, batch.mask.T[:, rows])[0]
        perm = torch.roll(torch.arange(len(rows), device=rows.device), 1)
        effects = []
        for m in names:
            target = batch.targets[m][rows].flatten(1)
            style = enc[m][0]
            out = self.decoders[m](torch.cat([style, content], -1)).flatten(1)
            swapped = self.decoders[m](torch.cat([style, content[perm]], -1)).flatten(1)
            spread = (target - target[perm]).abs().mean().clamp_min(1e-8)
            effects.append((out - swapped).abs().mean() / spread)
        return {
            "content_norm": content.norm(dim=-1).mean(),
            "content_effect": torch.stack(effects).mean(),
        }

    def collapse_warnings(self, figures: Mapping[str, float]) -> dict[str, str]:
        """Why this model looks collapsed, judged on logged running means (empty if healthy)."""
        reasons = {}
        kls = [figures.get(f"kl/{m}") for m in self.modalities]
        if all(kl is not None and kl < STYLE_KL_FLOOR for kl in kls):
            reasons["style_kl"] = (
                f"style KL below {STYLE_KL_FLOOR} nats for every modality "
                f"({', '.join(f'{k:.3g}' for k in kls)}): the style posteriors equal the prior "
                "and carry nothing (beta too high?)"
            )
        effect = figures.get("content_effect")
        if effect is not None and effect < CONTENT_EFFECT_FLOOR:
            reasons["content_ignored"] = (
                f"the decoders ignore the content: swapping it between samples changes their "
                f"output by {100 * effect:.1f} % of the samples' own difference (below "
                f"{100 * CONTENT_EFFECT_FLOOR:.0f} %), so cross-generated samples do not follow "
                f"the input (InfoNCE {figures.get('shared', float('nan')):.3g} against chance "
                f"{figures.get('shared_chance', float('nan')):.3g})"
            )
        return reasons

    def _tc_term(
        self, m: str, s: Tensor, c: Tensor, rows: Tensor, update: AuxiliaryUpdate | None
    ) -> tuple[Tensor, Tensor]:
        """Step D_m on detached samples of the `rows` (bool [B]) in subset A (when training),
        then estimate TC with the updated D_m; the estimate's gradient reaches s only.

        On the CPU the rows are selected, so that only they are computed. Elsewhere every row
        is computed and the others weigh 0: selecting them would make the host wait for the
        device to count them, every step (docs/performance.md, "GPU steps").
        """
        disc = self.discriminators[m]
        if select_rows(rows.device):
            s, c, weight = s[rows], c[rows], None
            if s.shape[0] < 2:
                zero = s.sum() * 0.0
                return zero, zero.detach()
            s_perm = obj.permute_batch(s.detach())
        else:
            weight = rows & (rows.sum() >= 2)  # as above: fewer than 2 rows estimate nothing
            s_perm = s.detach()[obj.permutation_within(weight)]
        if update is not None and torch.is_grad_enabled():
            n = s.shape[0]
            logits = disc(torch.cat([s.detach(), s_perm]), torch.cat([c, c]))
            disc_loss = obj.tc_discriminator_loss(logits[:n], logits[n:], weight)
            update("discriminators", disc_loss)
        else:
            with torch.no_grad():
                disc_loss = obj.tc_discriminator_loss(disc(s, c), disc(s_perm, c), weight)
        disc.requires_grad_(False)
        try:
            tc = obj.tc_estimate(disc(s, c), weight)
        finally:
            disc.requires_grad_(True)
        return tc, disc_loss.detach()

    # ---------------------------------------------------------------- generation
    def conditional_latents(
        self,
        given: dict[str, Tensor],
        names: tuple[str, ...],
        n_per_input: int,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, StyleOf]:
        """Content = PoE mean of `names`; a target's posterior style is its style mean (any
        modality in `given`, in the subset or not)."""
        enc = self._encode_each(given, names)
        content = self._content_poe(enc, names, None)[0].repeat_interleave(n_per_input, dim=0)

        def posterior_style(t: str) -> Tensor | None:
            if t not in given:
                return None
            s_mu = enc[t][0] if t in enc else self._encode_each(given, [t])[t][0]
            return s_mu.repeat_interleave(n_per_input, dim=0)

        return content, posterior_style


# The paper's settings (docs/protocol.md). Paired MNIST follows the released script
# mmmnist/run_jobs (beta 10, lr 1e-3), not the paper's text (beta 100, lr 3e-3), under which
# DMVAE collapses (docs/protocol.md, "Differences").
register_model(
    ModelSpec(
        "dmvae",
        DMVAE,
        DMVAEConfig,
        summary="shared content by a product of experts, learned contrastively (InfoNCE); "
        "modality-specific style kept apart by a total-correlation discriminator",
        paper=PAPER,
        presets={
            "mnist-svhn": Preset(
                train=dict(
                    epochs=50, batch_size=1024, lr=1e-3, anneal_epochs=5, likelihood_scale=0.1
                ),
                model=dict(
                    beta={"mnist": 100.0, "svhn": 50.0},
                    gamma=1000.0,
                    delta={"mnist": 500.0, "svhn": 100.0},
                ),
            ),
            "paired-mnist": Preset(
                train=dict(
                    epochs=300, batch_size=1024, lr=1e-3, anneal_epochs=50, likelihood_scale=0.1
                ),
                model=dict(beta=10.0, gamma=100.0, delta=100.0),
            ),
            # MoPoE's PolyMNIST schedule (job_polymnist) with the likelihood scale 0.1 that
            # DMVAE's weights were tuned against: at 0.75 its InfoNCE term stayed at chance
            # (docs/results.md, PolyMNIST)
            "polymnist": Preset(
                train=dict(epochs=300, batch_size=256, lr=5e-4, likelihood_scale=0.1),
                model=dict(beta=10.0, gamma=100.0, delta=100.0),
            ),
        },
        # added with the release's objective; files from before name neither (docs/protocol.md)
        unrecorded=("reconstruction", "init"),
    )
)
