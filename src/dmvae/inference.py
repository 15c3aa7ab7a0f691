"""Inference from files: reading inputs for a trained model (tensor files, images, folders of
images) and writing what it produces (tensor files, PNGs, one grid), for `dmvae generate`,
`sample` and `encode` and for anyone who calls `MultimodalVAE.impute` / `sample` / `represent`
from Python. docs/use.md describes the formats."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import make_grid, save_image

from dmvae import remote
from dmvae.checkpoints import read_metadata
from dmvae.config import RunConfig
from dmvae.data.batch import encoder_input
from dmvae.data.signature import ModalitySignature, Signature, signature_of
from dmvae.errors import ConfigError, DataError
from dmvae.evaluation.density import GMMSampler
from dmvae.evaluation.report import to_rgb
from dmvae.files import atomic_path
from dmvae.models.base import MultimodalVAE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TENSOR_SUFFIXES = (".npy", ".pt")
ENCODING_SUFFIXES = (".npy", ".npz", ".pt")
GRID_ROWS = 64  # the grid shows the first rows only; every sample has its own PNG
GMM_FILE = Path("eval") / "gmm.npz"  # where `dmvae evaluate` saves the ex-post GMM


# ------------------------------------------------------------------ reading
def run_signature(model: MultimodalVAE, config: RunConfig) -> Signature:
    """The shapes and dtypes the model was trained on: the checkpoint's record, else (runs
    trained before it was recorded) read off the experiment's test split, and kept on the model."""
    if model.data_signature is None:
        model.data_signature = signature_of(config.build_data("test"))
    return model.data_signature


def read_inputs(
    paths: Mapping[str, str | Path], signature: Signature, resize: bool = False
) -> dict[str, Tensor]:
    """One raw tensor per modality from its file or folder (`read_input`)."""
    unknown = [m for m in paths if m not in signature]
    if unknown:
        raise ConfigError(
            f"unknown given modalities {unknown}: this model has {list(signature)}; name them "
            "as MODALITY=PATH"
        )
    return {m: read_input(Path(p), m, signature[m], resize) for m, p in paths.items()}


def read_input(path: Path, name: str, signature: ModalitySignature, resize: bool) -> Tensor:
    """A `.npy` / `.pt` tensor (rows of samples, or one sample), or for an image modality a
    PNG/JPEG file or a folder of them (read in name order): images get the training data's
    channels (grayscale <-> RGB converted) and, with `resize`, its size; otherwise a different
    size is refused."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(
                f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} images: put the inputs of modality "
                f"{name!r} there, or pass a .npy/.pt file"
            )
        return torch.cat([read_input(p, name, signature, resize) for p in files])
    suffix = path.suffix.lower()
    if not path.exists():
        raise DataError(f"no file {path} for modality {name!r}: check the path")
    if suffix == ".npy":
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as err:
            raise DataError(
                f"{path} is not a readable .npy array ({err}); save it with np.save"
            ) from err
    if suffix == ".pt":
        value = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(value, Tensor):
            raise DataError(
                f"{path} holds a {type(value).__name__}, not a tensor: save one tensor per file"
            )
        return value
    if suffix in IMAGE_SUFFIXES:
        if not signature.is_image:
            raise DataError(
                f"modality {name!r} is not an image modality ({signature.describe()}): pass its "
                "inputs as a .npy or .pt file"
            )
        return read_image(path, signature, resize)[None]
    raise DataError(
        f"{path}: unknown input format {suffix or '(none)'}; use "
        f"{', '.join(TENSOR_SUFFIXES + IMAGE_SUFFIXES)} or a folder of images"
    )


def read_image(path: Path, signature: ModalitySignature, resize: bool) -> Tensor:
    """One image as uint8 [C, H, W] with the signature's channels and, if `resize`, size."""
    channels, height, width = signature.shape
    if channels not in (1, 3):
        raise DataError(
            f"modality with {channels} channels: images files give 1 or 3; pass a .npy/.pt file"
        )
    try:  # Pillow, not torchvision.io's deprecated decoders; L/RGB convert the channels
        with Image.open(path) as opened:
            pixels = np.array(opened.convert("L" if channels == 1 else "RGB"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be decoded as an image ({err}); re-save it as PNG") from err
    image = torch.from_numpy(pixels)
    image = image[None] if channels == 1 else image.permute(2, 0, 1).contiguous()
    if tuple(image.shape[1:]) != (height, width):
        if not resize:
            raise DataError(
                f"{path} is {image.shape[2]}x{image.shape[1]} pixels, the model was trained on "
                f"{width}x{height}: resize it, or pass --resize (resize=True)"
            )
        image = TF.resize(image, [height, width], antialias=True)
    return image


def saved_gmm(run_dir: str | Path, device: torch.device | str = "cpu") -> GMMSampler:
    """The ex-post GMM `dmvae evaluate` saved for the run's current checkpoint; never refitted
    here (fitting needs the training data and minutes). A shared run ("hf://...") is read
    from its copy in the Hugging Face cache."""
    run_dir = remote.local_run(run_dir)
    path = run_dir / GMM_FILE
    if not path.exists():
        raise DataError(
            f"{run_dir} has no ex-post GMM ({path}): run `dmvae evaluate {run_dir} --metrics gmm` "
            "first, or sample from the prior"
        )
    fitted = _gmm_step(run_dir)
    step = read_metadata(run_dir / "checkpoint.safetensors")["info"].get("step")
    if fitted is not None and fitted != step:
        raise DataError(
            f"{path} was fitted at step {fitted}, the checkpoint is at step {step}: run "
            f"`dmvae evaluate {run_dir} --metrics gmm` again"
        )
    return GMMSampler.load(path).to(device)


def _gmm_step(run_dir: Path) -> int | None:
    """The checkpoint step eval/metrics.json says the GMM was fitted at (None if unrecorded)."""
    try:
        metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
        return metrics["provenance"]["gmm"]["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------ writing
def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to mix new outputs into a folder that holds files, unless `overwrite`."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file: name a folder for the outputs")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(
            f"{out} is not empty: choose a new output folder, or pass --overwrite to replace "
            "the files written there"
        )


def write_generated(
    out: Path,
    given: Mapping[str, Tensor],
    outputs: Mapping[str, Tensor],
    per_input: int,
    signature: Signature,
) -> list[Path]:
    """`impute`'s outputs: `<target>.npy` ([N * per_input, ...], input-major), for image
    targets `<target>/<input>_<k>.png`, and `grid.png`: per input row its given images, then
    its samples of each image target."""
    written = []
    for t, x in outputs.items():
        written.append(_save_array(out / f"{t}.npy", x))
        if signature[t].is_image:
            rows = range(len(x) // per_input)
            names = [f"{i:05d}_{k:02d}" for i in rows for k in range(per_input)]
            written += _save_pngs(out / t, x, names)
    images = [m for m in given if signature[m].is_image]
    shown = [encoder_input(signature[m].check(m, given[m])) for m in images]
    for t, x in outputs.items():
        if signature[t].is_image:
            shown += list(x.view(-1, per_input, *x.shape[1:]).transpose(0, 1))
    if shown:
        written.append(_save_grid(out / "grid.png", shown))
    return written


def write_samples(out: Path, samples: Mapping[str, Tensor], signature: Signature) -> list[Path]:
    """`sample`'s outputs: `<modality>.npy`, `<modality>/<i>.png` for images, and `grid.png`
    (one row per joint sample, one column per image modality)."""
    written = []
    for m, x in samples.items():
        written.append(_save_array(out / f"{m}.npy", x))
        if signature[m].is_image:
            written += _save_pngs(out / m, x, [f"{i:05d}" for i in range(len(x))])
    shown = [x for m, x in samples.items() if signature[m].is_image]
    if shown:
        written.append(_save_grid(out / "grid.png", shown))
    return written


def write_representation(path: Path, representation: Mapping[str, Tensor]) -> Path:
    """`represent`'s output by the file's suffix: `.npy` the shared part alone [N, D]; `.npz`
    arrays "shared" and "style/<modality>"; `.pt` a dict of tensors with the same keys."""
    suffix = check_encoding_file(path, with_style=len(representation) > 1)
    if suffix == ".npy":
        return _save_array(path, representation["shared"])
    cpu = {k: v.detach().cpu() for k, v in representation.items()}
    with atomic_path(path, suffix=f".tmp{suffix}") as tmp:
        if suffix == ".npz":
            np.savez(tmp, **{k: v.numpy() for k, v in cpu.items()})
        else:
            torch.save(cpu, tmp)
    return path


def check_encoding_file(path: Path, with_style: bool, overwrite: bool = True) -> str:
    """The suffix of a representation file, refused unless .npy (shared part only), .npz or
    .pt; and unless `overwrite`, an existing file."""
    suffix = path.suffix.lower()
    if suffix not in ENCODING_SUFFIXES:
        raise ConfigError(
            f"{path}: unknown output format {suffix or '(none)'}; name a "
            f"{', '.join(ENCODING_SUFFIXES)} file"
        )
    if suffix == ".npy" and with_style:
        raise ConfigError(
            f"{path}: a .npy file holds one array; name a .npz or .pt file to keep the styles"
        )
    if path.exists() and not overwrite:
        raise DataError(f"{path} exists: choose another name, or pass --overwrite to replace it")
    return suffix


def _save_array(path: Path, x: Tensor) -> Path:
    with atomic_path(path, suffix=".tmp.npy") as tmp:
        np.save(tmp, x.detach().cpu().numpy())
    return path


def _save_pngs(folder: Path, images: Tensor, names: Sequence[str]) -> list[Path]:
    paths = []
    for image, name in zip(images.detach().cpu().clamp(0, 1), names, strict=True):
        path = folder / f"{name}.png"
        with atomic_path(path, suffix=".tmp.png") as tmp:
            save_image(image, str(tmp))
        paths.append(path)
    return paths


def _save_grid(path: Path, columns: Sequence[Tensor]) -> Path:
    """Columns of images [N, C, H, W] each, the first `GRID_ROWS` rows, side by side (RGB, at
    the largest side among them)."""
    size = max(c.shape[-1] for c in columns)
    columns = [to_rgb(c[:GRID_ROWS].detach(), size) for c in columns]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: row i, then each column
    with atomic_path(path, suffix=".tmp.png") as tmp:
        save_image(make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0), str(tmp))
    return path
