"""DMVAE on your own modalities: a shape image and an attribute vector.

The data are generated here (no download): each sample is a 32x32 grey image of a square, disk,
ring or plus at a random place, size and brightness, paired with a 10-bit attribute vector
(the shape as one-hot, whether it is large, left and top, and three random tag bits the image
does not show). Shape, size and place are shared content; brightness is the image's own style
and the tag bits the attributes'. The attributes get a Bernoulli likelihood, the image a
Laplace one.

    python examples/shapes.py --out runs/shapes            # Python API: train + evaluate
    python examples/shapes.py --write-folder data/shapes    # the same data as .npy files, then:
    dmvae train --experiment folder --set data.path=data/shapes \
        --set 'data.likelihoods={"attrs": "bernoulli"}' \
        --set 'data.classifiers={"image": "examples/shapes.py:image_classifier",
                                 "attrs": "examples/shapes.py:READER"}' --out runs/shapes-cli
    dmvae evaluate runs/shapes-cli --fid classifier
    dmvae train --experiment examples/shapes.py:EXPERIMENT --out runs/shapes-entry
    dmvae evaluate runs/shapes-entry --fid none           # coherence needs the classifiers

docs/own-data.md explains each step.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import dmvae
from dmvae.data import MultimodalData
from dmvae.experiments import TensorExperiment
from dmvae.models import MODELS

SIZE, SHAPES, ATTRIBUTES = 32, ("square", "disk", "ring", "plus"), 10


def make_shapes(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Images (uint8 [n, 1, 32, 32]), attributes (float [n, 10]) and shape labels ([n])."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(SHAPES), (n,), generator=g)
    radius = 5 + 5 * torch.rand(n, generator=g)
    cx, cy = (radius + 1 + (SIZE - 2 * radius - 3) * torch.rand(2, n, generator=g)).unbind()
    brightness = 0.5 + 0.5 * torch.rand(n, generator=g)
    tags = (torch.rand(n, 3, generator=g) < 0.5).float()
    grid = torch.arange(SIZE, dtype=torch.float32)
    dx = (grid[None, None, :] - cx[:, None, None]).abs()
    dy = (grid[None, :, None] - cy[:, None, None]).abs()
    r = radius[:, None, None]
    dist = (dx**2 + dy**2).sqrt()
    masks = torch.stack(
        [
            torch.maximum(dx, dy) <= r,
            dist <= r,
            (dist <= r) & (dist >= r - 2.5),
            ((dx <= r / 3) & (dy <= r)) | ((dy <= r / 3) & (dx <= r)),
        ]
    )[labels, torch.arange(n)]
    images = (masks.float() * brightness[:, None, None] * 255).round().to(torch.uint8)[:, None]
    facts = torch.stack([radius > 7.5, cx < SIZE / 2, cy < SIZE / 2], dim=1).float()
    onehot = nn.functional.one_hot(labels, len(SHAPES)).float()
    return images, torch.cat([onehot, facts, tags], dim=1), labels


class ShapeReader(nn.Module):
    """Coherence classifier of the attribute modality: the one-hot shape bits are the logits."""

    def forward(self, attrs: Tensor) -> Tensor:
        return attrs[:, : len(SHAPES)]


class ShapeClassifier(nn.Module):
    """A small MLP for the image modality. `features` (its hidden layer) gives the quick
    classifier-feature distance (`--fid classifier`); without it that distance is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 256), nn.ReLU())
        self.head = nn.Linear(256, len(SHAPES))

    def features(self, images: Tensor) -> Tensor:
        return self.hidden(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.hidden(images))


def train_image_classifier(images: Tensor, labels: Tensor, steps: int = 300) -> nn.Module:
    """Teach `ShapeClassifier` the shapes (about 99 % on held-out images)."""
    torch.manual_seed(0)
    net = ShapeClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = images.float() / 255
    for step in range(steps):
        rows = torch.randint(len(x), (256,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.cross_entropy(net(x[rows]), labels[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def build(n_train: int = 20000, n_test: int = 4000) -> TensorExperiment:
    """The experiment: generated data, Bernoulli attributes, classifiers for coherence."""
    train_images, train_attrs, train_labels = make_shapes(n_train, seed=0)
    test_images, test_attrs, test_labels = make_shapes(n_test, seed=1)

    @functools.cache
    def classifiers() -> dict[str, nn.Module]:
        return {
            "image": train_image_classifier(train_images, train_labels),
            "attrs": ShapeReader(),
        }

    return TensorExperiment(
        "shapes",
        MultimodalData.from_tensors({"image": train_images, "attrs": train_attrs}, train_labels),
        MultimodalData.from_tensors({"image": test_images, "attrs": test_attrs}, test_labels),
        likelihoods={"attrs": "bernoulli"},
        classifiers=classifiers,
    )


EXPERIMENT = build()
READER = ShapeReader()  # the attributes' classifier, by name: "examples/shapes.py:READER"


def image_classifier() -> nn.Module:
    """The image classifier by name, "examples/shapes.py:image_classifier" (`"cnn"`, the
    library's own, also reads these images; this MLP trains in a second)."""
    return train_image_classifier(EXPERIMENT.train.images["image"], EXPERIMENT.train.labels)


def write_folder(path: Path) -> None:
    """The same data as files for `dmvae train --experiment folder --set data.path=PATH`."""
    for split, data in (("train", EXPERIMENT.train), ("test", EXPERIMENT.test)):
        folder = path / split
        folder.mkdir(parents=True, exist_ok=True)
        for m in data.modalities:
            np.save(folder / f"{m}.npy", data.images[m].numpy())
        np.save(folder / "labels.npy", data.labels.numpy())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/shapes")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--model", default="dmvae", choices=sorted(MODELS))
    parser.add_argument("--write-folder", type=Path, help="write the data as .npy files and stop")
    args = parser.parse_args(argv)
    if args.write_folder:
        write_folder(args.write_folder)
        print(f"data written to {args.write_folder}")
        return {}
    dmvae.register_experiment(EXPERIMENT)
    config = dmvae.RunConfig.preset(
        "shapes",
        args.model,
        {
            "train.out": args.out,
            "train.epochs": args.epochs,
            "train.max_steps": args.max_steps,
            "train.batch_size": 256,
        },
    )
    dmvae.train(config)
    metrics = dmvae.evaluate_run(args.out, metrics=["coherence", "latent", "gmm", "joint", "grids"])
    print((Path(args.out) / "eval" / "metrics.md").read_text())
    return metrics


if __name__ == "__main__":
    main()
