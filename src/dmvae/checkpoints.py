"""Checkpoints as one safetensors file, written atomically.

Model weights, optimiser states and RNG states are all tensors, so one safetensors file holds
them (no pickle); the step, the optimisers' hyperparameters and the config go in its metadata.
The file is written to a temporary name and moved into place, so a crash never leaves a
half-written checkpoint and the previous one stays valid until the new one is complete.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from dmvae.errors import CheckpointError
from dmvae.files import atomic_path

FORMAT = "dmvae-checkpoint-1"


def _flatten_optimizer(prefix: str, state: dict) -> tuple[dict[str, Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            name = f"{prefix}/{idx}/{key}"
            if isinstance(value, Tensor):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(prefix: str, tensors: dict[str, Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    items = [(k, v) for k, v in tensors.items() if k.startswith(prefix + "/")]
    items += list(meta["scalars"].items())
    for name, value in items:
        idx, key = name[len(prefix) + 1 :].split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    rng: dict[str, Tensor],
    info: dict[str, Any],
) -> None:
    """Write model, optimisers, RNG states and `info` (JSON-able) to `path` atomically."""
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_meta = {}
    for name, opt in optimizers.items():
        t, meta = _flatten_optimizer(f"optim/{name}", opt.state_dict())
        tensors.update(t)
        optim_meta[name] = meta
    tensors.update({f"rng/{k}": v.cpu().contiguous() for k, v in rng.items()})
    metadata = {
        "format": FORMAT,
        "info": json.dumps(info),
        "optimizers": json.dumps(optim_meta),
    }
    with atomic_path(path, fsync=True) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as err:  # its I/O errors (a full disk) as the OSError they are
            raise _os_error(err, path) from err


def _os_error(err: SafetensorError, path: Path) -> OSError:
    """safetensors reports a failed write as "... I/O error: No space left on device (os error
    28)": the OSError with that errno, so that callers see a file system error."""
    found = re.search(r"os error (\d+)", str(err))
    if found is None:
        return OSError(f"{path}: {err}")
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


def read_metadata(path: Path) -> dict[str, Any]:
    """The decoded metadata (step, config, optimiser settings) from the file's header alone,
    without reading its tensors; a clear error for a missing or corrupt file."""
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: train the run first (dmvae train)")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        if raw.get("format") != FORMAT:
            raise CheckpointError(
                f"{path} is not a dmvae checkpoint (format {raw.get('format')!r})"
            )
        return {"info": json.loads(raw["info"]), "optimizers": json.loads(raw["optimizers"])}
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise _corrupt(path, err) from err


def read_checkpoint(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """All tensors and the decoded metadata; a clear error for a missing or corrupt file."""
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise _corrupt(path, err) from err
    return tensors, meta


def _corrupt(path: Path, err: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {path} is corrupt or truncated ({err}); delete it to retrain, or "
        "restore it from a backup"
    )


def load_model_weights(model: torch.nn.Module, tensors: dict[str, Tensor], path: Path) -> None:
    weights = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path} does not fit this model ({str(err).splitlines()[0]}); was it "
            "written with another config?"
        ) from err


# How an optimiser computes (a fused kernel on CUDA, a loop on the CPU), not what: a run
# resumed on another device keeps the live optimiser's choice, not the checkpoint's.
IMPLEMENTATION = ("fused", "foreach", "capturable")


def load_optimizer(
    opt: torch.optim.Optimizer, name: str, tensors: dict[str, Tensor], meta: dict
) -> None:
    saved = _unflatten_optimizer(f"optim/{name}", tensors, meta["optimizers"][name])
    for group, live in zip(saved["param_groups"], opt.param_groups, strict=False):
        group.update({k: live[k] for k in IMPLEMENTATION if k in live})
    opt.load_state_dict(saved)


def rng_states(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k[len("rng/") :]: v for k, v in tensors.items() if k.startswith("rng/")}
