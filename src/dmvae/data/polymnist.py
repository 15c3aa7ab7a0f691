"""PolyMNIST (Sutter et al., ICLR 2021) read from the official folder layout.

`ROOT/MMNIST/{train,test}/m0..m4/INDEX.LABEL.png`: one folder per modality, 28x28 RGB images;
a sample is one file name present in every modality (docs/protocol.md, "PolyMNIST"). Decoding
~350k PNGs takes minutes, so each split's decoded images are cached once as uint8 tensors in a
safetensors file beside the data, keyed by the folder's file list (names, sizes, times); a
changed file list rebuilds it. The cache also records a content fingerprint per modality, which
keys the classifiers and feature statistics trained on these images.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from dmvae.data.batch import MultimodalData
from dmvae.data.sources import user_cache_dir
from dmvae.errors import ConfigError, DataError
from dmvae.files import atomic_path, writable

FOLDER = "MMNIST"  # what the official PolyMNIST.zip unpacks to (MoPoE's job_polymnist)
SPLITS = ("train", "test")
SIZE = 28
NAME = re.compile(r"^(\d+)\.(\d)\.png$")
CACHE_NAME = "dmvae_cache.safetensors"
CACHE_VERSION = 1
# The MoPoE README's download (a Google Drive folder, not a direct file) and MMVAE+'s archive,
# which holds PolyMNIST.zip inside data_ICLR.zip; neither can be fetched here unattended.
URLS = (
    "https://drive.google.com/drive/folders/1lr-laYwjDq3AzalaIe9jN4shpt1wBsYM",
    "https://polybox.ethz.ch/index.php/s/Eg4RVLC0XxnKAJX/download",
)
GET_IT = (
    f"download PolyMNIST.zip ({URLS[0]}, from the MoPoE README) and unzip it into the data root "
    "so that ROOT/MMNIST/{train,test}/m0..m4 exist, or generate it with `dmvae data "
    "make-polymnist --out ROOT`"
)


def split_dir(root: str | Path, split: str) -> Path:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: use 'train' or 'test'")
    return Path(root) / FOLDER / split


def modality_dirs(folder: Path, needed: int) -> list[Path]:
    """m0, m1, ... as far as they go; at least `needed` of them."""
    if not folder.is_dir():
        raise DataError(f"PolyMNIST not found: {folder} does not exist; {GET_IT}")
    found = []
    while (folder / f"m{len(found)}").is_dir():
        found.append(folder / f"m{len(found)}")
    if len(found) < needed:
        have = ", ".join(p.name for p in found) or "no modality folder"
        raise DataError(
            f"{folder} has {have} but {needed} modalities need m0..m{needed - 1}: the modality "
            f"folder m{len(found)} is missing; use data.modalities <= {len(found)} or {GET_IT}"
        )
    return found


def _sorted_names(folder: Path) -> list[tuple[int, int, str]]:
    """(index, label, name) of every PNG of a modality folder, by index then label."""
    entries, bad = [], []
    for name in os.listdir(folder):
        if not name.endswith(".png"):
            continue
        match = NAME.match(name)
        if match is None:
            bad.append(name)
        else:
            entries.append((int(match[1]), int(match[2]), name))
    if bad:
        shown = ", ".join(sorted(bad)[:3])
        raise DataError(
            f"{folder} holds {len(bad)} PNG file(s) not named INDEX.LABEL.png (e.g. {shown}); "
            "remove or rename them, or regenerate the data set"
        )
    return sorted(entries)


def scan(folder: Path, needed: int) -> list[list[tuple[int, int, str]]]:
    """The files of every modality of a split, checked to pair up name by name."""
    lists = [_sorted_names(d) for d in modality_dirs(folder, needed)]
    counts = [len(x) for x in lists]
    if len(set(counts)) != 1:
        shown = ", ".join(f"m{k}: {n}" for k, n in enumerate(counts))
        raise DataError(
            f"{folder}: the modalities hold different numbers of images ({shown}); every "
            "modality needs one image per sample, so the set is incomplete: re-download or "
            "regenerate it"
        )
    if counts[0] == 0:
        raise DataError(f"{folder}/m0 holds no INDEX.LABEL.png images; {GET_IT}")
    for k, entries in enumerate(lists[1:], start=1):
        if entries != lists[0]:
            j = next(j for j, (a, b) in enumerate(zip(lists[0], entries, strict=True)) if a != b)
            (ia, _, na), (ib, _, nb) = lists[0][j], entries[j]
            what = "label mismatch" if ia == ib else "different file names"
            raise DataError(
                f"{folder}: {what} across modalities at sample {j}: m0/{na} but m{k}/{nb}; the "
                "images of one sample share their INDEX.LABEL name in every modality: "
                "re-download or regenerate the data set"
            )
    return lists


def signature(folder: Path, lists: list[list[tuple[int, int, str]]]) -> str:
    """A digest of the file list: names, sizes and modification times of every modality."""
    h = hashlib.blake2b(digest_size=16)
    for k, entries in enumerate(lists):
        for _, _, name in entries:
            st = os.stat(folder / f"m{k}" / name)
            h.update(f"m{k}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def decode(folder: Path, names: list[str]) -> Tensor:
    """uint8 [N, 3, 28, 28] from PNG files; any other size is an error naming the file."""
    out = np.empty((len(names), SIZE, SIZE, 3), np.uint8)
    for i, name in enumerate(names):
        path = folder / name
        try:
            with Image.open(path) as img:
                if img.size != (SIZE, SIZE):
                    raise DataError(
                        f"{path} is {img.size[0]}x{img.size[1]} pixels, PolyMNIST images are "
                        f"{SIZE}x{SIZE}: replace the file or regenerate the data set"
                    )
                out[i] = np.asarray(img.convert("RGB"))
        except OSError as err:
            raise DataError(f"cannot read {path} ({err}); replace it or regenerate") from err
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def cache_path(folder: Path) -> Path:
    """Beside the split's folders, else (read-only data) in the user cache."""
    if writable(folder):
        return folder / CACHE_NAME
    key = hashlib.blake2b(str(folder.resolve()).encode(), digest_size=8).hexdigest()
    return user_cache_dir() / "polymnist" / f"{folder.name}-{key}.safetensors"


def _cached_info(path: Path, sig: str) -> dict | None:
    """The cache's metadata if it was built from this file list, else None."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "{}"))
    except (SafetensorError, OSError, ValueError):
        return None  # a corrupt cache is rebuilt
    if info.get("version") != CACHE_VERSION or info.get("signature") != sig:
        return None
    return info


def _build_cache(
    folder: Path, lists: list[list[tuple[int, int, str]]], sig: str, path: Path
) -> dict:
    """Decode every modality once and write images, labels and fingerprints atomically."""
    labels = torch.tensor([label for _, label, _ in lists[0]], dtype=torch.int64)
    tensors, fingerprints = {"labels": labels}, {}
    for k, entries in enumerate(lists):
        images = decode(folder / f"m{k}", [name for _, _, name in entries])
        tensors[f"m{k}"] = images
        h = hashlib.blake2b(images.numpy().tobytes(), digest_size=16)
        h.update(labels.numpy().tobytes())
        fingerprints[f"m{k}"] = h.hexdigest()
    info = {
        "version": CACHE_VERSION,
        "signature": sig,
        "modalities": len(lists),
        "fingerprints": fingerprints,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"info": json.dumps(info)})
    return info


def prepare_split(root: str | Path, split: str, needed: int = 5) -> tuple[Path, dict]:
    """Check a split's files and make sure its cache is current; the cache's path and metadata."""
    folder = split_dir(root, split)
    lists = scan(folder, needed)
    sig = signature(folder, lists)
    path = cache_path(folder)
    info = _cached_info(path, sig)
    if info is None:
        info = _build_cache(folder, lists, sig, path)
    return path, info


def fingerprints(root: str | Path, num_modalities: int) -> list[str]:
    """A short digest per modality of its train and test images and labels: classifiers and
    feature statistics are keyed by it, so other PolyMNIST images never reuse them."""
    infos = [prepare_split(root, split, num_modalities)[1] for split in SPLITS]
    out = []
    for k in range(num_modalities):
        h = hashlib.blake2b(digest_size=6)
        for info in infos:
            h.update(info["fingerprints"][f"m{k}"].encode())
        out.append(h.hexdigest())
    return out


def load_split(
    root: str | Path, split: str, num_modalities: int
) -> tuple[dict[str, Tensor], Tensor]:
    """uint8 [N, 3, 28, 28] images of m0..m{num_modalities - 1} and int64 [N] labels."""
    path, _ = prepare_split(root, split, num_modalities)
    with safe_open(str(path), framework="pt") as f:
        images = {f"m{k}": f.get_tensor(f"m{k}") for k in range(num_modalities)}
        labels = f.get_tensor("labels")
    return images, labels


def load_polymnist(
    root: str | Path,
    split: str,
    num_modalities: int = 5,
    *,
    download: bool = False,
    size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> MultimodalData:
    """PolyMNIST as `MultimodalData` (modalities "m0".."m{M-1}"); `size`: a seeded random
    subset of that many samples (None: all)."""
    if download and not split_dir(root, split).is_dir():
        raise DataError(f"PolyMNIST cannot be downloaded automatically; {GET_IT}")
    images, labels = load_split(root, split, num_modalities)
    data = MultimodalData.from_tensors(images, labels).random_subset(size, seed)
    return data.to(device)
