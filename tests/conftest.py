"""Shared fixtures and helpers: the real MNIST in ../shared/data (or $DMVAE_DATA), and the toy
data and tiny networks several test modules build (import them: `from conftest import bars`)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_terminal_summary(terminalreporter):
    """How many tests skipped and why, one line per reason: without MNIST a quarter of the
    suite skips, which a row of s's hides."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = Counter(report.longrepr[2].removeprefix("Skipped: ") for report in skipped)
    if reasons:
        terminalreporter.section(f"{len(skipped)} skipped, by reason", sep="-")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"{count} skipped: {reason}")


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """Skips without the data, unless DMVAE_REQUIRE_DATA=1 (CI): then the test fails."""
    root = Path(os.environ.get("DMVAE_DATA") or REPO.parent / "shared" / "data")
    if not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        message = f"real MNIST not found under {root}/MNIST/raw (set DMVAE_DATA)"
        if os.environ.get("DMVAE_REQUIRE_DATA") == "1":
            pytest.fail(f"{message}; DMVAE_REQUIRE_DATA=1 makes this an error", pytrace=False)
        pytest.skip(message)
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

    from dmvae import classifiers as clf
    from dmvae.data.sources import user_cache_dir

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

    from dmvae.evaluation.scores import content_scores

    train_set = config.build_data("train").complete_rows().random_subset(5000, 0)
    test = config.build_data("test").random_subset(2000, 0)
    generator = torch.Generator().manual_seed(0)
    probe, coherence = content_scores(model, train_set, test, classifier, generator)
    return {"probe": probe, "coherence": coherence}


@pytest.fixture
def digit_scores():
    """scores(model, config, classifier) -> {"probe", "coherence"}: the learning tests' measure,
    a linear digit probe of the shared latent given all modalities (5,000 training and 2,000
    test samples) and the leave-one-out coherence on those test samples."""
    return _digit_scores


def bars(
    n: int, seed: int, names=("image", "code")
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """An 8x8 uint8 image of a bar at row 2 * label and the label one-hot (floats), 4 labels;
    returns the two modalities under `names` and the labels."""
    labels = torch.randint(4, (n,), generator=torch.Generator().manual_seed(seed))
    images = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    images[torch.arange(n), 0, 2 * labels] = 200
    image, code = names
    return {image: images, code: torch.nn.functional.one_hot(labels, 4).float()}, labels


def write_bars_folder(root: Path, sizes=(256, 64), names=("image", "code"), labels=True) -> Path:
    """`bars` as a data folder: train (seed 0) and test (seed 1) splits of .npy files."""
    for split, n, seed in zip(("train", "test"), sizes, (0, 1), strict=True):
        x, y = bars(n, seed, names)
        (root / split).mkdir(parents=True)
        for m, values in x.items():
            np.save(root / split / f"{m}.npy", values.numpy())
        if labels:
            np.save(root / split / "labels.npy", y.numpy())
    return root


def mlp_parts(latent: int, names=("a", "b", "c")):
    """Seeded MLP encoders and decoders for 1x6x6 inputs with Laplace likelihoods."""
    from dmvae import nets
    from dmvae.likelihoods import Likelihood

    torch.manual_seed(0)
    enc = {m: nets.MLPEncoder((1, 6, 6), (16,), latent) for m in names}
    dec = {m: nets.MLPDecoder(latent, (16,), (1, 6, 6), sigmoid=True) for m in names}
    return enc, dec, {m: Likelihood("laplace", 0.75) for m in names}


def random_batch(n: int, names=("a", "b", "c"), side: int = 6, seed: int = 1):
    """A complete batch of uniform 1 x side x side images per modality."""
    from dmvae.data.batch import make_batch

    g = torch.Generator().manual_seed(seed)
    return make_batch({m: torch.rand(n, 1, side, side, generator=g) for m in names})


def state_copy(model) -> dict:
    """The model's weights now, unchanged by later training."""
    return {k: v.clone() for k, v in model.state_dict().items()}


def fake_svhn(root, split: str, counts: list[int], seed=0):
    """An SVHN .mat file: X uint8 32x32x3xN, y uint8 Nx1 with labels 1..10 (10 is digit 0)."""
    import scipy.io

    rng = np.random.default_rng(seed)
    digits = np.concatenate([np.full(c, d) for d, c in enumerate(counts)])
    rng.shuffle(digits)
    x = np.zeros((32, 32, 3, len(digits)), dtype=np.uint8)
    x[...] = (digits * 20).astype(np.uint8)
    y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
    scipy.io.savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
    return digits
