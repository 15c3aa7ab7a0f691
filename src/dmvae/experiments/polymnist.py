"""PolyMNIST (Sutter et al., ICLR 2021; MoPoE): five modalities, each an MNIST digit on its
own background, with MoPoE's networks and one PolyMNIST classifier per modality."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dmvae import nets
from dmvae.data.batch import MultimodalData
from dmvae.data.sources import resolve_data_root
from dmvae.errors import ConfigError
from dmvae.experiments.base import (
    Experiment,
    MissingModalities,
    register_experiment,
    store_absolute,
)
from dmvae.likelihoods import Likelihood


@dataclass(frozen=True)
class PolyMNISTData(MissingModalities):
    """`root`: the folder holding MMNIST/{train,test}/m0..m4 (default $DMVAE_DATA, else the
    user cache); `download`: only explains where to get it (no direct download exists);
    `modalities`: the first M of m0..m4, 2 to 5; `train_size`: a seeded random subset of the
    training samples (None: all 60,000), for quick runs. `missing_rate`, `missing_seed`:
    incomplete training data (`MissingModalities`)."""

    root: str | None = None
    download: bool = False
    modalities: int = 5
    train_size: int | None = None

    def __post_init__(self) -> None:
        store_absolute(self, "root")
        self.check_missing_rate()
        if not 2 <= self.modalities <= 5:
            raise ConfigError(f"PolyMNIST has 2 to 5 modalities, got {self.modalities}")
        if self.train_size is not None and self.train_size < 1:
            raise ConfigError(f"data.train_size must be >= 1 or None, got {self.train_size}")


class PolyMNIST(Experiment):
    name = "polymnist"
    summary = "five MNIST modalities, each digit on its own kind of background"
    paper = "Sutter, Daunhawer and Vogt, Generalized Multimodal ELBO, ICLR 2021"
    data_config = PolyMNISTData

    def modalities(self, data: PolyMNISTData) -> tuple[str, ...]:
        return tuple(f"m{k}" for k in range(data.modalities))

    def data_root(self, data: PolyMNISTData) -> Path:
        return resolve_data_root(data.root)

    def load(
        self, data: PolyMNISTData, split: str, device: torch.device | str = "cpu"
    ) -> MultimodalData:
        from dmvae.data.polymnist import load_polymnist

        return load_polymnist(
            self.data_root(data),
            split,
            data.modalities,
            download=data.download,
            size=data.train_size if split == "train" else None,
            device=device,
        )

    def networks(
        self, data: PolyMNISTData, latent_dim: int
    ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        names = self.modalities(data)
        return (
            {m: nets.polymnist_encoder(latent_dim) for m in names},
            {m: nets.polymnist_decoder(latent_dim) for m in names},
        )

    def likelihoods(self, data: PolyMNISTData, scale: float) -> dict[str, Likelihood]:
        """Laplace around the decoder's raw output; MoPoE fixes the scale at 0.75, which the
        models' PolyMNIST presets set as `train.likelihood_scale`."""
        return {m: Likelihood("laplace", scale) for m in self.modalities(data)}

    def classifier_kinds(self, data: PolyMNISTData) -> dict[str, str]:
        from dmvae.classifiers import polymnist_kinds

        kinds = polymnist_kinds(self.data_root(data), data.modalities)
        return dict(zip(self.modalities(data), kinds, strict=True))

    def classifiers(
        self, data: PolyMNISTData, device: torch.device, progress: bool = True
    ) -> dict[str, nn.Module]:
        """Each modality's classifier, trained on its training images on first use."""
        from dmvae.classifiers import load_classifier

        root = self.data_root(data)
        return {
            m: load_classifier(kind, root, device, train_if_missing=True, progress=progress)
            for m, kind in self.classifier_kinds(data).items()
        }


POLYMNIST = register_experiment(PolyMNIST())
