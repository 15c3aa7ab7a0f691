"""`dmvae data prepare|summary`: build and check the paired index files, and describe them."""

from __future__ import annotations

import argparse

from dmvae.experiments import EXPERIMENTS
from dmvae.settings import add_set_option


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="prepare or describe an experiment's data set")
    p.add_argument("action", choices=("prepare", "summary"))
    p.add_argument(
        "--experiment",
        "--dataset",
        default="paired-mnist",
        help=f"{', '.join(sorted(EXPERIMENTS))} or 'module:attribute' (default paired-mnist)",
    )
    p.add_argument("--modalities", type=int, help="paired MNIST: 2-5 (default 2)")
    p.add_argument("--split", choices=("train", "test", "both"), default="both")
    p.add_argument("--data-root", help="data directory (default: $DMVAE_DATA or the user cache)")
    p.add_argument("--download", action="store_true", help="download missing files")
    add_set_option(
        p,
        "a data setting, e.g. --set pairing_seed=1 --set dm=10 (see `dmvae train "
        "--print-config` for the keys)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmvae import settings
    from dmvae.data import datasets
    from dmvae.experiments import get_experiment

    exp = get_experiment(args.experiment)
    values = {k.removeprefix("data."): v for k, v in settings.parse_assignments(args.set).items()}
    for key, value in (("modalities", args.modalities), ("root", args.data_root)):
        if value is not None:
            values[key] = value
    if args.download:
        values["download"] = True
    data_config = settings.build(exp.data_config, values, "data")
    splits = ("train", "test") if args.split == "both" else (args.split,)
    print(f"{exp.name}: {', '.join(exp.modalities(data_config))}")
    for split in splits:
        info = datasets.summary(exp.load(data_config, split))
        print(f"  {split}: {info['samples']} samples over {', '.join(info['modalities'])}")
        if args.action == "summary":
            balance = " ".join(f"{d}:{n}" for d, n in enumerate(info["per_class"]))
            print(f"    per class   {balance}")
            print(f"    labels agree across modalities: {'yes' if info['labels_agree'] else 'NO'}")
            print(f"    memory      {info['memory_mb']:.1f} MB (banks + int64 indices)")
        if not info["labels_agree"]:
            return 1
    return 0
