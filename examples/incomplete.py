"""Train on your own modalities when many samples lack one, then fill in what is missing.

The data are generated here (no download): each sample is a 16x16 grey image of a horizontal
bar whose row is the class (0-4) and whose brightness varies, and a 5-dim "tag" vector (the
class one-hot with noise). In the training split 40 % of the samples have no tag and 20 % no
image (never both); the test split is complete. The script

1. writes the data as a data folder (`image.npy`, `tag.npy`, `labels.npy` and the mask file
   `observed.npz` per split: docs/incomplete-data.md);
2. trains DMVAE on it through the library's trainer;
3. writes the images of the training samples that have no tag as PNG files, and imputes their
   tags from those files with `dmvae generate`, and the same in Python with `model.impute`;
4. reports how often the imputed tag names the sample's class (chance: 20 %).

    python examples/incomplete.py --out runs/incomplete
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import dmvae
from dmvae.cli import main as dmvae_cli

CLASSES, SIZE = 5, 16


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (uint8 [n, 1, 16, 16]), tags (float32 [n, 5]) and labels ([n])."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(CLASSES, (n,), generator=g)
    brightness = 100 + 155 * torch.rand(n, generator=g)
    images = torch.zeros(n, 1, SIZE, SIZE)
    rows = 1 + 3 * labels
    images[torch.arange(n), 0, rows] = brightness[:, None]
    images[torch.arange(n), 0, rows + 1] = brightness[:, None]
    tags = F.one_hot(labels, CLASSES).float() + 0.1 * torch.randn(n, CLASSES, generator=g)
    return images.to(torch.uint8).numpy(), tags.numpy(), labels.numpy()


def write_folder(path: Path, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """The data folder; returns the training split's masks."""
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, tags, labels = make_data(n, seed)
        (path / split).mkdir(parents=True, exist_ok=True)
        np.save(path / split / "image.npy", images)
        np.save(path / split / "tag.npy", tags)
        np.save(path / split / "labels.npy", labels)
    draw = np.random.default_rng(0).random(n_train)
    observed = {"tag": draw >= 0.4, "image": draw < 0.8}  # 40 % without tag, 20 % without image
    np.savez(path / "train" / "observed.npz", **observed)
    return observed


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/incomplete")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-size", type=int, default=5000)
    args = parser.parse_args(argv)
    out = Path(args.out)
    observed = write_folder(out / "data", args.train_size, 1000)

    config = dmvae.RunConfig.preset(
        "folder",
        "dmvae",
        {
            "data.path": str(out / "data"),
            "epochs": args.epochs,
            "batch_size": 128,
            "anneal_epochs": 1,
            "progress": False,
            "out": str(out / "run"),
        },
    )
    dmvae.train(config)

    # The images of the training samples that have no tag, as files someone would hold.
    images, _, labels = make_data(args.train_size, 0)
    lacking = np.flatnonzero(~observed["tag"])[:200]
    pngs = out / "no-tag"
    pngs.mkdir(exist_ok=True)
    for i, row in enumerate(lacking):
        Image.fromarray(images[row, 0]).save(pngs / f"{i:04d}.png")
    given = ["--given", f"image={pngs}", "--to", "tag", "--device", "cpu"]
    status = dmvae_cli(["generate", str(out / "run"), *given, "--out", str(out / "imputed")])
    if status != 0:
        raise SystemExit(status)
    imputed = np.load(out / "imputed" / "tag.npy")

    model, _ = dmvae.load_run(out / "run", "cpu")
    g = torch.Generator().manual_seed(0)  # the command's --seed 0, on the CPU
    in_python = model.impute({"image": torch.from_numpy(images[lacking])}, "tag", generator=g)
    in_python = in_python["tag"]
    scores = {
        "imputed_tag_accuracy": float((imputed.argmax(1) == labels[lacking]).mean()),
        "python_matches_cli": float(np.allclose(in_python.numpy(), imputed, atol=1e-5)),
    }
    print(
        f"imputed tags name the class of {100 * scores['imputed_tag_accuracy']:.1f} % of "
        f"{len(lacking)} samples without one (chance: {100 / CLASSES:.0f} %)"
    )
    return scores


if __name__ == "__main__":
    main()
