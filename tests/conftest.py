"""Shared fixtures: the real MNIST in ../shared/data (or $DMVAE_DATA)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    root = Path(os.environ.get("DMVAE_DATA") or REPO.parent / "shared" / "data")
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST not found under {root}/MNIST/raw (set DMVAE_DATA)")
    return root


@pytest.fixture(scope="session")
def real_mnist(mnist_root):
    from dmvae.data.sources import load_mnist

    return (*load_mnist(mnist_root, train=True), *load_mnist(mnist_root, train=False))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Index files and classifiers go to a per-session temporary user cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def quick_classifiers(real_mnist):
    """An MNIST classifier trained briefly (the real one takes a minute), cached in the user
    cache where coherence and classifier FIDs find it; the same weights in every test.
    Returns the classifier."""
    from safetensors.torch import save_file

    from dmvae.data.sources import user_cache_dir
    from dmvae.evaluation import classifiers as clf

    x, y = real_mnist[0][:3000], real_mnist[1][:3000]
    model = clf.train_classifier("mnist", x, y, epochs=1, progress=False)
    directory = user_cache_dir() / "classifiers"
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}  # from channels-last
    info = {"info": json.dumps({"kind": "mnist", "test_accuracy": None, "seed": 0})}
    key = clf.classifier_key(
        "mnist", clf.data_digest((real_mnist[0], real_mnist[1]), real_mnist[2:])
    )
    save_file(state, str(directory / f"{key}.safetensors"), metadata=info)
    return model


@pytest.fixture
def small_train(monkeypatch):
    """Evaluations probe and fit the GMM on a seeded 1000 of the 60000 training tuples."""
    from dmvae.evaluation import context, suite

    def build(run_dir, settings, device="cpu"):
        ctx = context.build_context(run_dir, settings, device)
        ctx.train = ctx.train.random_subset(1000, seed=1)
        return ctx

    monkeypatch.setattr(suite, "build_context", build)


def _digit_scores(model, config, classifier) -> dict[str, float]:
    import torch

    from dmvae.evaluation.coherence import conditional_coherence, summarise
    from dmvae.evaluation.latent import embeddings, linear_probe_accuracy

    train_set = config.build_data("train").complete_rows().random_subset(5000, 0)
    test = config.build_data("test").random_subset(2000, 0)
    names = tuple(model.modalities)
    probe = linear_probe_accuracy(
        *embeddings(model, train_set, names), *embeddings(model, test, names)
    )
    per_map = conditional_coherence(
        model,
        test,
        {m: classifier for m in names},
        all_subsets=False,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    return {"probe": probe, "coherence": summarise(per_map, names)["leave_one_out_mean"]}


@pytest.fixture
def digit_scores():
    """scores(model, config, classifier) -> {"probe", "coherence"}: the learning tests' measure,
    a linear digit probe of the shared latent given all modalities (5,000 training and 2,000
    test samples) and the leave-one-out coherence on those test samples."""
    return _digit_scores
