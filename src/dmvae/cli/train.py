"""`dmvae train`: train one model on one experiment, with the paper's settings by default."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from dmvae.experiments import EXPERIMENTS
from dmvae.models import MODELS
from dmvae.settings import add_set_option, parse_assignments

# Flags that are shorthands for settings (`--lr 1e-3` is `--set train.lr=1e-3`).
SHORTHANDS = {
    "modalities": "data.modalities",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "max_steps": "train.max_steps",
    "seed": "train.seed",
    "device": "train.device",
    "data_root": "data.root",
    "out": "train.out",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (DMVAE, MVAE, MMVAE) on an experiment or on your own data",
        description=(
            "Train a model. Settings come from the paper's preset for the experiment and model, "
            "then from --config FILE (TOML or JSON with config.json's keys), then from the flags "
            "and --set. Every value is type-checked before anything is written."
        ),
    )
    p.add_argument(
        "--experiment",
        help=f"{', '.join(sorted(EXPERIMENTS))} (default paired-mnist), or your own as "
        "'package.module:attribute' or 'file.py:attribute'",
    )
    p.add_argument(
        "--model",
        help=f"{', '.join(sorted(MODELS))} (default dmvae), or one your experiment's module "
        "registers",
    )
    p.add_argument("--config", metavar="FILE", help="a run file (.toml or .json)")
    p.add_argument("--modalities", type=int, help="paired MNIST: number of modalities (2-5)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    p.add_argument("--data-root", help="data directory (default: $DMVAE_DATA or the user cache)")
    p.add_argument("--download", action="store_true", help="download missing data sets")
    add_set_option(
        p,
        "override any setting: train.KEY, model.KEY or data.KEY, e.g. --set model.gamma=10 "
        "--set data.noise_std=0.5 (a wrong name lists the valid ones)",
    )
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR's checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config.json and exit"
    )
    p.add_argument("--out", metavar="RUN_DIR", help="the run directory (or train.out in --config)")
    p.set_defaults(func=run)


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
    from dmvae.config import RunConfig
    from dmvae.errors import ConfigError

    if args.config:
        return RunConfig.from_file(args.config, args.experiment, args.model, overrides(args))
    if args.out is None and not args.print_config:
        raise ConfigError("give the run directory: --out RUN_DIR (or train.out in --config)")
    return RunConfig.preset(
        args.experiment or "paired-mnist", args.model or "dmvae", overrides(args)
    )


def run(args: argparse.Namespace) -> int:
    from dmvae.training import train

    config = resolve(args)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    train(config, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 alone reports
        print(f"run written to {config.train.out}")
    return 0
