"""Device operators per training step, counted without a GPU.

On a GPU our small networks make a step bound by kernel launches: each operator that runs on
the device is about one launch, costing the host a few microseconds whatever the batch size.
Here each model's `TrainStep` runs on torch's `meta` device (shapes, no values) and the
operators it dispatches there are counted: forward, backward and the Adam step (foreach, CUDA's
default; the fused Adam that CUDA runs use makes each optimiser step one kernel per parameter
group instead). Views (no kernel) and host-only operators (Adam's step counters) are not
counted. Per sample, fewer launches per step means a higher ceiling on a launch-bound GPU; the
time per launch is measured on a GPU only (benchmarks/bench_models.py --device cuda).

    python benchmarks/host_overhead.py [--models dmvae mvae mmvae mopoe mmvaeplus]
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch
from common import CASES, describe, synthetic_batch
from torch.utils._python_dispatch import TorchDispatchMode

from dmvae.config import RunConfig
from dmvae.training import TrainStep


class Count(TorchDispatchMode):
    """Counts, by name, the operators dispatched on the device while active (views and
    operators on host tensors left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        tensors += [t for a in args if isinstance(a, (list, tuple)) for t in a]
        on_device = any(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in tensors)
        if on_device and not func.is_view:
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count(config: RunConfig) -> Counter[str]:
    """Device operators of one training step (after a first one), by name."""
    torch.manual_seed(0)
    model = config.build_model().to("meta").train()
    step = TrainStep(model, lr=config.train.lr, amsgrad=config.train.amsgrad)
    for group in (g for opt in step.optimizers.values() for g in opt.param_groups):
        group["foreach"] = True  # CUDA's default where the fused kernel is not used
    batch = synthetic_batch(model.modalities, config.train.batch_size).to("meta")
    step(batch, 0.5)
    with Count() as counter:
        step(batch, 0.5)
    return counter.ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["dmvae", "mvae", "mmvae", "mopoe", "mmvaeplus"]
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, meta device (operators counted, nothing computed)")
    print("| run | device operators per step | per 1,000 samples | most frequent |")
    print("|---|---|---|---|")
    for experiment, overrides in CASES:
        for name in args.models:
            config = RunConfig.preset(experiment, name, overrides)
            ops = count(config)
            total, per_k = sum(ops.values()), 1000 * sum(ops.values()) / config.train.batch_size
            common = ", ".join(f"{k} {v}" for k, v in ops.most_common(4))
            print(f"| {describe(config)} | {total} | {per_k:.0f} | {common} |", flush=True)


if __name__ == "__main__":
    main()
