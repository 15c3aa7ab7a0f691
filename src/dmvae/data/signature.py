"""The shape and dtype of each modality a model was trained on (its data signature).

A run records it in its checkpoint, so that a trained model can check inputs handed to it for
inference (a file, an image, a user's tensor) without loading the training data again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from dmvae.data.batch import MultimodalData
from dmvae.errors import DataError


@dataclass(frozen=True)
class ModalitySignature:
    """One sample's shape (without the batch dimension) and the dtype it was stored as:
    "uint8" for images scaled by 1/255, a floating-point dtype for anything used as it is."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def is_image(self) -> bool:
        """uint8 [C, H, W] samples: readable from PNG/JPEG files and written as PNGs."""
        return self.dtype == "uint8" and len(self.shape) == 3

    def describe(self) -> str:
        return f"{self.dtype} [N, {', '.join(map(str, self.shape))}]"

    def check(self, name: str, x: Tensor) -> Tensor:
        """`x` as rows of this modality: a single sample gains a batch dimension and grayscale
        [N, H, W] images a channel; anything else that does not fit is refused."""
        if (x.dtype == torch.uint8) != (self.dtype == "uint8") or not (
            x.dtype == torch.uint8 or x.is_floating_point()
        ):
            fix = (
                "pass uint8 values 0-255, e.g. (x * 255).round().to(torch.uint8)"
                if self.dtype == "uint8"
                else "pass floating-point values, e.g. x.float()"
            )
            raise DataError(
                f"modality {name!r} takes {self.describe()} as in training, got {x.dtype}: {fix}"
            )
        if tuple(x.shape) == self.shape:
            x = x[None]
        elif self.is_image and self.shape[0] == 1 and tuple(x.shape[1:]) == self.shape[1:]:
            x = x[:, None]
        if tuple(x.shape[1:]) != self.shape:
            raise DataError(
                f"modality {name!r} takes {self.describe()} as in training, got shape "
                f"{list(x.shape)}: reshape the input (images from files: pass --resize / "
                "resize=True)"
            )
        return x


Signature = dict[str, ModalitySignature]


def signature_of(data: MultimodalData) -> Signature:
    """The signature of a data set (what training records)."""
    return {
        m: ModalitySignature(data.shape(m), str(data.images[m].dtype).removeprefix("torch."))
        for m in data.modalities
    }


def to_json(signature: Signature) -> dict[str, dict]:
    return {m: {"shape": list(s.shape), "dtype": s.dtype} for m, s in signature.items()}


def from_json(raw: Mapping[str, Mapping]) -> Signature:
    return {m: ModalitySignature(tuple(s["shape"]), str(s["dtype"])) for m, s in raw.items()}
