"""`dmvae classifiers train|show`: the digit classifiers that score generated samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from dmvae.cli import options


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae import classifiers as clf

    epochs = ", ".join(f"{v['epochs']} for {k}" for k, v in clf.DEFAULTS.items())
    p = sub.add_parser(
        "classifiers",
        help="train or list the evaluation classifiers",
        description=(
            "The digit classifiers that score coherence and give the features of the quick "
            "classifier FD. `train` trains one on the official training set, scores it on the "
            "test set and caches it in DATA_ROOT/dmvae_classifiers (the user cache if that is "
            "read-only); `show` lists the cached ones with their test accuracy. `dmvae "
            "evaluate` trains a missing classifier on first use, so this is only needed to "
            "train ahead of time, with other settings, or again (--force)."
        ),
    )
    p.add_argument(
        "action",
        choices=("train", "show"),
        help="train: train and cache a classifier (kept if cached, unless --force); "
        "show: list the cached classifiers",
    )
    p.add_argument(
        "--dataset",
        choices=clf.BENCHMARKS,
        default="mnist",
        help="the classifier to train: MNIST's LeNet, SVHN's CNN, or MoPoE's PolyMNIST CNN (one "
        "per modality of DATA_ROOT/MMNIST, keyed by a fingerprint of its images) "
        "(default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, metavar="N", help=f"training epochs (default: {epochs})")
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=options.signature_default(clf.train_and_cache, "seed"),
        help="the training seed; each seed is cached as its own classifier and `dmvae "
        f"evaluate` uses seed {options.signature_default(clf.load_classifier, 'seed')} "
        "(default: %(default)s)",
    )
    options.add_data_root(p)
    options.add_download(p)
    options.add_device(p, "auto")
    p.add_argument(
        "--force",
        action="store_true",
        help="train again even if a cached classifier exists (default: keep the cached one)",
    )
    options.add_no_progress(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmvae import classifiers as clf
    from dmvae.data.sources import resolve_data_root

    root = resolve_data_root(args.data_root)
    if args.action == "show":
        found = False
        for directory in clf.classifier_dirs(root):
            for path in sorted(directory.glob("*.safetensors")):
                info = clf.read_info(path)
                acc = info.get("test_accuracy")
                print(f"{path}: test accuracy {100 * acc:.2f} %, {info.get('epochs')} epochs")
                found = True
        if not found:
            print("no classifiers yet: run `dmvae classifiers train --dataset mnist`")
        return 0
    for kind in clf.dataset_kinds(args.dataset, root):
        train_one(args, kind, root)
    return 0


def train_one(args: argparse.Namespace, kind: str, root: Path) -> None:
    """Train and cache one classifier, unless it is cached and --force is not given."""
    from dmvae import classifiers as clf
    from dmvae.devices import resolve_device

    existing = clf.find_classifier(
        clf.classifier_dirs(root), clf.kind_key(kind, root, args.seed, args.download)
    )
    if existing and not args.force:
        info = clf.read_info(existing)
        print(
            f"{existing} exists (test accuracy {100 * info['test_accuracy']:.2f} %); "
            "--force retrains"
        )
        return
    path, info = clf.train_and_cache(
        kind,
        root,
        device=resolve_device(args.device),
        seed=args.seed,
        epochs=args.epochs,
        download=args.download,
        progress=not args.no_progress,
    )
    print(
        f"{kind} classifier: test accuracy {100 * info['test_accuracy']:.2f} % "
        f"({info['train_seconds']} s), saved to {path}"
    )
