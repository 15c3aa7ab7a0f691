"""Where a training step's time goes: torch.profiler's top operators for each model's
`TrainStep` (the trainer's own step) on a synthetic batch of the paper's batch size.

python benchmarks/profile_step.py [--modalities 5] [--steps 3] [--top 8] [--K 10]
    [--models dmvae mvae mmvae]
"""

from __future__ import annotations

import argparse

from common import build_trainer, describe, synthetic_batch
from torch.profiler import ProfilerActivity, profile

from dmvae.config import RunConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modalities", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--K", type=int, default=10, help="MMVAE samples per expert")
    parser.add_argument("--models", nargs="+", default=["dmvae", "mvae", "mmvae"])
    args = parser.parse_args()
    for name in args.models:
        overrides = {"data.modalities": args.modalities}
        if name == "mmvae":
            overrides["model.K"] = args.K
        config = RunConfig.preset("paired-mnist", name, overrides)
        model, step = build_trainer(config)
        batch = synthetic_batch(model.modalities, config.train.batch_size)
        step(batch, 1.0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step(batch, 1.0)
        print(f"\n== {describe(config)}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
