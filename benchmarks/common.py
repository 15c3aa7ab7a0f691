"""What the benchmark scripts share: the model of a run config with the `TrainStep` that trains
it (the trainer's own step), synthetic batches, and a step timer
(the content scores of a model are `dmvae.evaluation.scores`, shared with the learning tests).

The scripts import it as `common`: `python benchmarks/NAME.py` puts this folder on sys.path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from dmvae.config import RunConfig
from dmvae.data.batch import Batch, make_batch
from dmvae.experiments import get_experiment
from dmvae.models.base import MultimodalVAE
from dmvae.training import TrainStep

SHAPES = {"mnist": (1, 28, 28), "svhn": (3, 32, 32)}
# The benchmarks' data shapes: paired MNIST at both ends of the paper's M, and MNIST-SVHN.
CASES = [
    ("paired-mnist", {"data.modalities": 2}),
    ("paired-mnist", {"data.modalities": 5}),
    ("mnist-svhn", {}),
]


def build_trainer(
    config: RunConfig, seed: int = 0, device: str | torch.device = "cpu"
) -> tuple[MultimodalVAE, TrainStep]:
    """The model of `config` in train mode (initialised from `seed`) on `device` and the
    `TrainStep` that trains it as `dmvae train` does: the config's lr, amsgrad and amp."""
    torch.manual_seed(seed)
    model = config.build_model().to(device).train()
    t = config.train
    return model, TrainStep(model, lr=t.lr, amsgrad=t.amsgrad, amp=t.amp)


def machine(device: str | torch.device) -> str:
    """The device a benchmark ran on, for its first line."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "CPU"


def describe(config: RunConfig) -> str:
    """What a benchmark line measured: model, experiment, M, batch size (and MMVAE's K)."""
    m = len(get_experiment(config.experiment).modalities(config.data))
    label = f"{config.model:6s} {config.experiment:12s} M={m} batch={config.train.batch_size}"
    if config.model == "mmvae":
        label += f" K={config.model_config.K}"
    return label


def synthetic_batch(names: Sequence[str], n: int, device: str | torch.device = "cpu") -> Batch:
    """`n` random images per modality (MNIST shapes unless the name says SVHN) and labels."""
    inputs = {m: torch.rand(n, *SHAPES.get(m, (1, 28, 28)), device=device) for m in names}
    return make_batch(inputs, torch.randint(0, 10, (n,), device=device))


def wait(device: str | torch.device) -> None:
    """Let `device` finish its queued work: a GPU step is timed when its kernels have run, not
    when they were launched."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], steps: int, device: str | torch.device = "cpu") -> float:
    """Seconds per call of `fn` over `steps` calls, after one warm-up call; the calls run back
    to back and the clock stops when `device` has finished them."""
    fn()
    wait(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    wait(device)
    return (time.perf_counter() - start) / steps
