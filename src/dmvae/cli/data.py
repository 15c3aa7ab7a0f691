"""`dmvae data prepare|summary`: build and check the paired index files, and describe them."""

from __future__ import annotations

import argparse

from dmvae.experiments import EXPERIMENTS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="prepare or describe the benchmark data sets")
    p.add_argument("action", choices=("prepare", "summary"))
    p.add_argument("--dataset", choices=EXPERIMENTS, default="paired-mnist")
    p.add_argument("--modalities", type=int, default=2, help="paired MNIST: 2-5")
    p.add_argument("--split", choices=("train", "test", "both"), default="both")
    p.add_argument("--data-root", help="data directory (default: $DMVAE_DATA or the user cache)")
    p.add_argument("--download", action="store_true", help="download missing files")
    p.add_argument("--no-verify", action="store_true", help="accept SVHN files without md5 match")
    p.add_argument("--dm", type=int, default=20, help="MNIST-SVHN: permutations per class")
    p.add_argument("--max-per-class", type=int, default=10000)
    p.add_argument("--seed", type=int, default=42, help="pairing seed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmvae.data import datasets
    from dmvae.data.sources import resolve_data_root
    from dmvae.experiments import modality_names

    root = resolve_data_root(args.data_root)
    if args.dataset == "paired-mnist":
        modality_names(args.dataset, args.modalities)
    splits = ("train", "test") if args.split == "both" else (args.split,)
    print(f"{args.dataset} from {root}")
    for split in splits:
        if args.dataset == "mnist-svhn":
            data = datasets.load_mnist_svhn(
                root,
                split,
                dm=args.dm,
                max_per_class=args.max_per_class,
                seed=args.seed,
                download=args.download,
                verify=not args.no_verify,
            )
        else:
            data = datasets.load_paired_mnist(
                root, split, args.modalities, seed=args.seed, download=args.download
            )
        info = datasets.summary(data)
        kind = "pairs" if args.dataset == "mnist-svhn" else "tuples"
        print(f"  {split}: {info['samples']} {kind} over {', '.join(info['modalities'])}")
        if args.action == "summary":
            balance = " ".join(f"{d}:{n}" for d, n in enumerate(info["per_class"]))
            print(f"    per class   {balance}")
            print(f"    labels agree across modalities: {'yes' if info['labels_agree'] else 'NO'}")
            print(f"    memory      {info['memory_mb']:.1f} MB (uint8 banks + int64 indices)")
        if not info["labels_agree"]:
            return 1
    return 0
