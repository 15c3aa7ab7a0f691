"""Build PolyMNIST from MNIST and background images with the published procedure (MoPoE's
`MMNISTDataset._create_mmnist_dataset`; docs/protocol.md, "PolyMNIST").

Per digit and modality, an independent permutation of that digit's MNIST images fills files
`INDEX.LABEL.png` (INDEX counts within the digit), so a sample is one name across the modality
folders and its images are different MNIST instances of one digit. Each image is a random
28x28 crop of the modality's background with the pixels where the MNIST digit is > 128
inverted (255 - v). The official backgrounds are photographs we cannot download;
`procedural_backgrounds` makes smooth colour textures instead (not the official ones).
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from dmvae.data.polymnist import FOLDER, SIZE
from dmvae.data.sources import load_mnist
from dmvae.errors import ConfigError, DataError

THRESHOLD = 128  # MNIST pixels above it belong to the digit (the official binarisation)
BACKGROUND_SUFFIXES = (".jpg", ".jpeg", ".png")


def procedural_backgrounds(n: int = 5, size: int = 256, seed: int = 0) -> list[Tensor]:
    """`n` smooth random colour textures, uint8 [3, size, size]: noise at five octaves,
    bicubically upsampled and summed, then stretched per channel to the full range."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        field = torch.zeros(1, 3, size, size)
        for octave in range(5):
            cells = 4 * 2**octave
            noise = torch.rand(1, 3, cells, cells, generator=gen)
            up = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
            field += up / 2**octave
        lo = field.amin(dim=(2, 3), keepdim=True)
        hi = field.amax(dim=(2, 3), keepdim=True)
        field = (field - lo) / (hi - lo)
        out.append((field[0] * 255).round().clamp(0, 255).to(torch.uint8))
    return out


def load_backgrounds(folder: str | Path, n: int) -> list[Tensor]:
    """The first `n` images of a folder in name order (the official code takes *.jpg sorted),
    as uint8 [3, H, W]; each must be larger than 28 pixels both ways."""
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in BACKGROUND_SUFFIXES)
    if len(paths) < n:
        raise DataError(
            f"{folder} holds {len(paths)} background image(s) (.jpg/.jpeg/.png), {n} "
            "modalities need one each; add images or generate fewer modalities"
        )
    out = []
    for path in paths[:n]:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
        if min(rgb.shape[:2]) <= SIZE:
            raise DataError(f"background {path} is {rgb.shape[1]}x{rgb.shape[0]}: need > {SIZE}")
        out.append(torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous())
    return out


def add_background(digits: Tensor, background: Tensor, rng: np.random.Generator) -> Tensor:
    """uint8 [N, 3, 28, 28]: a random crop of `background` ([3, H, W]) per MNIST digit
    ([N, 28, 28] or [N, 1, 28, 28]), inverted where the digit is > 128."""
    digits = digits.reshape(-1, SIZE, SIZE)
    n, (_, h, w) = len(digits), background.shape
    x = torch.from_numpy(rng.integers(0, w - SIZE, n))  # left edge, as np.random.randint
    y = torch.from_numpy(rng.integers(0, h - SIZE, n))  # top edge
    offsets = torch.arange(SIZE)
    rows = (y[:, None] + offsets)[:, :, None]  # [N, 28, 1]
    cols = (x[:, None] + offsets)[:, None, :]  # [N, 1, 28]
    crops = background[:, rows, cols].permute(1, 0, 2, 3)  # [N, 3, 28, 28]
    mask = (digits > THRESHOLD)[:, None].expand_as(crops)
    return torch.where(mask, 255 - crops, crops)


def assign(labels: Tensor, num_modalities: int, gen: torch.Generator) -> list[tuple[int, Tensor]]:
    """Per digit, one [num_modalities, n_digit] tensor of MNIST indices: row m is an
    independent permutation of the digit's indices (position i is file "i.digit.png")."""
    out = []
    for digit in range(10):
        ixs = (labels == digit).nonzero().flatten()
        perms = [ixs[torch.randperm(len(ixs), generator=gen)] for _ in range(num_modalities)]
        out.append((digit, torch.stack(perms)))
    return out


def _write_pngs(job: tuple[Path, list[str], np.ndarray]) -> None:
    folder, names, images = job
    for name, image in zip(names, images, strict=True):
        Image.fromarray(image).save(folder / name, compress_level=1)


def make_split(
    out: Path,
    digits: Tensor,
    labels: Tensor,
    backgrounds: list[Tensor],
    seed: int,
    workers: int,
) -> int:
    """Write one split's m0..m{M-1} folders under `out`; the number of samples."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    jobs = []
    for m in range(len(backgrounds)):
        (out / f"m{m}").mkdir(parents=True)
    for digit, perms in assign(labels, len(backgrounds), gen):
        names = [f"{i}.{digit}.png" for i in range(perms.shape[1])]
        for m, background in enumerate(backgrounds):
            images = add_background(digits[perms[m]], background, rng)
            array = images.permute(0, 2, 3, 1).contiguous().numpy()
            jobs += [
                (out / f"m{m}", names[i : i + 2000], array[i : i + 2000])
                for i in range(0, len(names), 2000)
            ]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_pngs, jobs))
    else:
        for job in jobs:
            _write_pngs(job)
    return len(labels)


def _subset(images: Tensor, labels: Tensor, size: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random subset of MNIST (all of it when `size` is None)."""
    if size is None or size >= len(labels):
        return images, labels
    if size < 1:
        raise ConfigError(f"a split needs at least one image, got size {size}")
    rows = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:size]
    rows = rows.sort().values
    return images[rows], labels[rows]


def make_polymnist(
    out: str | Path,
    *,
    mnist_root: str | Path,
    backgrounds: list[Tensor] | None = None,
    num_modalities: int = 5,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    workers: int | None = None,
) -> dict[str, int]:
    """Write `out`/MMNIST/{train,test}/m0..m{M-1} from the MNIST files under `mnist_root`;
    `backgrounds` default to `procedural_backgrounds(seed=seed)`. The folder appears whole
    (it is written beside and renamed) and an existing one is never replaced."""
    if not 1 <= num_modalities:
        raise ConfigError(f"PolyMNIST needs at least one modality, got {num_modalities}")
    backgrounds = backgrounds or procedural_backgrounds(num_modalities, seed=seed)
    if len(backgrounds) < num_modalities:
        raise ConfigError(f"{num_modalities} modalities need as many backgrounds")
    target = Path(out) / FOLDER
    if target.exists():
        raise DataError(f"{target} exists; remove it or choose another --out")
    tmp = target.with_name(f"{FOLDER}.{os.getpid()}.tmp")
    workers = workers or min(4, os.cpu_count() or 1)
    counts = {}
    try:
        for split, size, offset in (("train", train_size, 0), ("test", test_size, 1)):
            images, labels = load_mnist(mnist_root, split == "train")
            images, labels = _subset(images, labels, size, seed + offset)
            counts[split] = make_split(
                tmp / split, images, labels, backgrounds[:num_modalities], seed + offset, workers
            )
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts
