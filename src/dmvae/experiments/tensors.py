"""Your own modalities: an experiment over tensors you hold (`TensorExperiment`, from Python) or
over a folder of `.npy`/`.pt` files (`folder`, from the command line).

Any registered model trains on them with the library's trainer (checkpoints, resume, logs,
collapse warning) and `dmvae evaluate` scores them: latent probes on your labels, the ex-post
GMM, and coherence when you give classifiers: your own networks, "module:attribute" names, or
"cnn", the library's small CNN trained on your labelled images (`resolve_classifiers`).
Networks default to MLPs sized from the data (`default_networks`); pass your own for anything
larger. Everything a run names is checked before it trains (`Experiment.check`).
docs/own-data.md walks through it and lists the defaults.
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
from dmvae.experiments.base import (
    Experiment,
    MissingModalities,
    NoData,
    register_experiment,
    store_absolute,
)
from dmvae.likelihoods import KINDS, Likelihood
from dmvae.usercode import import_attribute

Networks = Callable[[int], tuple[Mapping[str, nn.Module], Mapping[str, nn.Module]]]
ClassifierSpec = nn.Module | str
HIDDEN = (400, 400)
CNN = "cnn"  # the classifier spec that trains the library's small CNN on your labelled images
OBSERVED = "observed"  # the file of a data folder that says which modalities each sample has


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


def check_classifiers(
    specs: Mapping[str, ClassifierSpec], data: MultimodalData, where: str = "classifiers"
) -> None:
    """Refuse, before anything trains, classifiers that name unknown modalities, "cnn" for a
    modality without images or labels, or names that do not import to a network."""
    _check_names(specs, data, where)
    for m, spec in specs.items():
        _checked(spec, m, data, where)


def _check_names(specs: Mapping[str, ClassifierSpec], data: MultimodalData, where: str) -> None:
    unknown = sorted(set(specs) - set(data.modalities))
    if unknown:
        raise ConfigError(
            f"{where} name unknown modalities {unknown}; the data have {list(data.modalities)}"
        )


def _checked(spec: ClassifierSpec, m: str, data: MultimodalData, where: str) -> nn.Module | None:
    """The network a spec names (imported), or None for a "cnn" that `data` can train."""
    if isinstance(spec, nn.Module):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(
            f"{where}[{m!r}] is a {type(spec).__name__}: give a network, "
            f"'module:attribute' or {CNN!r}"
        )
    if spec != CNN:
        return _import_classifier(spec, m, where)
    if not data.is_image(m):
        raise ConfigError(
            f"{where}[{m!r}] = {CNN!r} needs uint8 images [N, C, H, W]; {m!r} is "
            f"{data.images[m].dtype} of shape {tuple(data.images[m].shape)}: give your "
            "own classifier as 'module:attribute'"
        )
    if not data.labelled or data.labels.unique().numel() < 2:
        raise ConfigError(
            f"{where}[{m!r}] = {CNN!r} trains on your labels: give labels (labels.npy) "
            "with at least two classes"
        )
    return None


def _import_classifier(spec: str, modality: str, where: str) -> nn.Module:
    """The network a "module:attribute" names (called first if it is a factory)."""
    if ":" not in spec:
        raise ConfigError(
            f"{where}[{modality!r}] = {spec!r}: give 'package.module:attribute', "
            f"'file.py:attribute' or {CNN!r}"
        )
    found = import_attribute(spec, "classifier")
    if not isinstance(found, nn.Module) and callable(found):
        found = found()
    if not isinstance(found, nn.Module):
        raise ConfigError(
            f"{where}[{modality!r}] = {spec!r} is a {type(found).__name__}, not a torch "
            "nn.Module (nor a function returning one)"
        )
    if getattr(found, "provenance", None) is None:
        found.provenance = {"kind": type(found).__name__, "source": spec}
    return found


def resolve_classifiers(
    specs: Mapping[str, ClassifierSpec],
    train: MultimodalData,
    test: MultimodalData,
    cache_dirs: list[Path],
    name: str,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, nn.Module]:
    """Per modality the classifier a spec names, on `device` in eval mode: a network as it is,
    "module:attribute" imported, or "cnn" trained on the train split's images and labels on
    first use and cached in the first writable of `cache_dirs` under a digest of the data."""
    from dmvae.classifiers import own_image_classifier

    _check_names(specs, train, "classifiers")
    out = {}
    for m, spec in specs.items():
        given = _checked(spec, m, train, "classifiers")  # not `or`: a Sequential has a len()
        out[m] = (
            given
            if given is not None
            else own_image_classifier(
                f"{name}-{m}",
                train.labelled_images(m),
                test.labelled_images(m),
                cache_dirs,
                device=device,
                progress=progress,
            )
        )
    return {m: c.to(device).eval() for m, c in out.items()}


def _absolute_file(spec: str) -> str:
    """A "file.py:attribute" spec with the file's path made absolute (others as they are)."""
    where, colon, attribute = spec.rpartition(":")
    if colon and where.endswith(".py"):
        return f"{Path(where).expanduser().absolute()}:{attribute}"
    return spec


def check_splits(train: MultimodalData, test: MultimodalData, where: str) -> None:
    """Train and test must hold the same modalities, shapes and kinds (images or not)."""
    if set(train.modalities) != set(test.modalities):
        raise DataError(
            f"{where}: train has modalities {sorted(train.modalities)}, test "
            f"{sorted(test.modalities)}; give both splits the same files"
        )
    for m in train.modalities:
        if train.shape(m) != test.shape(m) or train.is_image(m) != test.is_image(m):
            raise DataError(
                f"{where}: modality {m!r} is {train.images[m].dtype} {train.shape(m)} in "
                f"train but {test.images[m].dtype} {test.shape(m)} in test; give both splits "
                "the same shape and dtype"
            )
    if train.labelled != test.labelled:
        has, lacks = ("train", "test") if train.labelled else ("test", "train")
        raise DataError(f"{where}: {has} has labels but {lacks} has none; label both or neither")


class TensorExperiment(Experiment):
    """An experiment over data you already hold as `MultimodalData` (or tensors: see
    `MultimodalData.from_tensors`).

    `likelihoods`: per modality a `Likelihood` or a kind ("laplace", "normal", "bernoulli"); default
    Laplace with the run's `train.likelihood_scale`. `networks(latent_dim)` returns your
    encoders and decoders; default `default_networks`. `classifiers`: per modality a network
    from a batch to class logits (docs/own-data.md, "Classifiers"), "module:attribute", or "cnn"
    for the library's small CNN trained on your labelled images; or a function returning such a
    mapping, called when first needed. Register it (`register_experiment`) before training; to
    evaluate or resume from the command line, name it as "module:attribute" (or pass `dmvae
    evaluate --experiment`).
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
        if not callable(self.given_classifiers):
            check_classifiers(self.given_classifiers, train)

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
        from dmvae.classifiers import classifier_dirs

        given = self.given_classifiers
        given = given() if callable(given) else given
        dirs = classifier_dirs()
        return resolve_classifiers(given, self.train, self.test, dirs, self.name, device, progress)


@dataclass(frozen=True)
class FolderData(MissingModalities):
    """`path` holds train/ and test/, each with one `<modality>.npy` or `.pt` file per
    modality, optionally `labels.npy` / `labels.pt`, and for incomplete data `observed.npz`
    (or `observed.pt`, a dict): per modality that has missing samples a bool [N] array, True
    where the sample has it. `path` is stored absolute, so a run evaluates from any folder
    (`dmvae evaluate --data-root` points it elsewhere). `missing_rate` drops more at random
    from the training split (`MissingModalities`).
    `likelihoods` maps modality names to "laplace" (default), "normal" or "bernoulli";
    `noise_std` adds N(0, std^2) noise to encoder inputs; `classifiers` maps modality names to
    "module:attribute" or "cnn" (see `resolve_classifiers`), for coherence."""

    path: str = ""
    likelihoods: dict[str, str] = field(default_factory=dict)
    noise_std: dict[str, float] = field(default_factory=dict)
    classifiers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("the folder experiment needs data.path: --set data.path=DIR")
        store_absolute(self, "path")
        self.check_missing_rate()
        object.__setattr__(
            self, "classifiers", {m: _absolute_file(spec) for m, spec in self.classifiers.items()}
        )
        bad = {m: k for m, k in self.likelihoods.items() if k not in KINDS}
        if bad:
            raise ConfigError(f"unknown likelihoods {bad}: choose from {list(KINDS)}")


class FolderExperiment(Experiment):
    """Your modalities as files: `dmvae train --experiment folder --set data.path=DIR`."""

    name = "folder"
    summary = "your own modalities: a folder of .npy / .pt tensors, one per modality"
    data_config = FolderData

    def __init__(self) -> None:
        self._cache: dict[tuple, MultimodalData] = {}

    def load(
        self, data: FolderData, split: str, device: torch.device | str = "cpu"
    ) -> MultimodalData:
        if split not in ("train", "test"):
            raise ConfigError(f"unknown split {split!r}: use 'train' or 'test'")
        folder = Path(data.path) / split
        # read once per folder, noise setting and state of the files (changed files are reread)
        key = (str(folder.resolve()), tuple(sorted(data.noise_std.items())), _file_states(folder))
        if key not in self._cache:
            self._cache[key] = read_folder(folder, data.noise_std)
        return self._cache[key].to(device)

    def modalities(self, data: FolderData) -> tuple[str, ...]:
        return self.load(data, "train").modalities

    def likelihoods(self, data: FolderData, scale: float) -> dict[str, Likelihood]:
        return _likelihoods(self.modalities(data), data.likelihoods, scale)

    def networks(
        self, data: FolderData, latent_dim: int
    ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        return default_networks(self.load(data, "train"), self.likelihoods(data, 1.0), latent_dim)

    def data_root(self, data: FolderData) -> Path:
        return Path(data.path)

    def check(self, data: FolderData) -> None:
        """Both splits read and agree, and every name (likelihoods, noise, classifiers) is one
        of the data's modalities, before a run trains."""
        train, test = self.load(data, "train"), self.load(data, "test")
        check_splits(train, test, data.path)
        test.complete_rows()  # evaluation scores complete samples: there must be some
        self.likelihoods(data, 1.0)
        check_classifiers(data.classifiers, train, "data.classifiers")

    def classifiers(
        self, data: FolderData, device: torch.device, progress: bool = True
    ) -> dict[str, nn.Module]:
        from dmvae.classifiers import classifier_dirs

        train, test = self.load(data, "train"), self.load(data, "test")
        dirs = classifier_dirs(data.path)
        name = Path(data.path).name
        return resolve_classifiers(data.classifiers, train, test, dirs, name, device, progress)


def _file_states(folder: Path) -> tuple:
    """Name, size and modification time of each file in `folder` (empty if it is missing)."""
    if not folder.is_dir():
        return ()
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()))


def read_folder(folder: Path, noise_std: Mapping[str, float] | None = None) -> MultimodalData:
    """One split of a data folder (see `FolderData`), checked for matching rows and types."""
    if not folder.is_dir():
        raise DataError(
            f"no folder {folder}: a data folder holds train/ and test/ with one <modality>.npy "
            "or .pt file per modality (and optionally labels.npy)"
        )
    files = sorted(p for p in folder.iterdir() if p.suffix in (".npy", ".pt", ".npz"))
    stems = [p.stem for p in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise DataError(f"{folder}: {twice} exist in two formats; keep one of each")
    observed = [p for p in files if p.stem == OBSERVED]
    tensors = {p.stem: _read_tensor(p) for p in files if p.stem != OBSERVED}
    labels = tensors.pop("labels", None)
    if not tensors:
        raise DataError(f"{folder} has no <modality>.npy or .pt files")
    unknown = sorted(set(noise_std or {}) - set(tensors))
    if unknown:
        raise ConfigError(
            f"data.noise_std names unknown modalities {unknown}; {folder} has {sorted(tensors)}"
        )
    try:
        mask = _read_observed(observed[0]) if observed else None
        return MultimodalData.from_tensors(tensors, labels, noise_std, observed=mask)
    except (TypeError, ValueError) as err:
        raise DataError(f"{folder}: {err}") from err


def _read_observed(path: Path) -> dict[str, Tensor]:
    """The per-modality masks of `observed.npz` (numpy.savez) or `observed.pt` (a dict)."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                return {m: torch.from_numpy(arrays[m]) for m in arrays.files}
        value = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # numpy and torch raise many kinds for unreadable files
        raise DataError(
            f"cannot read {path} ({err}); write it with numpy.savez(path, name=mask, ...) or "
            "torch.save({name: mask, ...})"
        ) from err
    if not isinstance(value, dict) or not all(isinstance(v, Tensor) for v in value.values()):
        raise DataError(f"{path} must hold a dict of bool tensors by modality name")
    return value


def _read_tensor(path: Path) -> Tensor:
    if path.suffix == ".npz":
        raise DataError(
            f"{path}: only {OBSERVED}.npz may be an .npz file; save a modality as .npy or .pt"
        )
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
