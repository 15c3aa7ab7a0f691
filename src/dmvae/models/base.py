"""The interface every multimodal model of the library implements.

Evaluation, training and the CLI talk to models only through these methods, so a user's own
model (or their own encoders and decoders inside ours) works with the whole tool chain.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from dmvae import objectives as obj
from dmvae.data.batch import Batch, encoder_input
from dmvae.data.signature import Signature
from dmvae.densities import Density, Factorised
from dmvae.errors import ConfigError, DataError

Style = Literal["prior", "posterior"]
Latent = Literal["mean", "sample"]
"""How `impute` sets the shared latent: the posterior's mean, or a sample of it."""
ImputedStyle = Literal["prior", "mean"]
"""How `impute` sets a missing target's own latent (style): a prior draw, or the prior's mean."""


AuxiliaryUpdate = Callable[[str, Tensor], None]
"""Steps the optimiser of the named auxiliary network on the given loss (see `loss`)."""


class ContentSampler(Protocol):
    """Draws `n` samples of a model's shared latent (e.g. N(0, I) or an ex-post GMM)."""

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...


class MultimodalVAE(nn.Module, metaclass=abc.ABCMeta):
    """Base class: a generative model over named modalities with a shared latent.

    Subclasses set `modalities` and `shared_dim` and implement the abstract methods (`loss`,
    `encode`, `conditional_generate`): a class that lacks one fails when it is built, not at
    its first training step or evaluation.
    `inputs` arguments are mappings from modality name to a float tensor [B, ...]; modalities
    not named in `subset` are ignored (treated as missing).
    """

    modalities: tuple[str, ...]
    shared_dim: int
    config: Any
    # Whether the latent has modality-specific factors besides the shared part (DMVAE's style):
    # evaluation then draws them from their prior and can probe them (`SharedPrivateVAE`).
    has_style: bool = False
    style_dim: int = 0

    # The model's config dataclass (registered beside it); `config=None` means its defaults.
    config_class: type | None = None
    # The `latent` options `impute` offers, its default first; the mapping onto
    # `conditional_generate`'s `style` is `imputed`'s.
    latent_choices: tuple[Latent, ...] = ("sample", "mean")
    # Shapes and dtypes of the training data (`load_run` sets them from the checkpoint): the
    # inference methods check user inputs against them; None skips those checks.
    data_signature: Signature | None = None

    def __init__(
        self,
        encoders: Mapping[str, nn.Module] | None = None,
        decoders: Mapping[str, nn.Module] | None = None,
        likelihoods: Mapping | None = None,
        config: Any = None,
    ) -> None:
        """A model built from one encoder, decoder and likelihood per modality (all the library's
        models); one with a structure of its own passes none and sets `modalities` itself.
        Subclasses build their own parts in `setup`, which runs last."""
        super().__init__()
        if config is None and self.config_class is not None:
            config = self.config_class()
        self.config = config
        if encoders is not None or decoders is not None or likelihoods is not None:
            self.set_networks(encoders or {}, decoders or {}, likelihoods or {})
        self.setup()

    def setup(self) -> None:
        """Build what the model adds to its networks (dimensions, discriminators, priors)."""

    def check_subset(self, subset: Sequence[str] | None) -> tuple[str, ...]:
        names = self.modalities if subset is None else tuple(subset)
        if not names:
            raise ValueError("the subset of modalities is empty: name at least one modality")
        unknown = [m for m in names if m not in self.modalities]
        if unknown:
            raise KeyError(f"unknown modalities {unknown}; this model has {list(self.modalities)}")
        return names

    def generation_subsets(
        self, given: Mapping[str, Tensor], targets: Sequence[str], subset: Sequence[str] | None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The checked conditioning subset (default: every modality in `given`) and targets of
        `conditional_generate`."""
        names = self.check_subset(subset if subset is not None else tuple(given))
        return names, self.check_subset(targets)

    def set_networks(
        self,
        encoders: Mapping[str, nn.Module],
        decoders: Mapping[str, nn.Module],
        likelihoods: Mapping,
    ) -> None:
        """Register one encoder, decoder and likelihood per modality (same names in each)."""
        self.modalities = check_modalities(
            ("encoders", encoders), ("decoders", decoders), ("likelihoods", likelihoods)
        )
        self.encoders = nn.ModuleDict({m: encoders[m] for m in self.modalities})
        self.decoders = nn.ModuleDict({m: decoders[m] for m in self.modalities})
        self.likelihoods = {m: likelihoods[m] for m in self.modalities}

    def encode_modality(self, name: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """Modality `name`'s encoder on `x`; run once per input tensor inside `reuse_encodings`."""
        cache = getattr(self, "_encodings", None)
        if cache is not None and name in cache and cache[name][0] is x:
            return cache[name][1]
        out = run_encoder(name, self.encoders[name], x)
        if cache is not None:
            cache[name] = (x, out)
        return out

    @contextmanager
    def reuse_encodings(self) -> Iterator[None]:
        """Evaluation conditions one batch on many subsets: inside this block each modality is
        encoded once per batch instead of once per subset. For inference (outputs are shared)."""
        self._encodings: dict[str, tuple[Tensor, tuple[Tensor, Tensor]]] | None = {}
        try:
            yield
        finally:
            self._encodings = None

    def stack_experts(
        self, inputs: Mapping[str, Tensor], names: Sequence[str]
    ) -> tuple[Tensor, Tensor]:
        """The encoders' two outputs for the modalities `names`, stacked [E, B, D] each."""
        firsts, seconds = [], []
        for m in names:
            if m not in inputs:
                raise KeyError(f"modality {m!r} is in the subset but not in the inputs")
            first, second = self.encode_modality(m, inputs[m])
            firsts.append(first)
            seconds.append(second)
        return torch.stack(firsts), torch.stack(seconds)

    def auxiliary_networks(self) -> dict[str, nn.Module]:
        """Networks trained by an objective of their own (DMVAE's discriminators), by the name
        under which `loss` hands their losses to `update_auxiliary`; the main optimiser leaves
        their parameters alone."""
        return {}

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """New optimisers for `auxiliary_networks`, by the same names; the trainer owns them,
        checkpoints them and steps them when `loss` reports their losses."""
        return {}

    def main_parameters(self) -> list[nn.Parameter]:
        """Parameters of the main objective (all but those of `auxiliary_networks`)."""
        aux = {id(p) for net in self.auxiliary_networks().values() for p in net.parameters()}
        return [p for p in self.parameters() if id(p) not in aux]

    @abc.abstractmethod
    def loss(
        self,
        batch: Batch,
        kl_weight: float = 1.0,
        update_auxiliary: AuxiliaryUpdate | None = None,
    ) -> dict[str, Tensor]:
        """Named loss terms for one batch; `"loss"` is the total to minimise.

        `kl_weight` is the annealing factor in [0, 1] the trainer sets per iteration. Models
        with auxiliary networks call `update_auxiliary(name, aux_loss)` where their training
        step belongs within the pass (the trainer's `TrainStep` passes one that steps the named
        optimiser); without it, `loss` changes no weights.
        """

    def diagnostics(self, batch: Batch) -> dict[str, Tensor]:
        """Figures the trainer logs beside the loss terms (e.g. whether decoders use the shared
        latent); called under no_grad every `log_every` steps."""
        return {}

    def collapse_warnings(self, figures: Mapping[str, float]) -> dict[str, str]:
        """Reasons (by kind) to believe training collapsed, judged on the logged running means
        (loss terms and `diagnostics`); the trainer warns once per kind. Empty if healthy."""
        return {}

    @abc.abstractmethod
    def encode(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of the shared posterior given the modalities in `subset`."""

    def embed(
        self,
        inputs: dict[str, Tensor],
        subset: Sequence[str] | None = None,
        with_style: bool = False,
    ) -> Tensor:
        """The representation used for latent classification (posterior mean of the shared part);
        models with style append the style means of `subset` when `with_style`."""
        if with_style and not self.has_style:
            raise ValueError(f"{type(self).__name__} has no style to append; drop with_style")
        return self.encode(inputs, subset)[0]

    def ex_post_embeddings(self, inputs: dict[str, Tensor]) -> Tensor:
        """Training-set embeddings an ex-post density (GMM) is fitted on."""
        return self.embed(inputs, self.modalities)

    def decode(self, latents: dict[str, Tensor]) -> dict[str, Tensor]:
        """Decoded means (Laplace location or Bernoulli probability) per modality in `latents`."""
        return {m: self.decoders[m](z) for m, z in latents.items()}

    def reconstruct(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        """Decoded means of the modalities in `inputs` given those in `subset`, each with its
        style from its own posterior (models with modality-specific latents)."""
        targets = tuple(m for m in self.modalities if m in inputs)
        return self.conditional_generate(inputs, targets, subset, style="posterior")

    def generate(
        self,
        n: int,
        content_sampler: ContentSampler | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Unconditional samples (decoded means) of every modality, `n` each, decoding one
        shared latent from `content_sampler` (default: the model's prior)."""
        z = (content_sampler or self.prior_sampler())(n, generator)
        return self.decode({m: z for m in self.modalities})

    @abc.abstractmethod
    def conditional_generate(
        self,
        given: dict[str, Tensor],
        targets: Sequence[str],
        subset: Sequence[str] | None = None,
        n_per_input: int = 1,
        style: Style = "prior",
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Decoded means of `targets` given the modalities `subset` of `given`.

        Output rows are input-major: row `i * n_per_input + k` is sample k for input i.
        `style="prior"` draws modality-specific factors from their prior (DMVAE), while
        `"posterior"` samples the latent from the posterior (what the baselines do).
        """

    # ------------------------------------------------------ inference on user tensors
    @torch.no_grad()
    def impute(
        self,
        given: Mapping[str, Tensor],
        to: str | Sequence[str],
        per_input: int = 1,
        latent: Latent | None = None,
        style: ImputedStyle | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """The missing modalities `to`, generated from the raw tensors `given` (uint8 images or
        floats, as the training data were), `per_input` samples per input row, input-major.

        `latent`: the shared latent is the posterior's "mean" or a "sample" of it (default:
        `latent_choices[0]`, the model's usual choice). `style` (models with modality-specific
        latents only): each target's own latent is drawn from the "prior" (default) or set to
        its mean. Returns decoded means, images in [0, 1].
        """
        targets = (to,) if isinstance(to, str) else tuple(to)
        inputs = self.prepare_inputs(given)
        self.check_names(targets, "target")
        if not targets:
            raise ConfigError("no target modality: name at least one to generate")
        both = [t for t in targets if t in inputs]
        if both:
            raise ConfigError(
                f"modalities {both} are both given and targets: drop them from the given ones "
                "or from the targets (imputation generates missing modalities)"
            )
        if per_input < 1:
            raise ConfigError(f"per_input must be at least 1, got {per_input}")
        name = type(self).__name__
        latent = latent or self.latent_choices[0]
        if latent not in self.latent_choices:
            raise ConfigError(
                f"{name} cannot impute with latent={latent!r}: it offers "
                f"{list(self.latent_choices)}; pick one of those"
            )
        if style is not None and not self.has_style:
            raise ConfigError(f"{name} has no modality-specific style to set: drop style (--style)")
        if style not in (None, "prior", "mean"):
            hint = (
                " (a target's posterior needs the target itself, which imputation does not have)"
                if style == "posterior"
                else ""
            )
            raise ConfigError(f"unknown style {style!r}{hint}: use 'prior' or 'mean'")
        return self.imputed(inputs, targets, per_input, latent, style or "prior", generator)

    def imputed(
        self,
        inputs: dict[str, Tensor],
        targets: tuple[str, ...],
        per_input: int,
        latent: Latent,
        style: ImputedStyle,
        generator: torch.Generator | None,
    ) -> dict[str, Tensor]:
        """`impute` on checked encoder inputs, through `conditional_generate`: its "posterior"
        samples the latent, "prior" takes the mean (`SharedPrivateVAE` sets style instead)."""
        mode = "posterior" if latent == "sample" else "prior"
        return self.conditional_generate(inputs, targets, None, per_input, mode, generator)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        content: ContentSampler | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """`n` joint samples of every modality (decoded means, images in [0, 1]): the shared
        latent from `content` (default: the prior; an ex-post GMM, `inference.saved_gmm`), any
        style from its prior."""
        if n < 1:
            raise ConfigError(f"the number of samples must be at least 1, got {n}")
        return self.generate(n, content, generator)

    @torch.no_grad()
    def represent(self, given: Mapping[str, Tensor], with_style: bool = False) -> dict[str, Tensor]:
        """Per input row of the raw tensors `given`, the shared representation ("shared": the
        posterior mean, `embed`'s) and with `with_style` each given modality's style mean
        ("style/<modality>")."""
        inputs = self.prepare_inputs(given)
        if with_style and not self.has_style:
            raise ConfigError(
                f"{type(self).__name__} has no modality-specific style: drop with_style "
                "(--with-style)"
            )
        names = tuple(inputs)
        emb = self.embed(inputs, names, with_style)
        out = {"shared": emb[:, : self.shared_dim]}
        if with_style:
            styles = emb[:, self.shared_dim :].split(self.style_dim, dim=1)
            out.update({f"style/{m}": s for m, s in zip(names, styles, strict=True)})
        return out

    def prepare_inputs(self, given: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Raw user tensors as encoder inputs on the model's device, in the model's modality
        order: names, dtypes and shapes checked against `data_signature`, rows matched."""
        if not given:
            raise ConfigError(f"no input given: give at least one of {list(self.modalities)}")
        self.check_names(tuple(given), "given")
        device = next(self.parameters()).device
        inputs = {}
        for m in self.modalities:
            if m not in given:
                continue
            x = torch.as_tensor(given[m])
            if self.data_signature is not None and m in self.data_signature:
                x = self.data_signature[m].check(m, x)
            inputs[m] = encoder_input(x.to(device))
        rows = {m: int(x.shape[0]) for m, x in inputs.items()}
        if len(set(rows.values())) > 1:
            raise DataError(
                f"the given modalities have different numbers of rows {rows}: "
                "give one row per sample in each"
            )
        return inputs

    def check_names(self, names: Sequence[str], what: str) -> None:
        """Refuse modality names this model does not have (`what`: where they were named)."""
        unknown = [m for m in names if m not in self.modalities]
        if unknown:
            raise ConfigError(
                f"unknown {what} modalities {unknown}: this model has {list(self.modalities)}"
            )

    def prior_sampler(self) -> ContentSampler:
        """Samples [n, shared_dim] of the shared latent from the model's prior."""
        return self.shared_prior().sample

    # ------------------------------------------------ densities, for log-likelihoods
    def shared_prior(self) -> Density:
        """p(z) of the shared latent: N(0, I) unless a model says otherwise."""
        return Factorised.standard_normal(self.shared_dim, next(self.parameters()))

    def shared_posterior(self, inputs: Mapping[str, Tensor], names: Sequence[str]) -> Density:
        """q(z | x_names), the proposal of importance-sampled log-likelihoods: the Gaussian that
        `encode` returns, unless the model's posterior is a mixture (MMVAE, MoPoE, MMVAE+)."""
        mu, logvar = self.encode(dict(inputs), self.check_subset(names))
        return Factorised.normal(mu, logvar)

    def decoder_latents(
        self,
        inputs: Mapping[str, Tensor],
        target: str,
        shared: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """What decoder `target` takes for shared samples [k, B, D], and log p(u) - log q(u) [k, B]
        of any latent u of its own drawn here (none in a model with one shared latent: 0)."""
        return shared, shared.new_zeros(shared.shape[:2])


class GaussianPosteriorVAE(MultimodalVAE):
    """A model whose `encode` is its Gaussian posterior given any subset of modalities (MVAE's
    and MoPoE's products of experts): it generates by decoding a sample of that posterior, or
    its mean, since it has no modality-specific latent to draw from a prior. Its config names
    the latent's width `latent_dim`."""

    def setup(self) -> None:
        self.shared_dim = self.config.latent_dim

    def conditional_generate(
        self,
        given: dict[str, Tensor],
        targets: Sequence[str],
        subset: Sequence[str] | None = None,
        n_per_input: int = 1,
        style: Style = "posterior",
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """z sampled from the subset's posterior for "posterior", its mean for "prior"."""
        names, targets = self.generation_subsets(given, targets, subset)
        mu, logvar = self.encode(given, names)
        mu = mu.repeat_interleave(n_per_input, dim=0)
        logvar = logvar.repeat_interleave(n_per_input, dim=0)
        z = obj.reparameterize(mu, logvar, generator) if style == "posterior" else mu
        return {t: self.decoders[t](z) for t in targets}

    def reconstruct(
        self, inputs: dict[str, Tensor], subset: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        """Decoded posterior means of the modalities in `inputs`."""
        targets = [m for m in self.modalities if m in inputs]
        return self.conditional_generate(inputs, targets, subset, style="prior")


StyleOf = Callable[[str], Tensor | None]
"""A target's style sampled or taken from its own posterior, [n, style_dim], or None when
the inputs do not give that posterior (`SharedPrivateVAE.conditional_latents`)."""


class SharedPrivateVAE(MultimodalVAE):
    """A model with a shared latent and one private latent (style) per modality, each decoder
    taking concat(style, shared) (DMVAE's content and style, MMVAE+'s z and w_m): generation
    draws the shared latent by the model's own rule and each target's style from its prior,
    its own posterior, or as given, here once for both.

    Subclasses set `style_dim` and implement `conditional_latents` and `style_posterior`; they
    override `style_prior` and `shared_prior` when their priors are not N(0, I).
    """

    has_style = True

    def style_prior(self, modality: str) -> Density:
        """p(w_m) of a modality's style: N(0, I) unless a model says otherwise."""
        return Factorised.standard_normal(self.style_dim, next(self.parameters()))

    def style_prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """`n` draws [n, style_dim] of one modality's style from its prior (every modality's
        style prior is the same in DMVAE and MMVAE+); sample grids fix one such style per row."""
        return self.style_prior(self.modalities[0]).sample(n, generator)

    @abc.abstractmethod
    def style_posterior(self, inputs: Mapping[str, Tensor], modality: str) -> Density:
        """q(w_m | x_m) of one modality's style."""

    def decoder_latents(
        self,
        inputs: Mapping[str, Tensor],
        target: str,
        shared: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """concat(w_t, z) with the target's style drawn from its own posterior q(w_t | x_t) and
        weighted by p(w_t) / q(w_t | x_t): the style is marginalised by importance sampling,
        since the modalities a likelihood conditions on say nothing of it."""
        q = self.style_posterior(inputs, target)
        w = q.sample(shared.shape[0], generator)
        return torch.cat([w, shared], dim=-1), self.style_prior(target).log_prob(w) - q.log_prob(w)

    @abc.abstractmethod
    def conditional_latents(
        self,
        given: dict[str, Tensor],
        names: tuple[str, ...],
        n_per_input: int,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, StyleOf]:
        """The shared latent of each output row given the modalities `names` of `given`
        ([B * n_per_input, shared_dim], input-major), and each target's posterior style."""

    def generate(
        self,
        n: int,
        content_sampler: ContentSampler | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """The shared latent from `content_sampler` (default: the prior), each modality's style
        from its prior."""
        z = (content_sampler or self.prior_sampler())(n, generator)
        return self.decode(
            {
                m: torch.cat([self.style_prior_sample(n, generator).to(z), z], dim=-1)
                for m in self.modalities
            }
        )

    def conditional_generate(
        self,
        given: dict[str, Tensor],
        targets: Sequence[str],
        subset: Sequence[str] | None = None,
        n_per_input: int = 1,
        style: Style = "prior",
        generator: torch.Generator | None = None,
        styles: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """The shared latent of `subset` (`conditional_latents`); a target's style from its
        prior, or with `style="posterior"`, from its own posterior where the inputs give it.

        `styles[t]` ([n_per_input, style_dim]) fixes the k-th style of target t for every input,
        so that each column of a grid shares one style (the paper's Figure 2).
        """
        names, targets = self.generation_subsets(given, targets, subset)
        shared, posterior_style = self.conditional_latents(given, names, n_per_input, generator)
        n = shared.shape[0]
        out = {}
        for t in targets:
            w = None
            if styles is not None and t in styles:
                w = styles[t].to(shared).repeat(n // n_per_input, 1)
            elif style == "posterior":
                w = posterior_style(t)
            if w is None:
                w = self.style_prior_sample(n, generator).to(shared)
            out[t] = self.decoders[t](torch.cat([w, shared], dim=-1))
        return out

    def imputed(
        self,
        inputs: dict[str, Tensor],
        targets: tuple[str, ...],
        per_input: int,
        latent: Latent,
        style: ImputedStyle,
        generator: torch.Generator | None,
    ) -> dict[str, Tensor]:
        """`impute` on checked encoder inputs: the model chooses its shared latent itself
        (`latent_choices` has one entry), and each target's style is a prior draw or the
        prior's mean (zero)."""
        styles = None
        if style == "mean":
            device = next(self.parameters()).device
            styles = {t: torch.zeros(per_input, self.style_dim, device=device) for t in targets}
        return self.conditional_generate(
            inputs, targets, None, per_input, "prior", generator, styles=styles
        )


def run_encoder(name: str, encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Call `encoder` on modality `name`, turning a shape mismatch into an error that names it."""
    try:
        return encoder(x)
    except RuntimeError as err:
        if "shape" not in str(err) and "size" not in str(err):
            raise
        raise ValueError(
            f"modality {name!r}: the encoder cannot take input of shape {tuple(x.shape)} ({err}); "
            "pass images shaped like the data the model was built for"
        ) from err


def check_modalities(*named: tuple[str, Mapping[str, object]]) -> tuple[str, ...]:
    """The common modality names of several mappings, in the first one's order."""
    first = tuple(named[0][1])
    if not first:
        raise ValueError("a model needs at least one modality")
    for what, mapping in named[1:]:
        if set(mapping) != set(first):
            raise ValueError(
                f"{what} name modalities {sorted(mapping)} but {named[0][0]} name {sorted(first)}; "
                "give every modality an encoder, a decoder and a likelihood"
            )
    return first
