"""MNIST and SVHN as uint8 tensors, read through torchvision's data set classes.

`download=False` never touches the network: missing files raise one `DataError` that names
them, the folder they belong in and `--download`. With `download=True` only missing files are
fetched; a failed download names the URLs and the folder to copy the files into by hand, and
unreadable files name the file and how to replace it.
"""

from __future__ import annotations

import contextlib
import contextvars
import http.client
import io
import os
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dmvae.errors import DataError

MNIST_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
ELSEWHERE = "or point --data-root / DMVAE_DATA at a data folder that has the files"
FIX = f"pass --download (with a network), put the official files there, {ELSEWHERE}"
# What a download without a network raises (torchvision's MNIST wraps them in RuntimeError).
NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException)
_DOWNLOAD_BARS = contextvars.ContextVar("dmvae_download_bars", default=True)


@contextlib.contextmanager
def download_bars(show: bool) -> Iterator[None]:
    """Whether torchvision's download bars may show inside this block (`--no-progress` says
    no): the commands set it once instead of passing a flag through every data loader."""
    token = _DOWNLOAD_BARS.set(show)
    try:
        yield
    finally:
        _DOWNLOAD_BARS.reset(token)


def _fetching(downloading: bool) -> contextlib.AbstractContextManager:
    """Silences torchvision's bars while it downloads, unless bars are allowed."""
    if not downloading or _DOWNLOAD_BARS.get():
        return contextlib.nullcontext()
    return contextlib.redirect_stderr(io.StringIO())


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/dmvae, else ~/.cache/dmvae."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dmvae"


def default_data_root() -> Path:
    """The data root when neither an argument nor $DMVAE_DATA names one."""
    return user_cache_dir() / "data"


def resolve_data_root(arg: str | Path | None = None) -> Path:
    """The data root: the argument, else $DMVAE_DATA, else the per-user cache directory."""
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get("DMVAE_DATA")
    if env:
        return Path(env).expanduser()
    return default_data_root()


def _reason(err: BaseException) -> str:
    """The last line of an error (torchvision's download errors span several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _download_failed(err: BaseException, still_missing: bool) -> bool:
    """Whether a failure while fetching was the download (not the reading of the files)."""
    return still_missing or isinstance(err, NETWORK_ERRORS) or "Error downloading" in str(err)


def _mnist_missing(raw: Path) -> list[str]:
    """The MNIST files torchvision needs (all four, whichever split is read) that are absent."""
    names = [f for split in (True, False) for f in MNIST_FILES[split]]
    return [f for f in names if not (raw / f).exists()]


def load_mnist(root: str | Path, train: bool, download: bool = False) -> tuple[Tensor, Tensor]:
    """MNIST images uint8 [N, 1, 28, 28] and labels int64 [N]."""
    from torchvision.datasets import MNIST

    root = Path(root)
    raw = root / "MNIST" / "raw"
    missing = _mnist_missing(raw)
    if missing and not download:
        packed = all((raw / f"{f}.gz").exists() for f in missing)
        raise DataError(
            f"MNIST files missing in {raw}: {', '.join(missing)}; put them there"
            + (" (--download unpacks the .gz files found there)" if packed else "")
            + f", pass --download to fetch them (needs a network), {ELSEWHERE}"
        )
    try:
        with _fetching(bool(missing)):
            ds = MNIST(str(root), train=train, download=bool(missing))
        images, labels = ds.data, ds.targets
    except (RuntimeError, OSError, ValueError, http.client.HTTPException) as err:
        still = _mnist_missing(raw)
        if missing and _download_failed(err, bool(still)):
            urls = " or ".join(MNIST.mirrors)
            raise DataError(
                f"could not download the MNIST files from {urls} ({_reason(err)}); without a "
                f"network, copy {', '.join(still or missing)} (or their .gz) into {raw}, "
                f"{ELSEWHERE}"
            ) from err
        raise DataError(
            f"cannot read MNIST from {raw} ({_reason(err)}); the files may be corrupt: delete "
            f"them and {FIX}"
        ) from err
    expected = 60000 if train else 10000
    if images.shape != (expected, 28, 28) or labels.shape != (expected,):
        raise DataError(
            f"MNIST {'train' if train else 'test'} files in {raw} hold images {tuple(images.shape)}"
            f" and labels {tuple(labels.shape)}, expected ({expected}, 28, 28) and ({expected},); "
            f"replace them with the official files"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"MNIST labels in {raw} are outside 0..9; replace the files")
    return images.to(torch.uint8).unsqueeze(1).contiguous(), labels.long()


def _svhn_class(verify: bool) -> type:
    """torchvision's SVHN, or a subclass that accepts a file without the official checksum."""
    from torchvision.datasets import SVHN

    if verify:
        return SVHN

    class UncheckedSVHN(SVHN):
        def _check_integrity(self) -> bool:
            return os.path.exists(os.path.join(self.root, self.filename))

    return UncheckedSVHN


def load_svhn(
    root: str | Path, split: str, download: bool = False, verify: bool = True
) -> tuple[Tensor, Tensor]:
    """SVHN images uint8 [N, 3, 32, 32] and labels int64 [N] in 0..9 (torchvision maps 10 to 0).

    `verify=False` skips torchvision's md5 check, for custom or test files in the official
    `.mat` format.
    """
    if split not in SVHN_FILES:
        raise DataError(f"unknown SVHN split {split!r}: use one of {list(SVHN_FILES)}")
    root = Path(root)
    path = root / SVHN_FILES[split]
    from torchvision.datasets import SVHN

    url = SVHN.split_list[split][0]
    if not path.exists() and not download:
        raise DataError(
            f"SVHN file missing: {path}; put the official {path.name} ({url}) in {root}, pass "
            f"--download to fetch it (needs a network), {ELSEWHERE}"
        )
    from scipy.io.matlab import MatReadError

    missing = not path.exists()
    try:
        with _fetching(missing):
            ds = _svhn_class(verify)(str(root), split=split, download=missing)
        images, labels = ds.data, ds.labels
    except (
        RuntimeError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
        MatReadError,
        http.client.HTTPException,
    ) as err:
        if missing and _download_failed(err, not path.exists()):
            raise DataError(
                f"could not download the SVHN file {path.name} from {url} ({_reason(err)}); "
                f"without a network, copy it into {root}, {ELSEWHERE}"
            ) from err
        hint = " (or verify=False / --no-verify for a custom file)" if verify else ""
        raise DataError(
            f"cannot read SVHN from {path} ({_reason(err)}); the file may be corrupt or not the "
            f"official one: delete it and {FIX}{hint}"
        ) from err
    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32) or len(images) != len(labels):
        raise DataError(
            f"{path} holds images {images.shape} and {len(labels)} labels, expected "
            "[N, 3, 32, 32] and N; replace it with the official file"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"SVHN labels in {path} are outside 1..10; replace the file")
    return torch.from_numpy(images.astype(np.uint8)).contiguous(), torch.from_numpy(labels)
