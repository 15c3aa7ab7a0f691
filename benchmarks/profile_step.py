"""Where a training step's time goes: torch.profiler's top operators for each model.

python benchmarks/profile_step.py [--modalities 5] [--steps 3] [--top 8]
"""

from __future__ import annotations

import argparse

import torch
from bench_models import model_step, synthetic_batch
from torch.profiler import ProfilerActivity, profile

from dmvae import experiments
from dmvae.training import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modalities", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--K", type=int, default=10, help="MMVAE samples per expert")
    args = parser.parse_args()
    for name in ("dmvae", "mvae", "mmvae"):
        cfg = TrainConfig.from_preset("paired-mnist", name, **{"data.modalities": args.modalities})
        if name == "mmvae":
            cfg.model_config["K"] = args.K
        model = experiments.build_model(cfg.to_run_config()).train()
        batch = synthetic_batch("paired-mnist", model.modalities, cfg.batch_size)
        optimizer = torch.optim.Adam(model.main_parameters(), lr=1e-4)
        step = model_step(model, batch, optimizer)
        step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        label = f"{name} M={args.modalities} batch={cfg.batch_size}"
        print(f"\n== {label}" + (f" K={args.K}" if name == "mmvae" else ""))
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
