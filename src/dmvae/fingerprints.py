"""Short content digests that key every cache (classifiers, feature statistics): a cached value
is found again only for the very tensors and weights it was computed from, so changing the data
or the classifier under the same name recomputes instead of returning an old number."""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor, nn


def tensor_digest(*tensors: Tensor | np.ndarray, size: int = 8) -> str:
    """Hex digest of the dtypes, shapes and bytes of `tensors` (any device)."""
    h = hashlib.blake2b(digest_size=size)
    for t in tensors:
        if isinstance(t, Tensor):
            t = t.detach().cpu()
            t = t.float() if t.dtype == torch.bfloat16 else t  # numpy has no bfloat16
            a = t.contiguous().numpy()
        else:
            a = np.ascontiguousarray(t)
        h.update(f"{a.dtype}{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def module_digest(module: nn.Module, size: int = 8) -> str:
    """Digest of a network's weights and buffers (by name, in name order, layout-independent)."""
    state = module.state_dict()
    h = hashlib.blake2b(digest_size=size)
    for name in sorted(state):
        h.update(name.encode())
        h.update(tensor_digest(state[name]).encode())
    return h.hexdigest()
