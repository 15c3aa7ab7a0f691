"""The model registry: each model file registers its class, its config dataclass and the
settings that reproduce the paper on each experiment, once; everything else looks models up
here by name. A user's model named "package.module:attribute" or "path/to/file.py:attribute"
(a `ModelSpec`) is imported on first use and registered under that name, which config.json
keeps, so that evaluation and resumption find it again."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dmvae.errors import ConfigError
from dmvae.models.base import MultimodalVAE
from dmvae.usercode import import_attribute


@dataclass(frozen=True)
class Preset:
    """Settings of one model on one experiment: `train` and `model` override the defaults of
    `TrainSettings` and of the model's config dataclass."""

    train: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """A model as the registry knows it: its name, class and config dataclass, the paper's
    settings per experiment (`presets`), and how listings and reports show it.

    `unrecorded`: settings that config.json files without a version may lack although they
    change training (they were added later, and such files list only the preset's settings):
    those runs load with today's defaults for evaluation, but are not resumed."""

    name: str
    model: type[MultimodalVAE]
    config: type
    presets: Mapping[str, Preset] = field(default_factory=dict)
    unrecorded: tuple[str, ...] = ()
    title: str = ""
    """How reports spell the model (default: the name in capitals)."""
    summary: str = ""
    """One line: what the model is (`list_models`, `dmvae train --list`)."""
    paper: str = ""
    """The paper it comes from."""

    def preset(self, experiment: str) -> Preset:
        """The paper's settings on `experiment`; an experiment without one gets the defaults."""
        return self.presets.get(experiment, Preset())


MODELS: dict[str, ModelSpec] = {}


@dataclass(frozen=True)
class Listing:
    """A registered model or experiment as listings show it."""

    name: str
    summary: str
    paper: str


def list_models() -> list[Listing]:
    """The registered models by name, each with its one-line summary and its paper."""
    return [Listing(n, s.summary, s.paper) for n, s in sorted(MODELS.items())]


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
    """The registered model `name`, importing "module:attribute" names on first use."""
    if name not in MODELS and ":" in name:
        found = import_attribute(name, "model")
        if not isinstance(found, ModelSpec):
            kind = type(found).__name__
            what = f"the class {found.__name__}" if isinstance(found, type) else f"a {kind}"
            raise ConfigError(
                f"{name!r} names {what}, not a dmvae ModelSpec: name the "
                "ModelSpec(name, model class, config class) that describes your model"
            )
        title = found.title or found.name.upper()
        register_model(dataclasses.replace(found, name=name, title=title))
    if name not in MODELS:
        raise ConfigError(
            f"unknown model {name!r}: choose one of {sorted(MODELS)}, or name your own "
            "ModelSpec as 'package.module:attribute' or 'path/to/file.py:attribute'"
        )
    return MODELS[name]
