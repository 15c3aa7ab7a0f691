"""Linear probe of the shared latent (from all modalities, and from m0 alone) of each DMVAE and
MVAE cell of a paired-MNIST reproduction grid: is a model's coherence limited by what its shared
latent knows about the digit? (20,000 training embeddings, scored on the whole test set.)

    python benchmarks/probe_grid.py runs/paired-mnist-quick
"""

from __future__ import annotations

import sys
from pathlib import Path

from dmvae import experiments
from dmvae.evaluation.latent import latent_accuracy
from dmvae.training import load_run


def main() -> None:
    out = Path(sys.argv[1])
    for m in (2, 3, 4, 5):
        for name in ("dmvae", "mvae"):
            run = out / f"M{m}" / name / "seed0"
            if not (run / "checkpoint.safetensors").exists():
                continue
            model, config = load_run(run)
            train = experiments.build_data(config, "train")
            test = experiments.build_data(config, "test")
            acc = latent_accuracy(
                model,
                train,
                test,
                subsets={"all": tuple(model.modalities), "m0": ("m0",)},
                train_samples=20000,
            )
            both, alone = 100 * acc["all"], 100 * acc["m0"]
            print(f"M={m} {name}: probe all {both:.1f} %, m0 alone {alone:.1f} %", flush=True)


if __name__ == "__main__":
    main()
