"""The two benchmark data sets as `MultimodalData` on a device.

Images are stored once (one uint8 bank per source data set) and paired through index tensors
that are cached next to the data (or in the user cache when the data folder is read-only).
"""

from __future__ import annotations

from pathlib import Path

import torch

from dmvae.data.batch import MultimodalData
from dmvae.data.pairing import (
    PAIRING_SEED,
    cached_pairing,
    fingerprint,
    pair_mnist_svhn,
    pair_mnist_tuples,
)
from dmvae.data.sources import load_mnist, load_svhn, user_cache_dir
from dmvae.errors import ConfigError

SPLITS = ("train", "test")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: use 'train' or 'test'")


def pair_cache_dirs(root: Path) -> list[Path]:
    """Index files live beside the data, else in the user cache (read-only data folders)."""
    return [Path(root) / "dmvae_pairs", user_cache_dir() / "pairs"]


def load_mnist_svhn(
    root: str | Path,
    split: str,
    *,
    dm: int = 20,
    max_per_class: int = 10000,
    seed: int = PAIRING_SEED,
    download: bool = False,
    verify: bool = True,
    device: torch.device | str = "cpu",
) -> MultimodalData:
    """MNIST-SVHN pairs (modalities "mnist", "svhn"); 1,121,360 train / 200,000 test pairs."""
    _check_split(split)
    m_img, m_lab = load_mnist(root, split == "train", download)
    s_img, s_lab = load_svhn(root, split, download, verify)
    params = {"dm": dm, "max_per_class": max_per_class, "seed": seed}

    def build() -> dict[str, torch.Tensor]:
        im, isv = pair_mnist_svhn(m_lab, s_lab, dm=dm, max_per_class=max_per_class, seed=seed)
        return {"mnist": im, "svhn": isv}

    index = cached_pairing(
        pair_cache_dirs(Path(root)), f"mnist_svhn_{split}", params, fingerprint(m_lab, s_lab), build
    )
    data = MultimodalData(
        {"mnist": m_img, "svhn": s_img},
        index,
        m_lab[index["mnist"]],
        bank_labels={"mnist": m_lab, "svhn": s_lab},
    )
    return data.to(device)


def load_paired_mnist(
    root: str | Path,
    split: str,
    num_modalities: int,
    *,
    seed: int = PAIRING_SEED,
    noise_std: float = 1.0,
    download: bool = False,
    device: torch.device | str = "cpu",
) -> MultimodalData:
    """Paired noisy MNIST: M-tuples of same-digit images (modalities "m0".."m{M-1}") over one
    shared image bank; encoder inputs get fresh N(0, noise_std^2) noise per batch."""
    _check_split(split)
    if num_modalities < 1:
        raise ConfigError(f"paired MNIST needs at least one modality, got {num_modalities}")
    images, labels = load_mnist(root, split == "train", download)
    index = cached_pairing(
        pair_cache_dirs(Path(root)),
        f"paired_mnist_{split}",
        {"modalities": num_modalities, "seed": seed},
        fingerprint(labels),
        lambda: {"tuples": pair_mnist_tuples(labels, num_modalities, seed)},
    )["tuples"]
    names = [f"m{k}" for k in range(num_modalities)]
    data = MultimodalData(
        {m: images for m in names},
        {m: index[:, k] for k, m in enumerate(names)},
        labels,
        noise_std={m: noise_std for m in names},
        bank_labels={m: labels for m in names},
    )
    return data.to(device)


def summary(data: MultimodalData) -> dict:
    """Counts, per-class balance, label agreement across modalities (None where the data have
    one label per row and no per-image labels to check the pairing against), the fraction of
    samples that lack each modality, and memory."""
    checked = [m for m in data.modalities if m in data.bank_labels]
    agree = (
        all(bool(torch.equal(data.bank_labels[m][data.index[m]], data.labels)) for m in checked)
        if checked
        else None
    )
    per_class = torch.bincount(data.labels.cpu(), minlength=10).tolist()
    return {
        "samples": len(data),
        "modalities": list(data.modalities),
        "per_class": per_class,
        "labels_agree": agree,
        "missing": data.missing_fraction(),
        "complete_samples": int(data.observed_mask().all(1).sum()),
        "memory_mb": data.nbytes() / 2**20,
    }
