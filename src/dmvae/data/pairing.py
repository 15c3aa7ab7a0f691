"""Pairing rules of the two benchmarks (docs/protocol.md, "Data pairing"), as pure functions of
label arrays, and an index-file cache that never serves a file built from other parameters or
other data."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dmvae.files import atomic_path, writable

# The release pairs samples with this seed; every default pairing uses it.
PAIRING_SEED = 42


def _as_numpy(labels: Tensor | np.ndarray) -> np.ndarray:
    return labels.cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)


def pair_mnist_svhn(
    mnist_labels: Tensor | np.ndarray,
    svhn_labels: Tensor | np.ndarray,
    dm: int = 20,
    max_per_class: int = 10000,
    seed: int = PAIRING_SEED,
) -> tuple[Tensor, Tensor]:
    """MNIST and SVHN indices of the pairs: per digit, the first n = min(#mnist, #svhn,
    max_per_class) sorted indices of each, then `dm` independent random permutations of both
    lists (pair i of permutation k is (perm_k(mnist)[i], perm_k'(svhn)[i]))."""
    ml, sl = _as_numpy(mnist_labels), _as_numpy(svhn_labels)
    rng = np.random.default_rng(seed)
    out_m, out_s = [], []
    for digit in range(10):
        idx_m = np.flatnonzero(ml == digit)
        idx_s = np.flatnonzero(sl == digit)
        n = min(len(idx_m), len(idx_s), max_per_class)
        idx_m, idx_s = idx_m[:n], idx_s[:n]
        for _ in range(dm):
            out_m.append(idx_m[rng.permutation(n)])
            out_s.append(idx_s[rng.permutation(n)])
    return _concat(out_m), _concat(out_s)


def _concat(parts: list[np.ndarray]) -> Tensor:
    return torch.from_numpy(np.concatenate(parts) if parts else np.zeros(0, np.int64)).long()


def pair_mnist_tuples(
    labels: Tensor | np.ndarray, num_modalities: int, seed: int = PAIRING_SEED
) -> Tensor:
    """[N, M] indices: per class, each modality is an independent within-class permutation of
    that class's indices, so every tuple's images share a label and N equals the data size."""
    lab = _as_numpy(labels)
    rng = np.random.default_rng(seed)
    cols = np.empty((len(lab), num_modalities), dtype=np.int64)
    for digit in np.unique(lab):
        idx = np.flatnonzero(lab == digit)
        for m in range(num_modalities):
            cols[idx, m] = idx[rng.permutation(len(idx))]
    return torch.from_numpy(cols)


def fingerprint(*arrays: Tensor | np.ndarray) -> str:
    """A short hash of the label arrays a pairing was built from."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(_as_numpy(a)).astype(np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def cache_file_name(name: str, params: dict[str, Any]) -> str:
    """E.g. mnist_svhn_train_dm20_max_per_class10000_seed42.pt"""
    parts = [name] + [f"{k}{v}" for k, v in sorted(params.items())]
    return "_".join(parts) + ".pt"


def cached_pairing(
    cache_dirs: list[Path],
    name: str,
    params: dict[str, Any],
    data_fingerprint: str,
    build: Callable[[], dict[str, Tensor]],
) -> dict[str, Tensor]:
    """Load the index tensors `build` makes, from the first cache directory that has a valid
    file, else build them and write them atomically into the first writable directory.

    A file is valid only if it holds the same parameters and data fingerprint; anything else
    (another data set, a corrupt file) is rebuilt with a warning, never used.
    """
    file_name = cache_file_name(name, params)
    expected = {"params": json.dumps(params, sort_keys=True), "fingerprint": data_fingerprint}
    for directory in cache_dirs:
        path = directory / file_name
        if not path.exists():
            continue
        try:
            stored = torch.load(path, weights_only=True)
            meta = {"params": stored["params"], "fingerprint": stored["fingerprint"]}
            if meta == expected:
                return stored["index"]
            warnings.warn(
                f"{path} was built from other parameters or data; rebuilding it", stacklevel=2
            )
        except Exception as err:  # noqa: BLE001 - any unreadable file is rebuilt
            warnings.warn(f"{path} is unreadable ({err}); rebuilding it", stacklevel=2)
    index = build()
    for directory in cache_dirs:
        if writable(directory):
            with atomic_path(directory / file_name) as tmp:
                torch.save({**expected, "index": index}, tmp)
            break
    return index
