"""Classifiers that score generated images (coherence) and give features for a quick Frechet
distance: the benchmarks' digit classifiers, and a small CNN for an image modality of your own
data. They are trained by the project on the training split, cached as safetensors next to the
data under a key that holds a digest of the images and labels they were trained on (another
data set under the same name trains its own), and always used in eval mode (the original
release scored in train mode). `describe` says which classifier scored a number.
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

from dmvae.data.sources import load_mnist, load_svhn, user_cache_dir
from dmvae.errors import CheckpointError, DataError
from dmvae.files import atomic_path, writable
from dmvae.fingerprints import module_digest, tensor_digest

VERSION = 2  # 2: keys carry a digest of the training data
DEFAULTS = {
    "mnist": {"epochs": 10, "lr": 3e-3},
    "svhn": {"epochs": 15, "lr": 1e-3},
    "polymnist": {"epochs": 10, "lr": 3e-3, "shift": 0},
    "image": {"epochs": 10, "lr": 1e-3, "shift": 0},  # where a thing is may be its class
}
BENCHMARKS = ("mnist", "svhn", "polymnist")  # the kinds `dmvae classifiers train` knows
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


class ImageClassifier(nn.Module):
    """The small CNN for an image modality of your own data, any size and channel count:
    conv 32-64-128 (k3, ReLU, two 2x max-pools), global average pool, fc 128, then logits."""

    feature_dim = 128

    def __init__(self, channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.features_net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(128, 128),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, classes))

    def features(self, x: Tensor) -> Tensor:
        return self.features_net(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mnist": MnistClassifier,
    "svhn": SvhnClassifier,
    "polymnist": PolyMNISTClassifier,
    "image": ImageClassifier,
}


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
    kind: str, root: str | Path, download: bool = False, verify: bool = True
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train images, labels), (test images, labels) of a classifier kind (`verify`: check
    SVHN's MD5 sums, off for custom files in the official format)."""
    if kind == "mnist":
        return load_mnist(root, True, download), load_mnist(root, False, download)
    if kind == "svhn":
        return tuple(load_svhn(root, split, download, verify) for split in ("train", "test"))
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
    shape: dict[str, int] | None = None,
) -> nn.Module:
    """Train a classifier on uint8 (or [0, 1] float) images; returned in eval mode. `shape`:
    the architecture's arguments (`ImageClassifier`'s channels and classes)."""
    _check_kind(kind)
    defaults = DEFAULTS[architecture(kind)]
    epochs = epochs or defaults["epochs"]
    shift = defaults.get("shift", MAX_SHIFT)
    torch.manual_seed(seed)
    model = ARCHITECTURES[architecture(kind)](**(shape or {})).to(device)
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


def classifier_key(kind: str, digest: str, seed: int = 0) -> str:
    """File stem of a cached classifier: kind, architecture version, seed and the digest of
    the data it was trained and scored on (`data_digest`; epochs are metadata)."""
    return f"{kind}-v{VERSION}-s{seed}-d{digest}"


def data_digest(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> str:
    """Digest of a classifier's training and test images and labels."""
    return tensor_digest(*train, *test)


def kind_key(
    kind: str, root: str | Path, seed: int = 0, download: bool = False, verify: bool = True
) -> str:
    """The cache key of a benchmark classifier kind on the data under `root`."""
    return classifier_key(kind, data_digest(*training_sets(kind, root, download, verify)), seed)


def classifier_dirs(root: str | Path | None = None) -> list[Path]:
    """Where classifiers are cached: beside the data (when there is a data folder), then the
    user cache."""
    beside = [Path(root) / "dmvae_classifiers"] if root is not None else []
    return [*beside, user_cache_dir() / "classifiers"]


def find_classifier(directories: list[Path], key: str) -> Path | None:
    """The cached classifier `key` in the first of `directories` that has it."""
    return next((p for d in directories if (p := d / f"{key}.safetensors").exists()), None)


def save_classifier(model: nn.Module, directories: list[Path], key: str, info: dict) -> Path:
    """Write to the first writable of `directories` (the data root, then the user cache),
    atomically."""
    directory = next(d for d in directories if writable(d))
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
    verify: bool = True,
) -> nn.Module:
    """The cached classifier of `kind` for the data under `root`, in eval mode with frozen
    weights; trains it first if asked to (`progress`: with a progress bar)."""
    _check_kind(kind)
    train, test = training_sets(kind, root, verify=verify)
    fix = f"dmvae classifiers train --dataset {architecture(kind)}"
    missing = (
        None
        if train_if_missing
        else f"no trained {kind} classifier for the data in {root} (in "
        f"{classifier_dirs(root)[0]} or the user cache); run `{fix}` first"
    )
    return cached_classifier(
        kind,
        train,
        test,
        classifier_dirs(root),
        device=device,
        seed=seed,
        progress=progress,
        missing=missing,
        fix=fix,
    )


def cached_classifier(
    kind: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    directories: list[Path],
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
    shape: dict[str, int] | None = None,
    missing: str | None = None,
    fix: str = "",
) -> nn.Module:
    """The classifier of `kind` cached in `directories` under the key of this data, trained
    there first (`fit_and_cache`), or, with `missing`, a `DataError` saying how to get it."""
    path = find_classifier(directories, classifier_key(kind, data_digest(train, test), seed))
    if path is None:
        if missing:
            raise DataError(missing)
        path, _ = fit_and_cache(
            kind,
            train,
            test,
            directories,
            seed=seed,
            device=device,
            progress=progress,
            shape=shape,
        )
    return read_classifier(path, device, fix=fix)


def read_classifier(path: Path, device: torch.device | str = "cpu", fix: str = "") -> nn.Module:
    """A cached classifier file, in eval mode with frozen weights, carrying its `provenance`
    (what `describe` reports)."""
    try:
        info = read_info(path)
        model = ARCHITECTURES[architecture(info.get("kind", path.name))](**info.get("shape", {}))
        model.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"classifier file {path} is corrupt ({err}); delete it"
            + (f" and run `{fix}`" if fix else " to retrain it")
        ) from err
    model.requires_grad_(False)
    model.provenance = {
        "kind": info.get("kind"),
        "source": str(path),
        "test_accuracy": info.get("test_accuracy"),
        "seed": info.get("seed"),
        "epochs": info.get("epochs"),
    }
    return _for_inference(model.to(device))


def describe(model: nn.Module, source: str = "given by the experiment") -> dict:
    """Which classifier this is: the library's (kind, file, test accuracy when trained) or the
    user's (`source`), with a digest of its weights."""
    info = dict(
        getattr(model, "provenance", None) or {"kind": type(model).__name__, "source": source}
    )
    info["weights"] = module_digest(model) if model.state_dict() else "none"
    return info


def train_and_cache(
    kind: str,
    root: str | Path,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    epochs: int | None = None,
    download: bool = False,
    progress: bool = True,
    verify: bool = True,
) -> tuple[Path, dict]:
    """Train a benchmark classifier on its training set, score it on the test set, and cache
    it with the score."""
    _check_kind(kind)
    train, test = training_sets(kind, root, download, verify)
    return fit_and_cache(
        kind,
        train,
        test,
        classifier_dirs(root),
        seed=seed,
        epochs=epochs,
        device=device,
        progress=progress,
    )


def fit_and_cache(
    kind: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    directories: list[Path],
    *,
    seed: int = 0,
    epochs: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    shape: dict[str, int] | None = None,
) -> tuple[Path, dict]:
    """Train on `train`, score on `test`, and save to the first writable of `directories`
    under the key of this data (`classifier_key`)."""
    start = time.perf_counter()
    x, y = train
    model = train_classifier(
        kind, x, y, epochs=epochs, seed=seed, device=device, progress=progress, shape=shape
    )
    acc = accuracy(model, test[0].to(device), test[1])
    info = {
        "kind": kind,
        "test_accuracy": acc,
        "epochs": epochs or DEFAULTS[architecture(kind)]["epochs"],
        "seed": seed,
        "version": VERSION,
        "train_seconds": round(time.perf_counter() - start, 1),
        "shape": shape or {},
    }
    key = classifier_key(kind, data_digest(train, test), seed)
    return save_classifier(model, directories, key, info), info


def own_image_classifier(
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    directories: list[Path],
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """The library's small CNN (`ImageClassifier`) for an image modality of your own data with
    labels: trained on the train split on first use and cached by a digest of the data, like
    the digit classifiers. `name` goes into the cache key (e.g. the modality's)."""
    images, labels = train
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(f"the built-in classifier {name!r} needs uint8 images [N, C, H, W]")
    classes = int(max(labels.max().item(), test[1].max().item())) + 1
    if labels.unique().numel() < 2:
        raise DataError(
            f"the built-in classifier {name!r} needs labels with at least two classes; give "
            "labels.npy (or labels in from_tensors)"
        )
    shape = {"channels": int(images.shape[1]), "classes": classes}
    return cached_classifier(
        f"image-{name}",
        train,
        test,
        directories,
        device=device,
        seed=seed,
        progress=progress,
        shape=shape,
    )
