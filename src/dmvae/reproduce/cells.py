"""The cells of a reproduction grid (model x modalities x seed), where each one lives on disk,
and how it is trained and scored under a budget."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmvae.config import RunConfig
from dmvae.errors import ConfigError
from dmvae.reproduce.cell import Cell
from dmvae.reproduce.layouts import layout_of

BUDGETS = ("quick", "paper")

# Reduced schedules for a 2-core CPU (docs/results.md says how they were chosen). Everything not
# named here keeps the paper's value (each model's presets, `dmvae.models`).
QUICK: dict[tuple[str, str], dict[str, Any]] = {
    ("paired-mnist", "dmvae"): {
        "epochs": 12,
        "batch_size": 256,
        "anneal_epochs": 2,
        "model.disc_width": 125,
    },
    ("paired-mnist", "mvae"): {"epochs": 12, "batch_size": 256, "anneal_epochs": 2},
    ("paired-mnist", "mmvae"): {"epochs": 5, "model.K": 1},
    ("paired-mnist", "mopoe"): {"epochs": 12, "batch_size": 256, "anneal_epochs": 2},
    ("paired-mnist", "mmvaeplus"): {"epochs": 5},
    ("mnist-svhn", "dmvae"): {"epochs": 3, "anneal_epochs": 1, "model.disc_width": 125},
    ("mnist-svhn", "mvae"): {"epochs": 3, "anneal_epochs": 1},
    ("mnist-svhn", "mmvae"): {"epochs": 1, "model.K": 1},
    # PolyMNIST: a 10,000-sample training subset, steps measured on 2 shared cores
    # (docs/results.md); MoPoE costs about what MVAE does, MMVAE+ what MMVAE with K = 1 does.
    ("polymnist", "dmvae"): {
        "epochs": 3,
        "batch_size": 128,
        "anneal_epochs": 1,
        "model.disc_width": 125,
        "data.train_size": 10000,
    },
    ("polymnist", "mvae"): {"epochs": 2, "batch_size": 64, "data.train_size": 10000},
    ("polymnist", "mopoe"): {"epochs": 2, "batch_size": 64, "data.train_size": 10000},
    ("polymnist", "mmvae"): {"epochs": 2, "batch_size": 64, "data.train_size": 10000},
    ("polymnist", "mmvaeplus"): {
        "epochs": 2,
        "batch_size": 64,
        "model.K": 1,
        "data.train_size": 10000,
    },
}


def grid(
    experiment: str, models: Sequence[str], modalities: Sequence[int], seeds: Sequence[int]
) -> list[Cell]:
    """Cells in the order they are run: all models for one seed before the next seed, so an
    interrupted grid has complete seeds first."""
    modalities = layout_of(experiment).fixed_modalities or modalities
    return [Cell(experiment, m, k, s) for s in seeds for k in modalities for m in models]


def collect(out: Path, experiment: str) -> dict[Cell, dict]:
    """Metrics of every complete cell under `out`."""
    results = {}
    for path in sorted(out.glob("M*/*/seed*/eval/metrics.json")):
        seed_dir = path.parent.parent
        cell = Cell(
            experiment,
            seed_dir.parent.name,
            int(seed_dir.parent.parent.name[1:]),
            int(seed_dir.name[4:]),
        )
        results[cell] = json.loads(path.read_text())
    return results


def cell_config(
    cell: Cell, budget: str, out: Path, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """The run config of a cell: the paper's preset, the budget's reductions, then overrides."""
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}: choose one of {list(BUDGETS)}")
    settings = dict(QUICK[(cell.experiment, cell.model)]) if budget == "quick" else {}
    settings.update(overrides or {})
    settings.update({"train.seed": cell.seed, "train.out": str(cell.run_dir(out))})
    if layout_of(cell.experiment).fixed_modalities is None:
        settings["data.modalities"] = cell.modalities
    return RunConfig.preset(cell.experiment, cell.model, settings)


def evaluation_settings(experiment: str, budget: str) -> dict[str, Any]:
    """What each cell is scored on: Figure 3 for paired MNIST, Tables 1-3 for MNIST-SVHN, and
    coherence from every subset for PolyMNIST."""
    layout = layout_of(experiment)
    settings = {
        "metrics": list(layout.metrics),
        "fid_features": "classifier" if budget == "quick" else "inception",
        "all_subsets": layout.all_subsets,
    }
    if budget == "quick" and layout.quick_max_test is not None:
        settings["max_test"] = layout.quick_max_test
    if budget == "quick" and layout.quick_loglik_test is not None:
        settings["loglik_test"] = layout.quick_loglik_test
    return settings
