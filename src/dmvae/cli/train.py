"""`dmvae train`: train one model on one experiment, with the paper's settings by default."""

from __future__ import annotations

import argparse
import json
import os
import typing
from dataclasses import dataclass
from typing import Any

from dmvae.cli import options
from dmvae.config import RunConfig, TrainSettings
from dmvae.experiments import EXPERIMENTS
from dmvae.models import MODELS
from dmvae.settings import field_types, parse_assignments
from dmvae.tracking import LOGGERS


@dataclass(frozen=True)
class TrainFlag:
    """A flag that sets one field of `TrainSettings` (`--lr 1e-3` is `--set train.lr=1e-3`):
    its name, type and default come from the field, so none is spelled twice."""

    name: str
    help: str
    metavar: str | None = "N"
    none: str = "none"  # how a default of None reads in the help

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        kind = field_types(TrainSettings)[self.name]
        kind = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        parser.add_argument(
            f"--{self.name.replace('_', '-')}",
            type=kind,
            metavar=self.metavar,
            help=f"{self.help} (default: {train_default(self.name, self.none)})",
        )


TRAIN_FLAGS = (
    TrainFlag("epochs", "training epochs"),
    TrainFlag("batch_size", "samples per training step"),
    TrainFlag("lr", "the Adam learning rate", metavar=None),
    TrainFlag("max_steps", "stop after this many training steps", none="no limit, all epochs run"),
    TrainFlag("seed", "the run's random seed"),
    TrainFlag(
        "device",
        "where to train: auto (CUDA when available, else the CPU), cpu, cuda or cuda:N",
        metavar=None,
    ),
)
# Flags that are shorthands for settings, by argparse destination.
SHORTHANDS = {
    "modalities": "data.modalities",
    "data_root": "data.root",
    "out": "train.out",
    **{flag.name: f"train.{flag.name}" for flag in TRAIN_FLAGS},
}


def train_default(name: str, none: str = "none") -> str:
    """The default of train setting `name` for a help text: `TrainSettings`' value, and "the
    preset's" where a model's preset sets it."""
    value = getattr(TrainSettings(), name)
    shown = none if value is None else str(value)
    in_presets = any(name in p.train for spec in MODELS.values() for p in spec.presets.values())
    return f"the preset's; {shown} without one" if in_presets else shown


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (DMVAE, MVAE, MMVAE) on an experiment or on your own data",
        description=(
            "Train a model. Settings come from the paper's preset for the experiment and model, "
            "then from --config FILE (TOML or JSON with config.json's keys), then from the flags "
            "and --set. Every value is type-checked before anything is written. "
            "`dmvae train ... --print-config` shows the resolved values, defaults included, "
            "without training."
        ),
    )
    p.add_argument(
        "--experiment",
        metavar="NAME",
        help=f"the experiment: {', '.join(sorted(EXPERIMENTS))}, or your own as "
        f"'package.module:attribute' or 'file.py:attribute' (default: --config's, else "
        f"{options.preset_default('experiment')})",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help=f"the model: {', '.join(sorted(MODELS))}, one your experiment's module "
        "registers, or your own ModelSpec as 'package.module:attribute' or 'file.py:attribute' "
        f"(default: --config's, else {options.preset_default('model')})",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a run file (.toml, or .json like a run's config.json) whose settings replace the "
        "preset's (default: none)",
    )
    options.add_modalities(p)
    for flag in TRAIN_FLAGS:
        flag.add_to(p)
    p.add_argument(
        "--amp",
        action="store_true",
        help="train in bfloat16 autocast, on whichever device trains: on CUDA it is faster; "
        "on the CPU it runs too (CPU autocast), but is slower than float32 on CPUs without "
        "AVX-512 or AMX (default: off, float32)",
    )
    options.add_data_root(p)
    options.add_download(p)
    options.add_set(
        p,
        "override any setting: train.KEY, model.KEY or data.KEY, e.g. --set model.gamma=10 "
        "--set data.noise_std=0.5 (a bare KEY is train.KEY; model=NAME, model.name=NAME and "
        "experiment=NAME are --model and --experiment); repeatable, a wrong name is answered "
        "with the names that exist (default: none)",
    )
    add_run_control(p)
    p.set_defaults(func=run)


def add_run_control(p: argparse.ArgumentParser) -> None:
    """How the run directory is treated, logged and shown: resume, overwrite, --out."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN_DIR from its checkpoint (default: start a new run)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in RUN_DIR (its checkpoint, logs and eval/) with a new one "
        "(default: refuse to touch an existing run)",
    )
    options.add_no_progress(p)
    p.add_argument(
        "--log-to",
        metavar="NAMES",
        help="also log to these trackers, comma-separated: "
        f"{', '.join(sorted(LOGGERS))} (mlflow and wandb need their extras, pip install "
        '"dmvae[mlflow]"); added to train.loggers, which a --config file or --set '
        f"train.loggers=[...] replaces (default: {', '.join(TrainSettings().loggers)})",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="list the registered models and experiments, with their papers, and exit "
        "(default: train)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config.json and exit without training (default: train)",
    )
    p.add_argument(
        "--out",
        metavar="RUN_DIR",
        help="the run directory to write (required without --config; with it, default: the "
        f"file's train.out, else {train_default('out')})",
    )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags give, by dotted key (flags first, then --set)."""
    values: dict[str, Any] = {
        key: getattr(args, flag)
        for flag, key in SHORTHANDS.items()
        if getattr(args, flag) is not None
    }
    for flag, key, value in [
        ("amp", "train.amp", True),
        ("download", "data.download", True),
        ("no_progress", "train.progress", False),
    ]:
        if getattr(args, flag):
            values[key] = value
    values.update(parse_assignments(args.set))
    return values


def resolve(args: argparse.Namespace):
    """The run config the command line describes."""
    from dmvae.config import take_names
    from dmvae.errors import ConfigError

    named, values = take_names(overrides(args))
    for key, name in named.items():  # `--set model=X` / `model.name=X` is `--model X`
        flag = getattr(args, key)
        if flag and flag != name:
            raise ConfigError(f"--{key} {flag} and --set {key}={name} disagree; give one of them")
    names = {"experiment": args.experiment, "model": args.model, **named}
    if args.config:
        config = RunConfig.from_file(args.config, names["experiment"], names["model"], values)
    elif args.out is None and not args.print_config:
        raise ConfigError("give the run directory: --out RUN_DIR (or train.out in --config)")
    else:
        config = RunConfig.preset(**{k: v for k, v in names.items() if v}, overrides=values)
    return with_loggers(config, args.log_to)


def with_loggers(config: RunConfig, log_to: str | None) -> RunConfig:
    """`config` with the trackers of `--log-to a,b` added to its `train.loggers` (the trainer
    checks the names, and that their packages are installed, before it writes anything)."""
    if not log_to:
        return config
    added = [name.strip() for name in log_to.split(",") if name.strip()]
    loggers = list(dict.fromkeys([*config.train.loggers, *added]))
    return config.override({"train.loggers": loggers})


def print_listings() -> None:
    """`--list`: each registered model and experiment, its summary and its paper."""
    from dmvae.experiments import list_experiments
    from dmvae.models import list_models

    for title, listings in (("models", list_models()), ("experiments", list_experiments())):
        print(f"{title}:")
        for item in listings:
            print(f"  {item.name:<12} {item.summary}")
            if item.paper:
                print(f"  {'':<12} ({item.paper})")


def run(args: argparse.Namespace) -> int:
    from dmvae.training import train

    if args.list:
        print_listings()
        return 0
    config = resolve(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from dmvae.data.sources import download_bars

    with download_bars(config.train.progress):
        train(config, resume=args.resume, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 alone reports
        print(f"run written to {config.train.out}")
    return 0
