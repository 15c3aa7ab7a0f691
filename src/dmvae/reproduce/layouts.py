"""Everything in a reproduction that depends on the experiment, in one frozen record each,
registered by experiment name (`register_layout`), so the package looks it up instead of
comparing names. The body of each run's eval/metrics.md is evaluation's
(`dmvae.evaluation.report.register_run_table`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dmvae.errors import ConfigError
from dmvae.experiments import get_experiment
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
    """The experiment's name."""
    metrics: tuple[str, ...]
    """What evaluate_run scores each cell on."""
    write: Callable[[Results, str], str]
    """The report's body from the complete cells and the header."""
    fixed_modalities: tuple[int, ...] | None = None
    """The modality counts of every grid; None: the ones asked for."""
    figure: Figure | None = None
    all_subsets: bool = False
    """Whether coherence scores every subset of inputs (not only one and all-but-one)."""
    quick_max_test: int | None = None
    """Test samples the quick budget scores (None: all)."""
    quick_loglik_test: int | None = 500
    """Test tuples the quick budget's log-likelihoods average over (None: all that it scores):
    on paired MNIST's MLPs, K = 1000 importance samples of 500 tuples take 1-3 minutes per
    cell on 2 CPU cores."""


PAIRED_MNIST = ReportLayout(
    "paired-mnist",
    metrics=("coherence", "latent", "fid", "grids", "loglik"),
    write=paired_mnist_report,
    figure=Figure("Figure 3", "figure3.png", draw_figure3),
)
MNIST_SVHN = ReportLayout(
    "mnist-svhn",
    metrics=("coherence", "latent", "gmm", "joint", "fid", "grids", "loglik"),
    write=mnist_svhn_report,
    fixed_modalities=(2,),
)
POLYMNIST = ReportLayout(
    "polymnist",
    metrics=("coherence", "latent", "fid", "grids", "loglik"),
    write=polymnist_report,
    fixed_modalities=(5,),
    all_subsets=True,
    quick_max_test=2000,  # 75 coherence maps over 10,000 samples take ~5 min on 2 cores
    # conv decoders: K = 1000 over 100 tuples took ~5 min of one CPU core (measured 2026-12-08)
    quick_loglik_test=100,
)


LAYOUTS: dict[str, ReportLayout] = {x.name: x for x in (PAIRED_MNIST, MNIST_SVHN, POLYMNIST)}
"""The layouts by experiment name: the experiments `dmvae reproduce` runs."""


def register_layout(layout: ReportLayout) -> ReportLayout:
    """Make `dmvae reproduce` run experiment `layout.name` (the paper's, or your own registered
    one); returns the layout."""
    LAYOUTS[layout.name] = layout
    return layout


def reproducible() -> list[str]:
    """The experiments that have a report layout (the paper's, and any registered)."""
    return sorted(LAYOUTS)


def layout_of(experiment: str) -> ReportLayout:
    """The layout registered for an experiment, or a ConfigError that lists the ones that are.
    The experiment is looked up first, so that one named "module:attribute" is imported (and
    may register its layout there) and an unknown name says so."""
    get_experiment(experiment)
    layout = LAYOUTS.get(experiment)
    if layout is None:
        raise ConfigError(
            f"experiment {experiment!r} has no reproduction report; `dmvae reproduce` runs "
            f"{reproducible()} (train your own with `dmvae train`)"
        )
    return layout
