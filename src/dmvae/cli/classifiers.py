"""`dmvae classifiers train|show`: the digit classifiers that score generated samples."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classifiers", help="train or list the evaluation classifiers")
    p.add_argument("action", choices=("train", "show"))
    p.add_argument("--dataset", choices=("mnist", "svhn"), default="mnist")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root")
    p.add_argument("--download", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true", help="retrain even if a cached one exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmvae.data.sources import resolve_data_root
    from dmvae.devices import resolve_device
    from dmvae.evaluation import classifiers as clf

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
    key = clf.classifier_key(args.dataset, args.seed)
    existing = clf.find_classifier(root, key)
    if existing and not args.force:
        info = clf.read_info(existing)
        print(
            f"{existing} exists (test accuracy {100 * info['test_accuracy']:.2f} %); "
            "--force retrains"
        )
        return 0
    path, info = clf.train_and_cache(
        args.dataset,
        root,
        device=resolve_device(args.device),
        seed=args.seed,
        epochs=args.epochs,
        download=args.download,
    )
    print(
        f"{args.dataset} classifier: test accuracy {100 * info['test_accuracy']:.2f} % "
        f"({info['train_seconds']} s), saved to {path}"
    )
    return 0
