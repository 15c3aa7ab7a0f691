"""Everything in a reproduction that depends on the experiment, in one frozen record each; the
experiment objects carry theirs (`Experiment.report`), so the package looks it up instead of
comparing experiment names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dmvae.errors import ConfigError
from dmvae.evaluation.report import mnist_svhn_table, paired_mnist_table, polymnist_table
from dmvae.reproduce.figure import draw_figure3
from dmvae.reproduce.mnist_svhn import mnist_svhn_report
from dmvae.reproduce.paired_mnist import paired_mnist_report
from dmvae.reproduce.polymnist import polymnist_report
from dmvae.reproduce.summary import Results


@dataclass(frozen=True)
class Figure:
    """A figure drawn beside report.md and linked at the end of the report's body."""

    title: str
    file: str
    draw: Callable[[Results, Path], bool]
    """Draws the figure of these results to a path; False when there is nothing to draw."""


@dataclass(frozen=True)
class ReportLayout:
    """How one experiment's grid is laid out, scored and reported."""

    name: str
    metrics: tuple[str, ...]
    """What evaluate_run scores each cell on."""
    write: Callable[[Results, str], str]
    """The report's body from the complete cells and the header."""
    run_table: Callable[[dict], list[str]]
    """The body of each run's eval/metrics.md (the paper's table for one run)."""
    fixed_modalities: tuple[int, ...] | None = None
    """The modality counts of every grid; None: the ones asked for."""
    figure: Figure | None = None
    all_subsets: bool = False
    """Whether coherence scores every subset of inputs (not only one and all-but-one)."""
    quick_max_test: int | None = None
    """Test samples the quick budget scores (None: all)."""


PAIRED_MNIST = ReportLayout(
    "paired-mnist",
    metrics=("coherence", "latent", "fid", "grids"),
    write=paired_mnist_report,
    run_table=paired_mnist_table,
    figure=Figure("Figure 3", "figure3.png", draw_figure3),
)
MNIST_SVHN = ReportLayout(
    "mnist-svhn",
    metrics=("coherence", "latent", "gmm", "joint", "fid", "grids"),
    write=mnist_svhn_report,
    run_table=mnist_svhn_table,
    fixed_modalities=(2,),
)
POLYMNIST = ReportLayout(
    "polymnist",
    metrics=("coherence", "latent", "fid", "grids"),
    write=polymnist_report,
    run_table=polymnist_table,
    fixed_modalities=(5,),
    all_subsets=True,
    quick_max_test=2000,  # 75 coherence maps over 10,000 samples take ~5 min on 2 cores
)


def reproducible() -> list[str]:
    """The registered experiments that have a report layout (the paper's)."""
    from dmvae.experiments import EXPERIMENTS

    return sorted(name for name, exp in EXPERIMENTS.items() if exp.report is not None)


def layout_of(experiment: str) -> ReportLayout:
    """The layout an experiment object carries, or a ConfigError that lists the ones that do."""
    from dmvae.experiments import get_experiment

    layout = get_experiment(experiment).report
    if layout is None:
        raise ConfigError(
            f"experiment {experiment!r} has no reproduction report; `dmvae reproduce` runs "
            f"{reproducible()} (train your own with `dmvae train`)"
        )
    return layout
