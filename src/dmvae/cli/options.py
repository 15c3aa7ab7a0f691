"""Options several commands share, each with one help sentence that states its default; the
defaults themselves are read from where the code declares them (a config dataclass or a
function's signature), never written here a second time."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any


def signature_default(func: Callable[..., Any], name: str) -> Any:
    """The default of parameter `name` of `func`."""
    return inspect.signature(func).parameters[name].default


def preset_default(name: str) -> str:
    """The experiment or model `RunConfig.preset` uses when none is named."""
    from dmvae.config import RunConfig

    return signature_default(RunConfig.preset, name)


def add_data_root(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """`--data-root DIR`; `default` describes it where it is not the usual rule."""
    from dmvae.data.sources import default_data_root

    default = default or f"$DMVAE_DATA if set, else {default_data_root()}"
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help=f"the folder that holds the data sets, MNIST/, SVHN's .mat files and MMNIST/ "
        f"(default: {default})",
    )


def add_download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--download",
        action="store_true",
        help="fetch missing data files from the internet (default: off, only files already "
        "in the data folder are read)",
    )


def add_device(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--device",
        default=default,
        help="where to compute: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N "
        "(default: %(default)s)",
    )


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="hide every progress bar, for logs and batch jobs (default: bars are shown)",
    )


def add_set(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable `--set KEY=VALUE` option of the commands that take settings."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=example)


def add_modalities(parser: argparse.ArgumentParser) -> None:
    from dmvae.experiments.paired_mnist import PairedMNISTData
    from dmvae.experiments.polymnist import PolyMNISTData

    parser.add_argument(
        "--modalities",
        type=int,
        metavar="M",
        help=f"paired MNIST and PolyMNIST: the number of modalities, 2 to 5 "
        f"(default: {PairedMNISTData().modalities} for paired MNIST, "
        f"{PolyMNISTData().modalities} for PolyMNIST)",
    )
