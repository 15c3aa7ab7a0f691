"""The paper's two experiments: their data, networks, likelihoods and hyperparameter presets.

A preset is the set of training and model settings that reproduces the paper (SPEC.md); every
value can be overridden (`dmvae train --set key=value`). Choices the paper leaves open are
documented in docs/protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dmvae import nets
from dmvae.data.batch import MultimodalData
from dmvae.errors import ConfigError
from dmvae.likelihoods import Likelihood
from dmvae.models.base import MultimodalVAE

EXPERIMENTS = ("mnist-svhn", "paired-mnist")
MODELS = ("dmvae", "mvae", "mmvae")

# DMVAE's released coefficients hold on the release's reconstruction scale and initialisation;
# written into every run's config.json, so that runs trained before they were the default (no
# such keys) are not resumed with another objective.
RELEASE_OBJECTIVE = {"reconstruction": "release", "init": "release"}

# Training settings per (experiment, model); "model_config" goes to the model's config dataclass.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("mnist-svhn", "dmvae"): dict(
        epochs=50,
        batch_size=1024,
        lr=1e-3,
        anneal_epochs=5,
        likelihood_scale=0.1,
        model_config=dict(
            style_dim=10,
            content_dim=10,
            beta={"mnist": 100.0, "svhn": 50.0},
            gamma=1000.0,
            delta={"mnist": 500.0, "svhn": 100.0},
            **RELEASE_OBJECTIVE,
        ),
    ),
    ("mnist-svhn", "mvae"): dict(
        epochs=50,
        batch_size=1024,
        lr=1e-3,
        anneal_epochs=5,
        likelihood_scale=0.1,
        model_config=dict(latent_dim=20),
    ),
    ("mnist-svhn", "mmvae"): dict(
        epochs=30,
        batch_size=128,
        lr=1e-3,
        amsgrad=True,
        anneal_epochs=0,
        likelihood_scale=0.75,
        model_config=dict(latent_dim=20, K=30),
    ),
    # The released script mmmnist/run_jobs (beta 10, lr 1e-3), not the paper's text (beta 100,
    # lr 3e-3), under which DMVAE collapses (docs/protocol.md, "Differences").
    ("paired-mnist", "dmvae"): dict(
        epochs=300,
        batch_size=1024,
        lr=1e-3,
        anneal_epochs=50,
        likelihood_scale=0.1,
        model_config=dict(
            style_dim=10, content_dim=10, beta=10.0, gamma=100.0, delta=100.0, **RELEASE_OBJECTIVE
        ),
    ),
    ("paired-mnist", "mvae"): dict(
        epochs=300,
        batch_size=1024,
        lr=1e-3,
        anneal_epochs=50,
        likelihood_scale=0.1,
        model_config=dict(latent_dim=20),
    ),
    ("paired-mnist", "mmvae"): dict(
        epochs=30,
        batch_size=128,
        lr=1e-3,
        amsgrad=True,
        anneal_epochs=0,
        likelihood_scale=0.75,
        model_config=dict(latent_dim=20, K=30),
    ),
}


def check_names(experiment: str, model: str) -> None:
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {experiment!r}: choose one of {list(EXPERIMENTS)}")
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}: choose one of {list(MODELS)}")


def preset(experiment: str, model: str) -> dict[str, Any]:
    """A deep copy of the paper's settings for `model` on `experiment`."""
    check_names(experiment, model)
    p = PRESETS[(experiment, model)]
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in p.items()}


def modality_names(experiment: str, num_modalities: int = 2) -> tuple[str, ...]:
    if experiment == "mnist-svhn":
        return ("mnist", "svhn")
    if not 2 <= num_modalities <= 5:
        raise ConfigError(f"paired MNIST has 2 to 5 modalities, got {num_modalities}")
    return tuple(f"m{k}" for k in range(num_modalities))


def classifier_kinds(config: dict) -> dict[str, str]:
    """Which digit classifier scores each modality (paired MNIST: the MNIST one everywhere)."""
    names = modality_names(config["experiment"], config["data"].get("modalities", 2))
    return {m: ("svhn" if m == "svhn" else "mnist") for m in names}


def networks(
    experiment: str, names: tuple[str, ...], latent_dim: int
) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """The paper's encoder and decoder for every modality, over `latent_dim` dimensions."""
    enc: dict[str, Callable[[int], nn.Module]]
    if experiment == "mnist-svhn":
        enc = {"mnist": nets.mnist_encoder, "svhn": nets.svhn_encoder}
        dec = {"mnist": nets.mnist_decoder, "svhn": nets.svhn_decoder}
        return {m: enc[m](latent_dim) for m in names}, {m: dec[m](latent_dim) for m in names}
    return (
        {m: nets.paired_mnist_encoder(latent_dim) for m in names},
        {m: nets.paired_mnist_decoder(latent_dim) for m in names},
    )


def likelihoods(experiment: str, names: tuple[str, ...], scale: float) -> dict[str, Likelihood]:
    """Laplace likelihoods; MNIST is up-weighted by 3072/784 against SVHN (SPEC.md)."""
    weights = {"mnist": 3072 / 784} if experiment == "mnist-svhn" else {}
    return {m: Likelihood("laplace", scale, weights.get(m, 1.0)) for m in names}


def build_model(config: dict) -> MultimodalVAE:
    """The model described by a run config (the dict written to RUN_DIR/config.json)."""
    from dmvae.models import MODEL_CLASSES

    experiment, spec = config["experiment"], config["model"]
    check_names(experiment, spec["name"])
    cls, cfg_cls = MODEL_CLASSES[spec["name"]]
    known = set(cfg_cls.__dataclass_fields__)
    settings = {k: v for k, v in spec.items() if k != "name"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(
            f"unknown {spec['name']} settings {unknown}; valid ones are {sorted(known)}"
        )
    model_cfg = cfg_cls(**settings)
    names = modality_names(experiment, config["data"].get("modalities", 2))
    latent = (
        model_cfg.style_dim + model_cfg.content_dim
        if spec["name"] == "dmvae"
        else model_cfg.latent_dim
    )
    encoders, decoders = networks(experiment, names, latent)
    liks = likelihoods(experiment, names, config["train"]["likelihood_scale"])
    return cls(encoders, decoders, liks, model_cfg)


def build_data(config: dict, split: str, device: torch.device | str = "cpu") -> MultimodalData:
    """The train or test split of the run's data set, on `device`."""
    from dmvae.data import datasets
    from dmvae.data.sources import resolve_data_root

    d = config["data"]
    root = resolve_data_root(d.get("root"))
    if config["experiment"] == "mnist-svhn":
        return datasets.load_mnist_svhn(
            root,
            split,
            dm=d.get("dm", 20),
            max_per_class=d.get("max_per_class", 10000),
            seed=d.get("pairing_seed", 42),
            download=d.get("download", False),
            verify=d.get("verify", True),
            device=device,
        )
    return datasets.load_paired_mnist(
        root,
        split,
        d.get("modalities", 2),
        seed=d.get("pairing_seed", 42),
        noise_std=d.get("noise_std", 1.0),
        download=d.get("download", False),
        device=device,
    )
