"""On a GPU: does any model's training step make the host wait for the device?

Each model's `TrainStep` (paired MNIST M = 2 and 5, MNIST-SVHN shapes) takes two warm-up steps,
then `--steps` steps under `torch.cuda.set_sync_debug_mode("error")`, which raises at the first
operation that synchronises with the device (a value read back, a waiting copy, a
data-dependent shape). The CPU suite checks the same on the meta device
(tests/test_gpu_step.py); this is the check on the real driver.

    python benchmarks/gpu_sync_check.py [--steps 5] [--models dmvae mvae mmvae mopoe mmvaeplus]
"""

from __future__ import annotations

import argparse

import torch
from common import CASES, build_trainer, describe, synthetic_batch

from dmvae.config import RunConfig


def check(config: RunConfig, steps: int) -> str:
    """'no sync' or the first synchronising operation of the step, in one line."""
    model, step = build_trainer(config, device="cuda")
    batch = synthetic_batch(model.modalities, config.train.batch_size, "cuda")
    for _ in range(2):
        step(batch, 0.5)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(steps):
            step(batch, 0.5)
    except RuntimeError as err:
        return f"SYNC: {str(err).splitlines()[0]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return "no sync"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument(
        "--models", nargs="+", default=["dmvae", "mvae", "mmvae", "mopoe", "mmvaeplus"]
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    failures = 0
    for experiment, overrides in CASES:
        for name in args.models:
            config = RunConfig.preset(experiment, name, overrides)
            verdict = check(config, args.steps)
            failures += verdict != "no sync"
            print(f"{describe(config)}: {verdict}", flush=True)
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
