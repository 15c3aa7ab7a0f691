"""Experiments: a data set with the networks, likelihoods and classifiers of its modalities.

Built in: the paper's "paired-mnist" and "mnist-svhn", MoPoE's "polymnist", and "folder" (your
modalities as files); `TensorExperiment` wraps tensors you hold. Models' settings per
experiment (the paper's presets) live with each model (`dmvae.models`).
"""

from dmvae.experiments.base import (
    EXPERIMENTS,
    Experiment,
    NoData,
    get_experiment,
    list_experiments,
    register_experiment,
)
from dmvae.experiments.mnist_svhn import MNISTSVHN, MNISTSVHNData
from dmvae.experiments.paired_mnist import PairedMNIST, PairedMNISTData
from dmvae.experiments.polymnist import PolyMNIST, PolyMNISTData
from dmvae.experiments.tensors import FolderData, TensorExperiment, default_networks

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "FolderData",
    "MNISTSVHN",
    "MNISTSVHNData",
    "NoData",
    "PairedMNIST",
    "PairedMNISTData",
    "PolyMNIST",
    "PolyMNISTData",
    "TensorExperiment",
    "default_networks",
    "get_experiment",
    "list_experiments",
    "register_experiment",
]
