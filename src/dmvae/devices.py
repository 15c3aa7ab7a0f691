"""Device selection shared by every command (`--device auto|cpu|cuda[:N]`), and the choices
that depend on the device."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from dmvae.errors import ConfigError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """ "auto" picks CUDA when available, else the CPU; asking for CUDA without it is an error."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu or cuda") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but CUDA is not available; use --device cpu")
    return device


def adam(params: Iterable[Tensor], **kwargs: Any) -> torch.optim.Adam:
    """Adam, fused into one kernel per step on CUDA (the same update as the per-tensor loop;
    tests/test_gpu_step.py compares them on the CPU); torch's default elsewhere."""
    params = list(params)
    fused = bool(params) and all(p.device.type == "cuda" for p in params)
    return torch.optim.Adam(params, fused=fused or None, **kwargs)


def to_device(host: Tensor, device: torch.device) -> Tensor:
    """A host tensor on `device`, without making the host wait for the device: on CUDA it is
    copied from pinned memory with a non-blocking copy (a plain `.to(device)` waits for all
    queued kernels first)."""
    if host.device == device:
        return host
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device, non_blocking=True)
