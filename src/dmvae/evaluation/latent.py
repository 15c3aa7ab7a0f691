"""Latent classification: a linear classifier on posterior means, trained on training-set
embeddings and scored on the test set. No model selection touches the test set: the
regularisation strength is fixed (C = 1 on standardised features). The multinomial logistic
regression is solved by Newton's method (scikit-learn's "newton-cholesky"): on these few
features it reaches the optimum in a handful of iterations, where lbfgs stops short of it
after hundreds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dmvae.data.batch import MultimodalData
from dmvae.models.base import MultimodalVAE


@torch.inference_mode()
def embeddings(
    model: MultimodalVAE,
    data: MultimodalData,
    subset: Sequence[str],
    *,
    batch_size: int = 2000,
    max_samples: int | None = None,
    seed: int = 0,
    with_style: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and labels of (a seeded random subsample of at most `max_samples` of) `data`.

    Noisy inputs are noised from `generator`, by default one seeded with `seed`, so that the
    same checkpoint gives the same embeddings (and probe accuracies) every time.
    """
    data = data.random_subset(max_samples, seed).select(subset)
    if generator is None:
        generator = torch.Generator(device=data.device).manual_seed(seed)
    xs, ys = [], []
    for batch in data.batches(batch_size, shuffle=False, generator=generator):
        xs.append(model.embed(batch.inputs, subset, with_style=with_style).float().cpu())
        ys.append(batch.labels.cpu())
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def linear_probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, c: float = 1.0
) -> float:
    clf = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, solver="newton-cholesky", max_iter=100)
    )
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


def latent_accuracy(
    model: MultimodalVAE,
    train: MultimodalData,
    test: MultimodalData,
    *,
    subsets: dict[str, Sequence[str]] | None = None,
    train_samples: int | None = 60000,
    with_style: bool = False,
    seed: int = 0,
) -> dict[str, float]:
    """Test accuracy per named subset (default: each modality alone and all of them)."""
    if with_style and not model.has_style:
        raise ValueError(f"{type(model).__name__} has no style to append; drop with_style")
    if subsets is None:
        subsets = {m: (m,) for m in model.modalities}
        subsets["all"] = tuple(model.modalities)
    out = {}
    for name, subset in subsets.items():
        tx, ty = embeddings(
            model, train, subset, max_samples=train_samples, seed=seed, with_style=with_style
        )
        vx, vy = embeddings(model, test, subset, with_style=with_style, seed=seed)
        out[name] = linear_probe_accuracy(tx, ty, vx, vy)
    return out


def style_accuracy(
    model: MultimodalVAE,
    train: MultimodalData,
    test: MultimodalData,
    *,
    train_samples: int | None = 60000,
    seed: int = 0,
) -> dict[str, float]:
    """Per modality, a linear probe of its style means alone (DMVAE): how much label
    information leaks into the modality-specific factors (the paper: little)."""
    out = {}
    for m in model.modalities:
        tx, ty = embeddings(
            model, train, (m,), max_samples=train_samples, seed=seed, with_style=True
        )
        vx, vy = embeddings(model, test, (m,), with_style=True, seed=seed)
        d = model.shared_dim
        out[m] = linear_probe_accuracy(tx[:, d:], ty, vx[:, d:], vy)
    return out
