"""`dmvae data prepare|summary`: build and check the paired index files, and describe them."""

from __future__ import annotations

import argparse

from dmvae.cli import options
from dmvae.experiments import EXPERIMENTS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="prepare or describe an experiment's data set",
        description=(
            "Load an experiment's train and test splits: `prepare` builds (or checks) the "
            "cached pairing index files beside the data and prints the sample counts; `summary` "
            "also prints the class balance, whether the labels agree across modalities, and "
            "the memory the split takes. Exits with status 1 if labels disagree."
        ),
    )
    p.add_argument(
        "action",
        choices=("prepare", "summary"),
        help="prepare: build the index files; summary: also describe the data",
    )
    p.add_argument(
        "--experiment",
        "--dataset",
        metavar="NAME",
        default=options.preset_default("experiment"),
        help=f"the experiment whose data to load: {', '.join(sorted(EXPERIMENTS))}, or "
        "'module:attribute' (default: %(default)s)",
    )
    options.add_modalities(p)
    p.add_argument(
        "--split",
        choices=("train", "test", "both"),
        default="both",
        help="which split to load (default: %(default)s)",
    )
    options.add_data_root(p)
    options.add_download(p)
    options.add_set(
        p,
        "a data setting, e.g. --set pairing_seed=1 --set dm=10; repeatable, `dmvae train "
        "--print-config` lists the keys (default: the experiment's data defaults)",
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
