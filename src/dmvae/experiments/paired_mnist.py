"""Paired noisy MNIST (paper Sec. 4.2): M = 2..5 same-digit MNIST images per sample, each a
modality with fresh Gaussian noise on the encoder input."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dmvae import nets
from dmvae.data.batch import MultimodalData
from dmvae.errors import ConfigError
from dmvae.experiments.base import register_experiment, store_absolute
from dmvae.experiments.digits import DigitExperiment, DigitFiles
from dmvae.likelihoods import Likelihood
from dmvae.models.dmvae import PAPER


@dataclass(frozen=True)
class PairedMNISTData(DigitFiles):
    """`modalities`: M, 2 to 5. `noise_std`: the encoder inputs' Gaussian noise."""

    modalities: int = 2
    noise_std: float = 1.0

    def __post_init__(self) -> None:
        store_absolute(self, "root")
        self.check_missing_rate()
        if not 2 <= self.modalities <= 5:
            raise ConfigError(f"paired MNIST has 2 to 5 modalities, got {self.modalities}")
        if self.noise_std < 0:
            raise ConfigError(f"data.noise_std must be >= 0, got {self.noise_std}")


class PairedMNIST(DigitExperiment):
    name = "paired-mnist"
    summary = "noisy MNIST, M = 2 to 5 modalities that each show the same digit (its Figure 3)"
    paper = PAPER
    data_config = PairedMNISTData

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


PAIRED_MNIST = register_experiment(PairedMNIST())
