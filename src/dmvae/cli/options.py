"""Options several commands share, each with one help sentence that states its default; the
defaults themselves are read from where the code declares them (a config dataclass or a
function's signature), never written here a second time."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
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


def add_run(parser: argparse.ArgumentParser) -> None:
    """The RUN argument of the inference commands, handed to `load_run` as it is."""
    parser.add_argument(
        "run",
        metavar="RUN",
        help="the run directory `dmvae train` wrote, or a shared run hf://user/name[@revision]",
    )


def add_given(parser: argparse.ArgumentParser) -> None:
    """`--given MODALITY=PATH ...` (required), read by `inference.read_input`."""
    parser.add_argument(
        "--given",
        nargs="+",
        required=True,
        metavar="MODALITY=PATH",
        help="each given modality's inputs: a .npy or .pt tensor [N, ...] (or one sample), or "
        "for images a PNG/JPEG file or a folder of them (required)",
    )
    parser.add_argument(
        "--resize",
        action="store_true",
        help="resize image files to the training data's size (default: refuse other sizes)",
    )


def parse_given(items: list[str]) -> dict[str, str]:
    """`["m0=a.npy", ...]` as {modality: path}; each modality once."""
    from dmvae.errors import ConfigError

    given: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--given {item!r} is not MODALITY=PATH: write e.g. m0=inputs.npy")
        if name in given:
            raise ConfigError(f"--given names modality {name!r} twice: give each one once")
        given[name] = path
    return given


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the sampling noise; the same seed gives the same outputs (default: "
        "%(default)s)",
    )


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace {what} (default: refuse)",
    )


def add_setting_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: Sequence[str],
    defaults: Mapping[str, str] | None = None,
) -> None:
    """A flag per named field of the settings dataclass `cls`, built from the field's "cli"
    metadata (`evaluation.settings.flag`): the destination is the field's name, the type its
    annotation's, the default the field's. `defaults` gives a field the default None instead,
    with the text the help shows for it (the command then decides the value)."""
    from dmvae.settings import field_types

    fields = {f.name: f for f in dataclasses.fields(cls)}
    types = field_types(cls)
    for name in names:
        meta, default = fields[name].metadata["cli"], fields[name].default
        shown = meta["none"] if meta["none"] is not None else default
        if defaults and name in defaults:
            default, shown = None, defaults[name]
        flag = meta["flag"] or f"--{name.replace('_', '-')}"
        help = f"{meta['help']} (default: {shown})"
        if types[name] is bool:
            parser.add_argument(flag, dest=name, action="store_true", help=help)
            continue
        kind = next((t for t in typing.get_args(types[name]) if t is not type(None)), types[name])
        parser.add_argument(
            flag,
            dest=name,
            type=kind,
            default=default,
            choices=meta["choices"],
            metavar=meta["metavar"] if meta["choices"] is None else None,
            help=help,
        )


def setting_values(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The values the flags of `add_setting_flags` parsed, by field name; None (a command's
    own default) left out."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}
