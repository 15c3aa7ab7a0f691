"""Per-step cost of the training settings considered for `dmvae reproduce --budget quick`.

Times `--steps` training steps (`TrainStep`, the trainer's own step) after 3 warm-up steps on
real paired MNIST (M = 2 and 5) for each candidate and prints ms/step and the implied seconds
per epoch of 60,000 tuples.

    python benchmarks/schedule_costs.py [--steps 10] [--data-root DATA_ROOT]
        [--modalities 2 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import build_trainer

from dmvae.config import RunConfig

CANDIDATES = [
    ("dmvae", {"batch_size": 256, "model.disc_width": 500}),
    ("dmvae", {"batch_size": 256, "model.disc_width": 125}),
    ("mvae", {"batch_size": 256}),
    ("mmvae", {"model.K": 5}),
    ("mmvae", {"model.K": 1}),
]
WARMUP = 3


def step_seconds(config: RunConfig, steps: int) -> float:
    """Seconds per training step of `config` on its real training data, after `WARMUP` steps."""
    data = config.build_data("train", "cpu")
    model, step = build_trainer(config)
    batches = data.batches(config.train.batch_size, generator=torch.Generator().manual_seed(0))
    for k, batch in enumerate(batches):
        if k == WARMUP:
            start = time.perf_counter()
        if k == WARMUP + steps:
            return (time.perf_counter() - start) / steps
        step(batch, 0.5)
    raise ValueError("not enough batches for the requested steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data-root")
    parser.add_argument("--modalities", nargs="+", type=int, default=[2, 5])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    for modalities in args.modalities:
        for name, overrides in CANDIDATES:
            data = {"data.modalities": modalities, "data.root": args.data_root}
            config = RunConfig.preset("paired-mnist", name, {**overrides, **data})
            t = step_seconds(config, args.steps)
            print(
                f"M={modalities} {name:5s} {overrides}: {1000 * t:.0f} ms/step, "
                f"{t * 60000 / config.train.batch_size:.0f} s/epoch",
                flush=True,
            )


if __name__ == "__main__":
    main()
