"""Quickstart from Python: train DMVAE on paired noisy MNIST (two modalities) for a few epochs,
evaluate it as the paper does, and print the headline numbers; the README's first command does
the same from the command line.

    python examples/quickstart.py --out runs/quickstart-py               # ~1 min on 2 CPU cores
    python examples/quickstart.py --max-steps 20 --out /tmp/quickstart   # a smoke run

MNIST is read from --data-root, else $DMVAE_DATA, else the user cache (--download fetches it).
"""

from __future__ import annotations

import argparse

import dmvae


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quickstart-py", help="the run directory")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--data-root", help="the folder that holds MNIST/raw/")
    parser.add_argument("--download", action="store_true", help="fetch MNIST if missing")
    parser.add_argument("--num-samples", type=int, default=1000, help="images per distance")
    parser.add_argument("--max-test", type=int, help="score a seeded subset of the test set")
    args = parser.parse_args(argv)

    settings = {
        "data.modalities": 2,
        "data.root": args.data_root,
        "data.download": args.download,
        "train.epochs": args.epochs,
        "train.max_steps": args.max_steps,
        "train.batch_size": 256,
        "train.anneal_epochs": 1,
        "train.out": args.out,
        "model.disc_width": 125,  # the quick budget's discriminators (the paper's: 500)
    }
    given = {key: value for key, value in settings.items() if value is not None}
    config = dmvae.RunConfig.preset("paired-mnist", "dmvae", given)  # the paper's preset + these
    dmvae.train(config, overwrite=True)
    metrics = dmvae.evaluate_run(
        args.out, fid_features="classifier", num_samples=args.num_samples, max_test=args.max_test
    )
    coherence, latent = metrics["coherence"], metrics["latent"]
    print(f"cross coherence {100 * coherence['cross_mean']:.1f} % (chance 10 %)")
    print(f"latent accuracy, both modalities given: {100 * latent['all']:.1f} %")
    print(f"joint coherence from the ex-post GMM: {100 * metrics['joint_coherence']['gmm']:.1f} %")
    print(f"everything, with provenance: {args.out}/eval/metrics.md")
    return metrics


if __name__ == "__main__":
    main()
