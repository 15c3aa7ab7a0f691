"""Reproduce the paper: a resumable grid of runs (models x modalities x seeds), each trained and
evaluated in its own run directory, and a report that puts our numbers beside the paper's.
Layout of `--out DIR`: `DIR/M{m}/{model}/seed{s}/` is an ordinary run directory (config.json,
checkpoint, logs, eval/); `DIR/report.md` and `DIR/figure3.png` (paired MNIST) are rewritten
from whatever cells are complete, so a grid can be extended later with more seeds. What differs
between the experiments is gathered in one `ReportLayout` each (layouts.py), registered by
experiment name (`register_layout`); the grid is in cells.py, the
paper's numbers in paper.py, the reports in report.py, paired_mnist.py, mnist_svhn.py and
figure.py, and the loop that runs cells in runner.py.
"""

from dmvae.reproduce.cells import (
    BUDGETS,
    QUICK,
    Cell,
    cell_config,
    collect,
    evaluation_settings,
    grid,
)
from dmvae.reproduce.layouts import (
    Figure,
    ReportLayout,
    layout_of,
    register_layout,
    reproducible,
)
from dmvae.reproduce.mnist_svhn import MNIST_SVHN_TABLES
from dmvae.reproduce.paired_mnist import paired_mnist_claims, paired_mnist_series
from dmvae.reproduce.paper import PAPER_MNIST_SVHN
from dmvae.reproduce.report import write_report
from dmvae.reproduce.runner import reproduce, run_cell
from dmvae.reproduce.summary import MODELS_ORDER

__all__ = [
    "BUDGETS",
    "MNIST_SVHN_TABLES",
    "MODELS_ORDER",
    "PAPER_MNIST_SVHN",
    "QUICK",
    "Cell",
    "Figure",
    "ReportLayout",
    "cell_config",
    "collect",
    "evaluation_settings",
    "grid",
    "layout_of",
    "paired_mnist_claims",
    "paired_mnist_series",
    "register_layout",
    "reproducible",
    "reproduce",
    "run_cell",
    "write_report",
]
