"""Turn a torch `Dataset` of per-sample dicts into whole tensors, once: the library trains from
tensors on the device (`MultimodalData`), so a user's existing `Dataset` is read a single time
instead of being rewritten.

Accepted items (MultiVae's convention and the plain ones): a mapping with a "data" dict of
modality tensors and optional "labels" and "masks" (True where the sample has a modality); a
mapping of modality tensors, with the label under `label_key`; or a pair (that mapping, label).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dmvae.errors import DataError

Item = tuple[dict[str, Tensor], Any, dict[str, bool]]


def split_item(item: Any, label_key: str) -> Item:
    """A dataset item as (modality tensors, label or None, which modalities it has)."""
    label = None
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], Mapping):
        item, label = item
    if not isinstance(item, Mapping):
        raise DataError(
            f"a dataset item is a {type(item).__name__}: return a dict of modality tensors "
            "(with the label under label_key), (dict, label), or MultiVae's "
            "{'data': ..., 'labels': ..., 'masks': ...}"
        )
    if "data" in item and isinstance(item["data"], Mapping):
        data = dict(item["data"])
        label = item.get("labels", label)
        masks = {m: _flag(v) for m, v in (item.get("masks") or {}).items()}
    else:
        data = {k: v for k, v in item.items() if k != label_key}
        label = item.get(label_key, label)
        masks = {}
    tensors = {m: torch.as_tensor(v) for m, v in data.items() if v is not None}
    present = {m: masks.get(m, True) and m in tensors for m in data}
    return tensors, label, present


def _flag(value: Any) -> bool:
    return bool(torch.as_tensor(value).reshape(-1)[0])


def available_memory() -> int | None:
    """Bytes of free physical memory (Linux), or None where it cannot be read."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def materialise(
    dataset: Dataset,
    modalities: Sequence[str] | None = None,
    label_key: str = "label",
    max_bytes: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Tensor] | None]:
    """Every item of `dataset` that has at least one of the `modalities`, stacked: one tensor
    per modality, the labels (None unless every item has one) and per modality a bool [N] of
    the samples that have it (None if all do).

    Refuses, before reading more than its first item, data that would not fit: more than
    `max_bytes` (default: the free memory) for the stacked tensors.
    """
    n = len(dataset)
    if n == 0:
        raise DataError("the dataset is empty: give at least one sample")
    first, _, _ = split_item(dataset[0], label_key)
    names = tuple(modalities) if modalities is not None else tuple(first)
    unknown = sorted(set(names) - set(first))
    if unknown:
        raise DataError(
            f"modalities {unknown} are not in the dataset's first item, which has "
            f"{sorted(first)}: name modalities it returns"
        )
    need = n * sum(first[m].numel() * first[m].element_size() for m in names)
    limit = max_bytes if max_bytes is not None else available_memory()
    if limit is not None and need > limit:
        raise DataError(
            f"the dataset needs {need / 2**30:.2f} GiB as tensors ({n} samples) but "
            f"{limit / 2**30:.2f} GiB {'are allowed' if max_bytes else 'are free'}: pass a "
            "torch.utils.data.Subset, fewer modalities, or uint8 images instead of floats"
        )
    out = {m: torch.zeros((n, *first[m].shape), dtype=first[m].dtype) for m in names}
    observed = {m: torch.ones(n, dtype=torch.bool) for m in names}
    labels: list[Any] = []
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    for i, item in enumerate(tqdm(loader, total=n, disable=not progress, desc="materialise")):
        tensors, label, present = split_item(item, label_key)
        labels.append(label)
        for m in names:
            if not present.get(m, False):
                observed[m][i] = False
                continue
            value = tensors[m]
            if value.shape != out[m].shape[1:]:
                raise DataError(
                    f"item {i}: modality {m!r} has shape {tuple(value.shape)}, item 0 has "
                    f"{tuple(out[m].shape[1:])}: give every sample of a modality one shape"
                )
            out[m][i] = value
    return _finished(out, labels, observed)


def _finished(
    out: dict[str, Tensor], labels: list[Any], observed: dict[str, Tensor]
) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Tensor] | None]:
    """The stacked samples less those with none of the modalities, the labels as a tensor
    (None unless every item had one), and the masks of the modalities with gaps."""
    has_labels = all(label is not None for label in labels)
    stacked = torch.as_tensor([int(label) for label in labels]) if has_labels else None
    rows = torch.stack(list(observed.values()), 1).any(1)
    if not bool(rows.all()):  # samples with none of the chosen modalities
        out = {m: t[rows] for m, t in out.items()}
        observed = {m: v[rows] for m, v in observed.items()}
        stacked = None if stacked is None else stacked[rows]
    masks = {m: v for m, v in observed.items() if not bool(v.all())}
    return out, stacked, masks or None
