"""MNIST-SVHN (paper Sec. 4.1): MNIST and SVHN images of the same digit, paired as in MMVAE
(each image in up to `dm` pairs, at most `max_per_class` images per class)."""

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
from dmvae.experiments.paired_mnist import digit_classifiers
from dmvae.likelihoods import Likelihood
from dmvae.reproduce import layouts

MODALITIES = ("mnist", "svhn")


@dataclass(frozen=True)
class MNISTSVHNData:
    """`verify`: check the SVHN files' MD5 sums (torchvision's check)."""

    root: str | None = None
    download: bool = False
    dm: int = 20
    max_per_class: int = 10000
    pairing_seed: int = PAIRING_SEED
    verify: bool = True

    def __post_init__(self) -> None:
        if self.dm < 1 or self.max_per_class < 1:
            raise ConfigError(
                f"data.dm and data.max_per_class must be >= 1, got {self.dm}, {self.max_per_class}"
            )


class MNISTSVHN(Experiment):
    name = "mnist-svhn"
    data_config = MNISTSVHNData
    report = layouts.MNIST_SVHN

    def modalities(self, data: MNISTSVHNData) -> tuple[str, ...]:
        return MODALITIES

    def load(
        self, data: MNISTSVHNData, split: str, device: torch.device | str = "cpu"
    ) -> MultimodalData:
        from dmvae.data.datasets import load_mnist_svhn

        return load_mnist_svhn(
            self.data_root(data),
            split,
            dm=data.dm,
            max_per_class=data.max_per_class,
            seed=data.pairing_seed,
            download=data.download,
            verify=data.verify,
            device=device,
        )

    def networks(
        self, data: MNISTSVHNData, latent_dim: int
    ) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
        encoders = {"mnist": nets.mnist_encoder(latent_dim), "svhn": nets.svhn_encoder(latent_dim)}
        decoders = {"mnist": nets.mnist_decoder(latent_dim), "svhn": nets.svhn_decoder(latent_dim)}
        return encoders, decoders

    def likelihoods(self, data: MNISTSVHNData, scale: float) -> dict[str, Likelihood]:
        """Laplace; MNIST's log-likelihood is up-weighted by 3072/784 (docs/protocol.md)."""
        return {
            "mnist": Likelihood("laplace", scale, 3072 / 784),
            "svhn": Likelihood("laplace", scale),
        }

    def classifier_kinds(self, data: MNISTSVHNData) -> dict[str, str]:
        return {"mnist": "mnist", "svhn": "svhn"}

    def classifiers(self, data: MNISTSVHNData, device: torch.device) -> dict[str, nn.Module]:
        return digit_classifiers(self.classifier_kinds(data), self.data_root(data), device)

    def data_root(self, data: MNISTSVHNData) -> Path:
        return resolve_data_root(data.root)


MNIST_SVHN = register_experiment(MNISTSVHN())
