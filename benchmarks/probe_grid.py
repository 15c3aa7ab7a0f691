"""Linear probe of the shared latent (from all modalities, and from m0 alone) of each DMVAE and
MVAE cell of a paired-MNIST reproduction grid: is a model's coherence limited by what its shared
latent knows about the digit? (20,000 training embeddings, scored on the whole test set.)

    python benchmarks/probe_grid.py runs/paired-mnist-quick
    python benchmarks/probe_grid.py runs/paired-mnist-quick --modalities 2 --models dmvae
        --train-samples 2000  # one cell, quickly
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dmvae.evaluation.latent import latent_accuracy
from dmvae.training import CHECKPOINT, load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path, help="the reproduction's output folder")
    parser.add_argument("--modalities", nargs="+", type=int, default=[2, 3, 4, 5])
    parser.add_argument("--models", nargs="+", default=["dmvae", "mvae"])
    parser.add_argument("--train-samples", type=int, default=20000)
    args = parser.parse_args()
    for m in args.modalities:
        for name in args.models:
            run = args.grid / f"M{m}" / name / "seed0"
            if not (run / CHECKPOINT).exists():
                continue
            model, config = load_run(run)
            acc = latent_accuracy(
                model,
                config.build_data("train"),
                config.build_data("test"),
                subsets={"all": tuple(model.modalities), "m0": ("m0",)},
                train_samples=args.train_samples,
            )
            both, alone = 100 * acc["all"], 100 * acc["m0"]
            print(f"M={m} {name}: probe all {both:.1f} %, m0 alone {alone:.1f} %", flush=True)


if __name__ == "__main__":
    main()
