"""Digit classifiers that score generated images (coherence) and give features for a quick
Frechet distance. They are trained by the project on the training sets, cached as safetensors
next to the data, and always used in eval mode (the original release scored in train mode).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from dmvae.data.pairing import _writable
from dmvae.data.sources import load_mnist, load_svhn, user_cache_dir
from dmvae.errors import CheckpointError, DataError
from dmvae.files import atomic_path

VERSION = 1
DEFAULTS = {
    "mnist": {"epochs": 10, "lr": 3e-3},
    "svhn": {"epochs": 15, "lr": 1e-3},
    "polymnist": {"epochs": 10, "lr": 3e-3, "shift": 0},
}
MAX_SHIFT = 2  # pixels of random translation while training: cheap, and worth ~0.5 % on MNIST


class MnistClassifier(nn.Module):
    """LeNet-style: conv 10 k5, pool, conv 20 k5, pool, fc 320-50-10 (dropout before the last)."""

    feature_dim = 50

    def __init__(self) -> None:
        super().__init__()
        self.features_net = nn.Sequential(
            nn.Conv2d(1, 10, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(320, 50),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(50, 10))

    def features(self, x: Tensor) -> Tensor:
        return self.features_net(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class SvhnClassifier(nn.Module):
    """Conv 32/64/128 (k4, s2) with BatchNorm and dropout, then 256, then linear to 10."""

    feature_dim = 256

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in ((3, 32), (32, 64), (64, 128)):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
        self.features_net = nn.Sequential(
            *layers,
            nn.Dropout(0.3),
            nn.Flatten(),
            nn.Linear(128 * 4 * 4, 256),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(256, 10))

    def features(self, x: Tensor) -> Tensor:
        return self.features_net(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class PolyMNISTClassifier(nn.Module):
    """MoPoE's PolyMNIST classifier without its two Dropout2d(0.5): conv 3-10-20 (k4, s2, p1,
    ReLU), linear 980-128 (dropout 0.5, ReLU), linear 128-10. With the conv dropout it stayed
    at chance for 3 epochs on 6,000 images (docs/protocol.md, "PolyMNIST")."""

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.features_net = nn.Sequential(
            nn.Conv2d(3, 10, 4, 2, 1),
            nn.ReLU(),
            nn.Conv2d(10, 20, 4, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(980, 128),
            nn.Dropout(0.5),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.features_net(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


ARCHITECTURES = {"mnist": MnistClassifier, "svhn": SvhnClassifier, "polymnist": PolyMNISTClassifier}


def architecture(kind: str) -> str:
    """The architecture of a classifier kind: "mnist", "svhn", or "polymnist" for the
    per-modality kinds "polymnist-mK-FINGERPRINT" (`polymnist_kinds`)."""
    return kind.split("-")[0]


def _check_kind(kind: str) -> None:
    if architecture(kind) not in ARCHITECTURES:
        raise DataError(f"unknown classifier {kind!r}: use one of {list(ARCHITECTURES)}")


def polymnist_kinds(root: str | Path, num_modalities: int | None = None) -> list[str]:
    """One classifier per PolyMNIST modality (all the data has, or the first
    `num_modalities`), named by a fingerprint of its images so that another PolyMNIST (other
    backgrounds, another draw) never reuses them."""
    from dmvae.data import polymnist

    n = num_modalities or len(polymnist.modality_dirs(polymnist.split_dir(root, "train"), 1))
    return [f"polymnist-m{k}-{digest}" for k, digest in enumerate(polymnist.fingerprints(root, n))]


def dataset_kinds(dataset: str, root: str | Path) -> list[str]:
    """The classifiers `dmvae classifiers train --dataset` trains."""
    return polymnist_kinds(root) if dataset == "polymnist" else [dataset]


def training_sets(
    kind: str, root: str | Path, download: bool = False
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train images, labels), (test images, labels) of a classifier kind."""
    if kind == "mnist":
        return load_mnist(root, True, download), load_mnist(root, False, download)
    if kind == "svhn":
        return load_svhn(root, "train", download), load_svhn(root, "test", download)
    from dmvae.data.polymnist import load_split

    modality = kind.split("-")[1]
    sets = [load_split(root, split, int(modality[1:]) + 1) for split in ("train", "test")]
    return tuple((images[modality], labels) for images, labels in sets)


def random_shift(x: Tensor, generator: torch.Generator, pixels: int = MAX_SHIFT) -> Tensor:
    """Translate each image by up to `pixels` in x and y (one batched grid_sample)."""
    n, _, h, w = x.shape
    shift = torch.randint(-pixels, pixels + 1, (n, 2), generator=generator, device=x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = shift[:, 0] * 2.0 / w
    theta[:, 1, 2] = shift[:, 1] * 2.0 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _as_float(images: Tensor) -> Tensor:
    return images.float().div(255.0) if images.dtype == torch.uint8 else images.float()


def _for_inference(model: nn.Module) -> nn.Module:
    """Eval mode with channels-last weights: with the channels-last inputs of `features`,
    oneDNN runs the convolutions ~2x faster on a CPU (benchmarks/bench_evaluation.py)."""
    return model.to(memory_format=torch.channels_last).eval()


def train_classifier(
    kind: str,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> nn.Module:
    """Train a digit classifier on uint8 (or [0, 1] float) images; returned in eval mode."""
    _check_kind(kind)
    defaults = DEFAULTS[architecture(kind)]
    epochs = epochs or defaults["epochs"]
    shift = defaults.get("shift", MAX_SHIFT)
    torch.manual_seed(seed)
    model = ARCHITECTURES[architecture(kind)]().to(device)
    images, labels = images.to(device), labels.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr or defaults["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * -(-len(images) // batch_size))
    gen = torch.Generator(device=device).manual_seed(seed)
    model.train()
    for _ in tqdm(range(epochs), desc=f"{kind} classifier", disable=not progress):
        order = torch.randperm(len(images), generator=gen, device=device)
        for start in range(0, len(images), batch_size):
            rows = order[start : start + batch_size]
            x = _as_float(images[rows])
            x = random_shift(x, gen, shift) if shift else x
            loss = F.cross_entropy(model(x), labels[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return _for_inference(model)


@torch.inference_mode()
def predict(model: nn.Module, images: Tensor, batch_size: int = 1024) -> Tensor:
    """Predicted classes of a modality's samples, in eval mode: images (uint8, or float
    [B, C, H, W]) are clamped to [0, 1] first, other modalities go in as they are."""
    model.eval()
    param = next(model.parameters(), None)
    device = images.device if param is None else param.device
    out = []
    for start in range(0, len(images), batch_size):
        x = _as_float(images[start : start + batch_size]).to(device)
        out.append(model(x.clamp(0, 1) if x.dim() == 4 else x).argmax(-1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1024) -> float:
    return (predict(model, images, batch_size).cpu() == labels.cpu()).float().mean().item()


@torch.inference_mode()
def classifier_features(model: nn.Module, x: Tensor) -> Tensor:
    """Penultimate features (MNIST 50-d, SVHN 256-d, PolyMNIST 128-d) for the quick
    classifier FD."""
    model.eval()
    return model.features(_as_float(x).clamp(0, 1))


def classifier_key(kind: str, seed: int = 0) -> str:
    """File stem of a cached classifier: architecture version and seed (epochs are metadata)."""
    return f"{kind}-v{VERSION}-s{seed}"


def classifier_dirs(root: str | Path) -> list[Path]:
    return [Path(root) / "dmvae_classifiers", user_cache_dir() / "classifiers"]


def find_classifier(root: str | Path, key: str) -> Path | None:
    for d in classifier_dirs(root):
        path = d / f"{key}.safetensors"
        if path.exists():
            return path
    return None


def save_classifier(model: nn.Module, root: str | Path, key: str, info: dict) -> Path:
    """Write to the data root (or the user cache if it is read-only), atomically."""
    directory = next(d for d in classifier_dirs(root) if _writable(d))
    path = directory / f"{key}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"info": json.dumps(info)})
    return path


def read_info(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("info", "{}"))


def load_classifier(
    kind: str,
    root: str | Path,
    device: torch.device | str = "cpu",
    train_if_missing: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """The cached classifier in eval mode with frozen weights; trains it first if asked to
    (`progress`: with a progress bar)."""
    _check_kind(kind)
    key = classifier_key(kind, seed)
    path = find_classifier(root, key)
    if path is None:
        if not train_if_missing:
            raise DataError(
                f"no trained {kind} classifier in {classifier_dirs(root)[0]} or the user cache; "
                f"run `dmvae classifiers train --dataset {architecture(kind)}` first"
            )
        path = train_and_cache(kind, root, device=device, seed=seed, progress=progress)[0]
    model = ARCHITECTURES[architecture(kind)]()
    try:
        model.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(
            f"classifier file {path} is corrupt ({err}); delete it and run "
            f"`dmvae classifiers train --dataset {architecture(kind)}`"
        ) from err
    model.requires_grad_(False)
    return _for_inference(model.to(device))


def train_and_cache(
    kind: str,
    root: str | Path,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    epochs: int | None = None,
    download: bool = False,
    progress: bool = True,
) -> tuple[Path, dict]:
    """Train on the training set, score on the test set, and cache with the score."""
    _check_kind(kind)
    (x, y), (xt, yt) = training_sets(kind, root, download)
    start = time.perf_counter()
    model = train_classifier(kind, x, y, epochs=epochs, seed=seed, device=device, progress=progress)
    acc = accuracy(model, xt.to(device), yt)
    info = {
        "kind": kind,
        "test_accuracy": acc,
        "epochs": epochs or DEFAULTS[architecture(kind)]["epochs"],
        "seed": seed,
        "version": VERSION,
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    key = classifier_key(kind, seed)
    return save_classifier(model, root, key, info), info
