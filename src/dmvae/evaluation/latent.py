"""Latent classification: a linear classifier on posterior means, trained on training-set
embeddings and scored on the test set. No model selection touches the test set: the
regularisation strength is fixed (C = 1 on standardised features). The multinomial logistic
regression is solved by Newton's method (scikit-learn's "newton-cholesky"): on these few
features it reaches the optimum in a handful of iterations, where lbfgs stops short of it
after hundreds."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
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


MAX_ITER = 100  # Newton iterations per probe: a handful suffice here, MoPoE at M = 5 needs more


class Accuracies(dict):
    """Test accuracy per probe (a plain dict in metrics.json), and `unconverged`: the probes
    that stopped at their iteration limit before converging (their accuracy may be low)."""

    unconverged: tuple[str, ...] = ()


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    c: float = 1.0,
    max_iter: int = MAX_ITER,
) -> tuple[float, bool]:
    """Test accuracy of a logistic regression on standardised features, and whether it
    converged: scikit-learn's ConvergenceWarning is caught and returned as `False`, for the
    result to record, rather than left on the console beside a number that looks final."""
    clf = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, solver="newton-cholesky", max_iter=max_iter)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit(train_x, train_y)
    converged = True
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            converged = False
        else:  # anything else is not ours to hide
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return float(clf.score(test_x, test_y)), converged


def linear_probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    c: float = 1.0,
    max_iter: int = MAX_ITER,
) -> float:
    """`linear_probe`'s accuracy; a probe that did not converge says so in a warning."""
    accuracy, converged = linear_probe(train_x, train_y, test_x, test_y, c, max_iter)
    if not converged:
        warnings.warn(
            f"the linear probe stopped at its iteration limit ({max_iter}) before converging; "
            f"its accuracy {accuracy:.3f} may be low",
            ConvergenceWarning,
            stacklevel=2,
        )
    return accuracy


def latent_accuracy(
    model: MultimodalVAE,
    train: MultimodalData,
    test: MultimodalData,
    *,
    subsets: dict[str, Sequence[str]] | None = None,
    train_samples: int | None = 60000,
    with_style: bool = False,
    seed: int = 0,
    max_iter: int = MAX_ITER,
) -> Accuracies:
    """Test accuracy per named subset (default: each modality alone and all of them); the
    result's `unconverged` names the probes that stopped at `max_iter`."""
    if with_style and not model.has_style:
        raise ValueError(f"{type(model).__name__} has no style to append; drop with_style")
    if subsets is None:
        subsets = {m: (m,) for m in model.modalities}
        subsets["all"] = tuple(model.modalities)
    out, unconverged = Accuracies(), []
    for name, subset in subsets.items():
        tx, ty = embeddings(
            model, train, subset, max_samples=train_samples, seed=seed, with_style=with_style
        )
        vx, vy = embeddings(model, test, subset, with_style=with_style, seed=seed)
        out[name], converged = linear_probe(tx, ty, vx, vy, max_iter=max_iter)
        unconverged += [] if converged else [name]
    out.unconverged = tuple(unconverged)
    return out


def style_accuracy(
    model: MultimodalVAE,
    train: MultimodalData,
    test: MultimodalData,
    *,
    train_samples: int | None = 60000,
    seed: int = 0,
    max_iter: int = MAX_ITER,
) -> Accuracies:
    """Per modality, a linear probe of its style means alone (DMVAE): how much label
    information leaks into the modality-specific factors (the paper: little); `unconverged`
    as `latent_accuracy`'s."""
    out, unconverged = Accuracies(), []
    for m in model.modalities:
        tx, ty = embeddings(
            model, train, (m,), max_samples=train_samples, seed=seed, with_style=True
        )
        vx, vy = embeddings(model, test, (m,), with_style=True, seed=seed)
        d = model.shared_dim
        out[m], converged = linear_probe(tx[:, d:], ty, vx[:, d:], vy, max_iter=max_iter)
        unconverged += [] if converged else [m]
    out.unconverged = tuple(unconverged)
    return out
