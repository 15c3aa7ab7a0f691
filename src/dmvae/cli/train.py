"""`dmvae train`: train one model on one experiment with the paper's settings by default."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from dmvae.experiments import EXPERIMENTS, MODELS


def parse_value(text: str) -> Any:
    """`--set` values are JSON where they parse as JSON (numbers, lists, dicts), else strings."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_settings(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items as overrides for `TrainConfig.set`."""
    from dmvae.errors import ConfigError

    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        settings[key.strip()] = parse_value(value)
    return settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train DMVAE, MVAE or MMVAE",
        description="Train a model; defaults reproduce the paper's settings for the experiment.",
    )
    p.add_argument("--experiment", choices=EXPERIMENTS, default="paired-mnist")
    p.add_argument("--model", choices=MODELS, default="dmvae")
    p.add_argument("--modalities", type=int, help="paired MNIST: number of modalities (2-5)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA)")
    p.add_argument("--data-root", help="data directory (default: $DMVAE_DATA or the user cache)")
    p.add_argument("--download", action="store_true", help="download missing data sets")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set model_config.gamma=10 --set data.noise_std=0.5",
    )
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR's checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True, metavar="RUN_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmvae.training import TrainConfig, train

    overrides: dict[str, Any] = {"out": args.out}
    for key, attr in [
        ("data.modalities", "modalities"),
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("lr", "lr"),
        ("max_steps", "max_steps"),
        ("seed", "seed"),
        ("device", "device"),
        ("data.root", "data_root"),
    ]:
        if getattr(args, attr) is not None:
            overrides[key] = getattr(args, attr)
    if args.amp:
        overrides["amp"] = True
    if args.download:
        overrides["data.download"] = True
    if args.no_progress:
        overrides["progress"] = False
    overrides.update(parse_settings(args.set))
    config = TrainConfig.from_preset(args.experiment, args.model, **overrides)
    train(config, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 alone reports
        print(f"run written to {config.out}")
    return 0
