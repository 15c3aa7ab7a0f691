"""The model registry: each model file registers its class, its config dataclass and the
settings that reproduce the paper on each experiment, once; everything else looks models up
here by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dmvae.errors import ConfigError
from dmvae.models.base import MultimodalVAE


@dataclass(frozen=True)
class Preset:
    """Settings of one model on one experiment: `train` and `model` override the defaults of
    `TrainSettings` and of the model's config dataclass."""

    train: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """`unrecorded`: settings that config.json files without a version may lack although they
    change training (they were added later, and such files list only the preset's settings):
    those runs load with today's defaults for evaluation, but are not resumed."""

    name: str
    model: type[MultimodalVAE]
    config: type
    presets: Mapping[str, Preset] = field(default_factory=dict)
    unrecorded: tuple[str, ...] = ()
    title: str = ""
    """How reports spell the model (default: the name in capitals)."""

    def preset(self, experiment: str) -> Preset:
        """The paper's settings on `experiment`; an experiment without one gets the defaults."""
        return self.presets.get(experiment, Preset())


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Make a model available by name to the trainer, the CLI and `load_run`."""
    if spec.name in MODELS and MODELS[spec.name].model is not spec.model:
        raise ConfigError(f"a different model is already registered as {spec.name!r}")
    if not hasattr(spec.config, "latent_dim"):
        raise TypeError(f"{spec.config.__name__} must define latent_dim (the networks' width)")
    MODELS[spec.name] = spec
    return spec


def model_title(name: str) -> str:
    """The model's name as tables and plots show it ("MoPoE"); unregistered names in capitals."""
    spec = MODELS.get(name)
    return (spec.title if spec is not None else "") or name.upper()


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}: choose one of {sorted(MODELS)}")
    return MODELS[name]
