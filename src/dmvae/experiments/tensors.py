"""Your own modalities: an experiment over tensors you hold (`TensorExperiment`, from Python) or
over a folder of `.npy`/`.pt` files (`folder`, from the command line).

Any registered model trains on them with the library's trainer (checkpoints, resume, logs,
collapse warning) and `dmvae evaluate` scores them: latent probes on your labels, the ex-post
GMM, and coherence when you give classifiers. Networks default to MLPs sized from the data
(`default_networks`); pass your own for anything larger. docs/own-data.md walks through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmvae import nets
from dmvae.data.batch import MultimodalData
from dmvae.errors import ConfigError, DataError
from dmvae.experiments.base import Experiment, NoData, register_experiment
from dmvae.likelihoods import KINDS, Likelihood

Networks = Callable[[int], tuple[Mapping[str, nn.Module], Mapping[str, nn.Module]]]
HIDDEN = (400, 400)


def default_networks(
    data: MultimodalData, likelihoods: Mapping[str, Likelihood], latent_dim: int
) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """An MLP encoder and decoder per modality, sized from the data. Decoders end in a sigmoid
    where the likelihood needs values in [0, 1] (Bernoulli, or images scaled from uint8)."""
    encoders, decoders = {}, {}
    for m in data.modalities:
        shape = data.shape(m)
        unit = likelihoods[m].kind == "bernoulli" or data.images[m].dtype == torch.uint8
        encoders[m] = nets.MLPEncoder(shape, HIDDEN, latent_dim)
        decoders[m] = nets.MLPDecoder(latent_dim, HIDDEN[::-1], shape, sigmoid=unit)
    return encoders, decoders


def _likelihoods(
    names: tuple[str, ...], given: Mapping[str, Likelihood | str], scale: float
) -> dict[str, Likelihood]:
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(f"likelihoods name unknown modalities {unknown}; the data have {names}")
    out = {}
    for m in names:
        lik = given.get(m, "laplace")
        out[m] = lik if isinstance(lik, Likelihood) else Likelihood(lik, scale)
    return out


class TensorExperiment(Experiment):
    """An experiment over data you already hold as `MultimodalData` (or tensors: see
    `MultimodalData.from_tensors`).

    `likelihoods`: per modality a `Likelihood` or a kind ("laplace", "bernoulli"); default
    Laplace with the run's `train.likelihood_scale`. `networks(latent_dim)` returns your
    encoders and decoders; default `default_networks`. `classifiers`: per modality a network
    from a batch to class logits, for coherence (or a function returning them, called when
    first needed: classifiers you train on the spot). Register it (`register_experiment`) before
    training; to evaluate or resume from the command line, name it as "module:attribute".
    """

    data_config = NoData

    def __init__(
        self,
        name: str,
        train: MultimodalData,
        test: MultimodalData,
        *,
        likelihoods: Mapping[str, Likelihood | str] | None = None,
        networks: Networks | None = None,
        classifiers: Mapping[str, nn.Module] | Callable[[], Mapping[str, nn.Module]] | None = None,
    ) -> None:
        if train.modalities != test.modalities:
            raise ConfigError(
                f"train and test name different modalities: {train.modalities} vs {test.modalities}"
            )
        for m in train.modalities:
            if train.shape(m) != test.shape(m):
                raise ConfigError(
                    f"modality {m!r} has shape {train.shape(m)} in train, {test.shape(m)} in test"
                )
        self.name, self.train, self.test = name, train, test
        self.given_likelihoods = dict(likelihoods or {})
        _likelihoods(train.modalities, self.given_likelihoods, 1.0)
        self.make_networks = networks
        self.given_classifiers = classifiers or {}

    def modalities(self, data: Any) -> tuple[str, ...]:
        return self.train.modalities

    def load(self, data: Any, split: str, device: torch.device | str = "cpu") -> MultimodalData:
        if split not in ("train", "test"):
            raise ConfigError(f"unknown split {split!r}: use 'train' or 'test'")
        return (self.train if split == "train" else self.test).to(device)

    def likelihoods(self, data: Any, scale: float) -> dict[str, Likelihood]:
        return _likelihoods(self.train.modalities, self.given_likelihoods, scale)

    def networks(
        self, data: Any, latent_dim: int
    ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        if self.make_networks is not None:
            encoders, decoders = self.make_networks(latent_dim)
            return dict(encoders), dict(decoders)
        return default_networks(self.train, self.likelihoods(data, 1.0), latent_dim)

    def classifiers(
        self, data: Any, device: torch.device, progress: bool = True
    ) -> dict[str, nn.Module]:
        given = self.given_classifiers
        given = given() if callable(given) else given
        unknown = sorted(set(given) - set(self.train.modalities))
        if unknown:
            raise ConfigError(f"classifiers name unknown modalities {unknown}")
        return {m: c.to(device).eval() for m, c in given.items()}


@dataclass(frozen=True)
class FolderData:
    """`path` holds train/ and test/, each with one `<modality>.npy` or `.pt` file per
    modality and optionally `labels.npy` / `labels.pt`. `likelihoods` maps modality names to
    "laplace" (default) or "bernoulli"; `noise_std` adds N(0, std^2) noise to encoder inputs."""

    path: str = ""
    likelihoods: dict[str, str] = field(default_factory=dict)
    noise_std: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("the folder experiment needs data.path: --set data.path=DIR")
        bad = {m: k for m, k in self.likelihoods.items() if k not in KINDS}
        if bad:
            raise ConfigError(f"unknown likelihoods {bad}: choose from {list(KINDS)}")


class FolderExperiment(Experiment):
    """Your modalities as files: `dmvae train --experiment folder --set data.path=DIR`."""

    name = "folder"
    data_config = FolderData

    def __init__(self) -> None:
        self._cache: dict[tuple, MultimodalData] = {}

    def load(
        self, data: FolderData, split: str, device: torch.device | str = "cpu"
    ) -> MultimodalData:
        if split not in ("train", "test"):
            raise ConfigError(f"unknown split {split!r}: use 'train' or 'test'")
        key = (str(Path(data.path).resolve()), split, tuple(sorted(data.noise_std.items())))
        if key not in self._cache:  # the files are read once per folder and noise setting
            self._cache[key] = read_folder(Path(data.path) / split, data.noise_std)
        return self._cache[key].to(device)

    def modalities(self, data: FolderData) -> tuple[str, ...]:
        return self.load(data, "train").modalities

    def likelihoods(self, data: FolderData, scale: float) -> dict[str, Likelihood]:
        return _likelihoods(self.modalities(data), data.likelihoods, scale)

    def networks(
        self, data: FolderData, latent_dim: int
    ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        return default_networks(self.load(data, "train"), self.likelihoods(data, 1.0), latent_dim)


def read_folder(folder: Path, noise_std: Mapping[str, float] | None = None) -> MultimodalData:
    """One split of a data folder (see `FolderData`), checked for matching rows and types."""
    if not folder.is_dir():
        raise DataError(
            f"no folder {folder}: a data folder holds train/ and test/ with one <modality>.npy "
            "or .pt file per modality (and optionally labels.npy)"
        )
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npy", ".pt"))
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise DataError(f"{folder}: {twice} exist as both .npy and .pt; keep one of each")
    tensors = {p.stem: _read_tensor(p) for p in files}
    labels = tensors.pop("labels", None)
    if not tensors:
        raise DataError(f"{folder} has no <modality>.npy or .pt files")
    unknown = sorted(set(noise_std or {}) - set(tensors))
    if unknown:
        raise ConfigError(
            f"data.noise_std names unknown modalities {unknown}; {folder} has {sorted(tensors)}"
        )
    try:
        return MultimodalData.from_tensors(tensors, labels, noise_std)
    except (TypeError, ValueError) as err:
        raise DataError(f"{folder}: {err}") from err


def _read_tensor(path: Path) -> Tensor:
    try:
        if path.suffix == ".npy":
            return torch.from_numpy(np.load(path, allow_pickle=False))
        value = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # numpy and torch raise many kinds for unreadable files
        raise DataError(
            f"cannot read {path} ({err}); write it with numpy.save or torch.save"
        ) from err
    if not isinstance(value, Tensor):
        raise DataError(f"{path} holds a {type(value).__name__}, not one tensor")
    return value


FOLDER = register_experiment(FolderExperiment())
