"""Ex-post density estimation (Ghosh et al., 2020): a Gaussian mixture fitted on training-set
embeddings of the shared latent, used as the content sampler of any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import Tensor

from dmvae.data.batch import MultimodalData
from dmvae.files import atomic_path
from dmvae.models.base import MultimodalVAE


class GMMSampler:
    """Draws from a fitted mixture with its own seeded RNG, so samples are reproducible.

    Only the mixture's weights, means and covariances are kept (saved as .npz, no pickle).
    """

    def __init__(
        self,
        n_components: int = 100,
        covariance_type: str = "full",
        seed: int = 0,
        reg_covar: float = 1e-6,
        max_iter: int = 200,
    ) -> None:
        self.settings = dict(
            n_components=n_components,
            covariance_type=covariance_type,
            random_state=seed,
            reg_covar=reg_covar,
            max_iter=max_iter,
        )
        self.weights: np.ndarray | None = None
        self.means: np.ndarray | None = None
        self.covariances: np.ndarray | None = None
        self.device = torch.device("cpu")

    def fit(self, x: np.ndarray | Tensor) -> GMMSampler:
        """EM in float32 (twice as fast as float64 on a CPU); float64 where float32 cannot
        keep a component's covariance positive definite."""
        x = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
        try:
            gmm = GaussianMixture(**self.settings).fit(x.astype(np.float32))
        except ValueError:
            gmm = GaussianMixture(**self.settings).fit(x.astype(np.float64))
        self.weights = gmm.weights_.astype(np.float64)
        self.means = gmm.means_.astype(np.float64)
        cov = gmm.covariances_.astype(np.float64)
        if gmm.covariance_type == "diag":
            cov = np.stack([np.diag(c) for c in cov])
        elif gmm.covariance_type == "spherical":
            cov = np.stack([np.eye(x.shape[1]) * c for c in cov])
        elif gmm.covariance_type == "tied":
            cov = np.repeat(cov[None], len(self.weights), 0)
        self.covariances = cov
        return self

    def to(self, device: torch.device | str) -> GMMSampler:
        self.device = torch.device(device)
        return self

    def __call__(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if self.weights is None:
            raise RuntimeError("fit the GMM before sampling from it")
        seed = int(
            torch.randint(
                2**31 - 1,
                (1,),
                generator=generator,
                device=generator.device if generator else "cpu",
            )
        )
        rng = np.random.default_rng(seed)
        comp = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        chol = np.linalg.cholesky(self.covariances)
        eps = rng.standard_normal((n, self.means.shape[1]))
        z = self.means[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
        return torch.from_numpy(z).float().to(self.device)

    def save(self, path: Path) -> None:
        with atomic_path(path, suffix=".tmp.npz") as tmp:
            np.savez(tmp, weights=self.weights, means=self.means, covariances=self.covariances)

    @classmethod
    def load(cls, path: Path) -> GMMSampler:
        sampler = cls()
        with np.load(path) as f:
            sampler.weights, sampler.means, sampler.covariances = (
                f["weights"],
                f["means"],
                f["covariances"],
            )
        return sampler


@torch.inference_mode()
def fit_gmm(
    model: MultimodalVAE,
    train: MultimodalData,
    *,
    max_samples: int | None = 60000,
    n_components: int = 100,
    seed: int = 0,
    batch_size: int = 2000,
) -> GMMSampler:
    """Fit on `model.ex_post_embeddings` of (a seeded subsample of) the training set."""
    data = train
    if max_samples is not None and max_samples < len(train):
        rows = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[
            :max_samples
        ]
        data = train.subset(rows.sort().values)
    emb = [
        model.ex_post_embeddings(b.inputs).cpu() for b in data.batches(batch_size, shuffle=False)
    ]
    device = next(model.parameters()).device
    return GMMSampler(n_components=n_components, seed=seed).fit(torch.cat(emb)).to(device)
