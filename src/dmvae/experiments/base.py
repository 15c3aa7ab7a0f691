"""What an experiment is: a data set, the networks and likelihoods of its modalities, and how
to score it; and the registry that finds experiments by name.

Adding a data set means writing one `Experiment` (see `dmvae.experiments.paired_mnist` or the
user-data ones in `dmvae.experiments.tensors`) and registering it. An experiment named
"package.module:attribute" or "path/to/file.py:attribute" is imported on first use, so a run
of the user's own experiment can be trained, resumed and evaluated from the command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dmvae.data.batch import MultimodalData
from dmvae.errors import ConfigError
from dmvae.likelihoods import Likelihood
from dmvae.models.registry import Listing
from dmvae.usercode import import_attribute


@dataclasses.dataclass(frozen=True)
class NoData:
    """Data settings of an experiment that has none (its data come with the object)."""


@dataclasses.dataclass(frozen=True)
class MissingModalities:
    """Data settings that train on incomplete data: each modality of each training sample is
    missing with probability `missing_rate`, drawn once with `missing_seed` (a sample keeps at
    least one modality; `MultimodalData.drop_modalities`). The test split stays complete."""

    missing_rate: float = 0.0
    missing_seed: int = 0

    def check_missing_rate(self) -> None:
        if not 0.0 <= self.missing_rate < 1.0:
            raise ConfigError(
                f"data.missing_rate must lie in [0, 1) (the chance that a modality of a training "
                f"sample is missing), got {self.missing_rate}"
            )


class Experiment:
    """Base class; a subclass sets `name` and `data_config` and implements `modalities`,
    `load`, `networks` and `likelihoods`.

    `data_config` is a frozen dataclass of the experiment's data settings: the "data" section
    of config.json and the `--set data.KEY=VALUE` keys. Every method receives an instance.
    """

    name: str = ""
    summary: str = ""
    """One line: what the data are (`list_experiments`, `dmvae train --list`)."""
    paper: str = ""
    """The paper the benchmark comes from (empty for your own data)."""
    data_config: type = NoData

    def modalities(self, data: Any) -> tuple[str, ...]:
        raise NotImplementedError

    def load(self, data: Any, split: str, device: torch.device | str = "cpu") -> MultimodalData:
        """The "train" or "test" split, on `device`."""
        raise NotImplementedError

    def dataset(self, data: Any, split: str, device: torch.device | str = "cpu") -> MultimodalData:
        """The split as training and evaluation use it: `load`, with the modalities that data
        settings of `MissingModalities` make missing dropped from the training split."""
        loaded = self.load(data, split, device)
        if split == "train" and isinstance(data, MissingModalities) and data.missing_rate > 0:
            return loaded.drop_modalities(data.missing_rate, data.missing_seed)
        return loaded

    def networks(
        self, data: Any, latent_dim: int
    ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        """One encoder (input -> Gaussian mean, log-variance over `latent_dim`) and one decoder
        (latent -> likelihood parameter) per modality."""
        raise NotImplementedError

    def likelihoods(self, data: Any, scale: float) -> dict[str, Likelihood]:
        """One likelihood per modality; `scale` is the run's `train.likelihood_scale`."""
        raise NotImplementedError

    def classifiers(
        self, data: Any, device: torch.device, progress: bool = True
    ) -> dict[str, nn.Module]:
        """Per modality a network from a batch of that modality to class logits, for coherence
        and classifier-feature FID; empty when the experiment has none. `progress`: whether
        training one on first use may show a bar."""
        return {}

    def classifier_kinds(self, data: Any) -> dict[str, str]:
        """Per modality the name of its classifier (and of its feature statistics): modalities
        with the same kind share one classifier and one cache of real-data statistics."""
        return {m: f"{self.name}-{m}" for m in self.modalities(data)}

    def data_root(self, data: Any) -> Path | None:
        """The folder the data live in (caches of pairings and statistics go beside them)."""
        return None

    def check(self, data: Any) -> None:
        """Raise a `DmvaeError` for data settings that would fail later (a missing split, a
        name that is not a modality): the trainer calls it before anything is written."""


def store_absolute(data: Any, name: str) -> None:
    """Make the folder setting `name` of a frozen data config absolute (None stays None): a
    run's config.json then finds its data from whatever folder it is evaluated or resumed in."""
    value = getattr(data, name)
    if value:
        object.__setattr__(data, name, str(Path(value).expanduser().absolute()))


EXPERIMENTS: dict[str, Experiment] = {}


def list_experiments() -> list[Listing]:
    """The registered experiments by name, each with its one-line summary and its paper."""
    return [Listing(n, x.summary, x.paper) for n, x in sorted(EXPERIMENTS.items())]


def register_experiment(experiment: Experiment) -> Experiment:
    """Make `experiment` available by its name to `RunConfig`, the trainer and `load_run`."""
    if not experiment.name:
        raise ConfigError("an experiment needs a name")
    if not (dataclasses.is_dataclass(experiment.data_config)):
        raise TypeError(f"{experiment.name}: data_config must be a dataclass")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def get_experiment(name: str) -> Experiment:
    """The registered experiment `name`, importing "module:attribute" names on first use."""
    if name not in EXPERIMENTS and ":" in name:
        found = import_attribute(name)
        if not isinstance(found, Experiment):
            raise ConfigError(f"{name!r} is a {type(found).__name__}, not a dmvae Experiment")
        if found.name != name:
            found = _renamed(found, name)
        register_experiment(found)
    if name not in EXPERIMENTS:
        raise ConfigError(
            f"unknown experiment {name!r}: choose one of {sorted(EXPERIMENTS)}, or name your "
            "own as 'package.module:attribute' or 'path/to/file.py:attribute'"
        )
    return EXPERIMENTS[name]


def _renamed(experiment: Experiment, name: str) -> Experiment:
    """The experiment under the name it was found by, so that config.json finds it again."""
    clone = object.__new__(type(experiment))
    clone.__dict__.update(experiment.__dict__)
    clone.name = name
    return clone
