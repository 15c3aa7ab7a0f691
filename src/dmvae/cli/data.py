"""`dmvae data prepare|summary|make-polymnist`: build and check the paired index files, describe
them, and generate PolyMNIST."""

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
            "the memory the split takes. Exits with status 1 if labels disagree. "
            "`make-polymnist` writes PolyMNIST (OUT/MMNIST/{train,test}/m0..m4) from the MNIST "
            "files under the data root with MoPoE's procedure, on your background images or on "
            "procedural ones (not the official backgrounds)."
        ),
    )
    p.add_argument(
        "action",
        choices=("prepare", "summary", "make-polymnist"),
        help="prepare: build the index files; summary: also describe the data; make-polymnist: "
        "generate PolyMNIST",
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
    add_polymnist_options(p)
    p.set_defaults(func=run)


def add_polymnist_options(p: argparse.ArgumentParser) -> None:
    from dmvae.data.make_polymnist import make_polymnist

    group = p.add_argument_group("make-polymnist")
    group.add_argument(
        "--out", metavar="DIR", help="where MMNIST/ is written (default: the data root)"
    )
    group.add_argument(
        "--backgrounds",
        metavar="DIR",
        help="a folder of background images (.jpg/.jpeg/.png, the first M in name order, each "
        "larger than 28x28) (default: procedural colour textures from --seed)",
    )
    for split in ("train", "test"):
        group.add_argument(
            f"--{split}-size",
            type=int,
            metavar="N",
            help=f"a seeded random subset of N MNIST {split} images (default: all)",
        )
    group.add_argument(
        "--seed",
        type=int,
        default=options.signature_default(make_polymnist, "seed"),
        help="seeds the permutations, crops and procedural backgrounds (default: %(default)s)",
    )


def make(args: argparse.Namespace) -> int:
    """`make-polymnist`: generate, then report where and how many."""
    import time

    from dmvae.data.make_polymnist import load_backgrounds, make_polymnist
    from dmvae.data.sources import resolve_data_root
    from dmvae.experiments.polymnist import PolyMNISTData

    root = resolve_data_root(args.data_root)
    out = args.out or root
    m = args.modalities or PolyMNISTData().modalities
    start = time.perf_counter()
    counts = make_polymnist(
        out,
        mnist_root=root,
        backgrounds=load_backgrounds(args.backgrounds, m) if args.backgrounds else None,
        num_modalities=m,
        train_size=args.train_size,
        test_size=args.test_size,
        seed=args.seed,
    )
    print(
        f"PolyMNIST in {out}/MMNIST: {counts['train']} train and {counts['test']} test samples "
        f"x {m} modalities ({time.perf_counter() - start:.0f} s)"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "make-polymnist":
        return make(args)
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
        info = datasets.summary(exp.dataset(data_config, split))
        print(f"  {split}: {info['samples']} samples over {', '.join(info['modalities'])}")
        if args.action == "summary":
            balance = " ".join(f"{d}:{n}" for d, n in enumerate(info["per_class"]))
            print(f"    per class   {balance}")
            agree = {True: "yes", False: "NO", None: "not checkable (one label per row)"}
            print(f"    labels agree across modalities: {agree[info['labels_agree']]}")
            if any(info["missing"].values()):
                missing = " ".join(f"{m}:{100 * f:.1f}%" for m, f in info["missing"].items())
                print(f"    missing     {missing} ({info['complete_samples']} complete samples)")
            print(f"    memory      {info['memory_mb']:.1f} MB (banks + int64 indices)")
        if info["labels_agree"] is False:
            return 1
    return 0
