"""Per-step cost of the training settings considered for `dmvae reproduce --budget quick`.

Times `--steps` training steps after 3 warm-up steps on real paired MNIST (M = 2 and 5) for each
candidate and prints ms/step and the implied seconds per epoch of 60,000 tuples.

    python benchmarks/schedule_costs.py [--steps 10] [--data-root ../shared/data]
"""

from __future__ import annotations

import argparse
import time

import torch

from dmvae import experiments
from dmvae.training import TrainConfig

CANDIDATES = [
    ("dmvae", {"batch_size": 256, "model_config.disc_width": 500}),
    ("dmvae", {"batch_size": 256, "model_config.disc_width": 125}),
    ("mvae", {"batch_size": 256}),
    ("mmvae", {"model_config.K": 5}),
    ("mmvae", {"model_config.K": 1}),
]


def step_seconds(model_name: str, overrides: dict, modalities: int, root, steps: int) -> float:
    cfg = TrainConfig.from_preset("paired-mnist", model_name, **overrides)
    cfg.data.modalities, cfg.data.root = modalities, root
    run = cfg.to_run_config()
    data = experiments.build_data(run, "train", "cpu")
    model = experiments.build_model(run).train()
    optimizer = torch.optim.Adam(model.main_parameters(), lr=cfg.lr)
    batches = data.batches(cfg.batch_size, generator=torch.Generator().manual_seed(0))
    for k, batch in enumerate(batches):
        if k == 3:
            start = time.perf_counter()
        if k == 3 + steps:
            return (time.perf_counter() - start) / steps
        loss = model.loss(batch, 0.5)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    raise ValueError("not enough batches for the requested steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data-root")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    for modalities in (2, 5):
        for name, overrides in CANDIDATES:
            batch = TrainConfig.from_preset("paired-mnist", name, **overrides).batch_size
            t = step_seconds(name, overrides, modalities, args.data_root, args.steps)
            print(
                f"M={modalities} {name:5s} {overrides}: {1000 * t:.0f} ms/step, "
                f"{t * 60000 / batch:.0f} s/epoch",
                flush=True,
            )


if __name__ == "__main__":
    main()
