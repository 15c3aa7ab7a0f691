"""Paired noisy MNIST (paper Sec. 4.2): M = 2..5 same-digit MNIST images per sample, each a
modality with fresh Gaussian noise on the encoder input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dmvae import nets
from dmvae.data.batch import MultimodalData
from dmvae.data.pairing import PAIRING_SEED
from dmvae.data.sources import resolve_data_root
from dmvae.errors import ConfigError
from dmvae.experiments.base import Experiment, register_experiment
from dmvae.likelihoods import Likelihood
from dmvae.reproduce import layouts


@dataclass(frozen=True)
class PairedMNISTData:
    """`root`: the folder holding MNIST/raw (default $DMVAE_DATA, else the user cache)."""

    root: str | None = None
    download: bool = False
    modalities: int = 2
    noise_std: float = 1.0
    pairing_seed: int = PAIRING_SEED

    def __post_init__(self) -> None:
        if not 2 <= self.modalities <= 5:
            raise ConfigError(f"paired MNIST has 2 to 5 modalities, got {self.modalities}")
        if self.noise_std < 0:
            raise ConfigError(f"data.noise_std must be >= 0, got {self.noise_std}")


class PairedMNIST(Experiment):
    name = "paired-mnist"
    data_config = PairedMNISTData
    report = layouts.PAIRED_MNIST

    def modalities(self, data: PairedMNISTData) -> tuple[str, ...]:
        return tuple(f"m{k}" for k in range(data.modalities))

    def load(
        self, data: PairedMNISTData, split: str, device: torch.device | str = "cpu"
    ) -> MultimodalData:
        from dmvae.data.datasets import load_paired_mnist

        return load_paired_mnist(
            self.data_root(data),
            split,
            data.modalities,
            seed=data.pairing_seed,
            noise_std=data.noise_std,
            download=data.download,
            device=device,
        )

    def networks(
        self, data: PairedMNISTData, latent_dim: int
    ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        names = self.modalities(data)
        return (
            {m: nets.paired_mnist_encoder(latent_dim) for m in names},
            {m: nets.paired_mnist_decoder(latent_dim) for m in names},
        )

    def likelihoods(self, data: PairedMNISTData, scale: float) -> dict[str, Likelihood]:
        return {m: Likelihood("laplace", scale) for m in self.modalities(data)}

    def classifier_kinds(self, data: PairedMNISTData) -> dict[str, str]:
        return {m: "mnist" for m in self.modalities(data)}

    def classifiers(self, data: PairedMNISTData, device: torch.device) -> dict[str, nn.Module]:
        return digit_classifiers(self.classifier_kinds(data), self.data_root(data), device)

    def data_root(self, data: PairedMNISTData) -> Path:
        return resolve_data_root(data.root)


def digit_classifiers(kinds: dict[str, str], root: Path, device: torch.device) -> dict:
    """The cached MNIST / SVHN digit classifiers (trained on first use) per modality."""
    from dmvae.evaluation.classifiers import load_classifier

    loaded = {
        k: load_classifier(k, root, device, train_if_missing=True) for k in set(kinds.values())
    }
    return {m: loaded[k] for m, k in kinds.items()}


PAIRED_MNIST = register_experiment(PairedMNIST())
