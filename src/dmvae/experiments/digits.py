"""What the paper's two digit experiments share: data files under one root folder, a pairing
seed, and digit classifiers (trained once, cached) that score coherence and FID features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dmvae.data.pairing import PAIRING_SEED
from dmvae.data.sources import resolve_data_root
from dmvae.experiments.base import Experiment, MissingModalities


@dataclass(frozen=True)
class DigitFiles(MissingModalities):
    """`root`: the folder holding MNIST/ (and SVHN's .mat files); default $DMVAE_DATA, else the user
    cache. `download`: fetch missing files. `pairing_seed`: which pairs are drawn.
    `missing_rate`, `missing_seed`: incomplete training data (`MissingModalities`)."""

    root: str | None = None
    download: bool = False
    pairing_seed: int = PAIRING_SEED


class DigitExperiment(Experiment):
    def data_root(self, data: DigitFiles) -> Path:
        return resolve_data_root(data.root)

    def classifiers(
        self, data: DigitFiles, device: torch.device, progress: bool = True
    ) -> dict[str, nn.Module]:
        """The cached MNIST / SVHN classifier of each modality (trained on first use, with a
        progress bar if `progress`)."""
        from dmvae.classifiers import load_classifier

        kinds = self.classifier_kinds(data)
        root = self.data_root(data)
        loaded = {
            k: load_classifier(
                k, root, device, True, progress=progress, verify=getattr(data, "verify", True)
            )
            for k in set(kinds.values())
        }
        return {m: loaded[k] for m, k in kinds.items()}
