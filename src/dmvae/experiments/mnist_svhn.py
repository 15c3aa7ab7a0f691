"""MNIST-SVHN (paper Sec. 4.1): MNIST and SVHN images of the same digit, paired as in MMVAE
(each image in up to `dm` pairs, at most `max_per_class` images per class)."""

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

MODALITIES = ("mnist", "svhn")


@dataclass(frozen=True)
class MNISTSVHNData(DigitFiles):
    """`dm`: pairs per image; `max_per_class`; `verify`: check the SVHN files' MD5 sums."""

    dm: int = 20
    max_per_class: int = 10000
    verify: bool = True

    def __post_init__(self) -> None:
        store_absolute(self, "root")
        self.check_missing_rate()
        if self.dm < 1 or self.max_per_class < 1:
            raise ConfigError(
                f"data.dm and data.max_per_class must be >= 1, got {self.dm}, {self.max_per_class}"
            )


class MNISTSVHN(DigitExperiment):
    name = "mnist-svhn"
    summary = "MNIST digits paired with SVHN house numbers of the same digit (its Tables 1-3)"
    paper = PAPER + "; the pairing of Shi et al., NeurIPS 2019"
    data_config = MNISTSVHNData

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


MNIST_SVHN = register_experiment(MNISTSVHN())
