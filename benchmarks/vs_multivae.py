"""Training throughput of dmvae against MultiVae, side by side in one process.

Both libraries train MVAE, MMVAE and MoPoE on the same networks (the paper's architectures; MultiVae
gets them wrapped as pythae encoders/decoders), the same batch size, Laplace likelihood and
data: real paired MNIST with M = 2 and 5, and MNIST-SVHN shapes on synthetic tensors. MultiVae
is fed by a DataLoader over its own data set and steps a plain Adam, as its trainer does; dmvae
gathers batches by index from tensors and steps with `TrainStep`, its trainer's own step. Each
configuration is timed for `--steps` turns after two warm-up steps, the two libraries
alternating so that machine load hits both alike. The dmvae floor (bare network passes of the
objective, benchmarks/bench_models.py) is printed beside it.

    pip install -e ".[bench]"
    python benchmarks/vs_multivae.py [--steps 5] [--threads 2] [--quick]
        [--models mvae mmvae mopoe] [--modalities 2 5] [--no-svhn] [--device cuda --block 20]

On a GPU, `--block` steps run back to back in each timed turn (a step is done when its kernels
have run: each turn ends by waiting for the device), as they do in training.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import torch
from bench_models import floor_step
from common import build_trainer, describe, machine, wait
from torch import nn

from dmvae.config import RunConfig
from dmvae.data.batch import MultimodalData
from dmvae.experiments import get_experiment
from dmvae.training import TrainStep


def multivae_modules() -> tuple[type, type]:
    """Wrappers that make our encoder and decoder networks pythae ones, for MultiVae."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        """One of our encoders, returning MultiVae's ModelOutput."""

        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            mu, logvar = self.net(x)
            return ModelOutput(embedding=mu, log_covariance=logvar)

    class Decoder(BaseDecoder):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, z):
            shape = z.shape
            out = self.net(z.reshape(-1, shape[-1]))
            return ModelOutput(reconstruction=out.reshape(*shape[:-1], *out.shape[1:]))

    return Encoder, Decoder


def build_multivae(config: RunConfig) -> nn.Module:
    """MultiVae's MVAE, MMVAE or MoPoE on the networks `config` builds for our model (fresh
    copies)."""
    from multivae.models import MMVAE, MVAE, MMVAEConfig, MoPoE, MoPoEConfig, MVAEConfig

    Encoder, Decoder = multivae_modules()
    latent = config.model_config.latent_dim
    experiment = get_experiment(config.experiment)
    names = experiment.modalities(config.data)
    encoders, decoders = experiment.networks(config.data, latent)
    common = dict(
        n_modalities=len(names),
        latent_dim=latent,
        decoders_dist={m: "laplace" for m in names},
        decoder_dist_params={m: {"scale": config.train.likelihood_scale} for m in names},
    )
    if config.model == "mvae":
        cfg = MVAEConfig(**common, k=1 if len(names) > 2 else 0, warmup=1)
        cls = MVAE
    elif config.model == "mopoe":
        cfg, cls = MoPoEConfig(**common, beta=config.model_config.beta), MoPoE
    else:
        cfg = MMVAEConfig(**common, K=config.model_config.K, loss="dreg_looser", learn_prior=True)
        cls = MMVAE
    return cls(
        cfg,
        {m: Encoder(encoders[m]) for m in names},
        {m: Decoder(decoders[m]) for m in names},
    )


def real_paired_mnist(modalities: int, device: str = "cpu") -> MultimodalData:
    """Paired MNIST without input noise: MultiVae reconstructs its inputs, so both libraries
    see the same tuples."""
    overrides = {"data.modalities": modalities, "data.noise_std": 0.0}
    return RunConfig.preset("paired-mnist", "mvae", overrides).build_data("train", device)


def synthetic_mnist_svhn(n: int = 20000) -> MultimodalData:
    """`n` random uint8 MNIST- and SVHN-shaped image pairs with random labels."""
    g = torch.Generator().manual_seed(0)
    images = {
        "mnist": torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
        "svhn": torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
    }
    index = {m: torch.arange(n) for m in images}
    return MultimodalData(images, index, torch.randint(0, 10, (n,), generator=g))


def dmvae_stepper(
    train_step: TrainStep, data: MultimodalData, batch_size: int
) -> Callable[[], None]:
    """Our side: `TrainStep` (the trainer's own step) on the next batch gathered by index."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    order = order.to(data.device)
    batches = itertools.cycle(range(len(data) // batch_size))

    def step() -> None:
        k = next(batches)
        train_step(data.batch(order[k * batch_size : (k + 1) * batch_size]), 1.0)

    return step


def multivae_stepper(
    model: nn.Module,
    data: MultimodalData,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> Callable[[], None]:
    """MultiVae's side: its DataLoader over host tensors, each batch moved to `device`, its
    loss and a plain Adam step, as its trainer does."""
    from multivae.data.datasets import MultimodalBaseDataset
    from torch.utils.data import DataLoader

    images = {m: data.images[m][data.index[m]].float().cpu() / 255 for m in data.modalities}
    dataset = MultimodalBaseDataset(images, data.labels)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            inputs = next(batches)
        except StopIteration:
            batches = iter(loader)
            inputs = next(batches)
        inputs["data"] = {m: v.to(device) for m, v in inputs["data"].items()}
        loss = model(inputs, epoch=2).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_alternating(
    steppers: dict[str, Callable[[], None]], rounds: int, block: int, device: torch.device
) -> dict[str, float]:
    """Seconds per step of each stepper: `rounds` turns of `block` steps each, after two warm-up
    steps each; a turn ends when the device has finished its steps."""
    for step in steppers.values():
        step()
        step()
    wait(device)
    total = dict.fromkeys(steppers, 0.0)
    for _ in range(rounds):
        for name, step in steppers.items():
            start = time.perf_counter()
            for _ in range(block):
                step()
            wait(device)
            total[name] += time.perf_counter() - start
    return {name: t / (rounds * block) for name, t in total.items()}


def bench(
    experiment: str, name: str, data: MultimodalData, k: int, rounds: int, block: int
) -> None:
    """Print samples/s of both libraries on `data` and our floor ratio."""
    overrides = {"data.modalities": len(data.modalities)} if experiment == "paired-mnist" else {}
    if name == "mmvae":
        overrides.update({"model.K": k, "model.estimator": "dreg"})
    config = RunConfig.preset(experiment, name, overrides)
    t = config.train
    bs = t.batch_size
    device = data.device
    ours, train_step = build_trainer(config, device=device)
    theirs = build_multivae(config).to(device).train()
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=t.lr, amsgrad=t.amsgrad)
    batch = data.batch(torch.arange(bs))
    times = time_alternating(
        {
            "dmvae": dmvae_stepper(train_step, data, bs),
            "multivae": multivae_stepper(theirs, data, bs, opt_theirs, device),
            "floor": floor_step(ours, batch, train_step.optimizers["main"]),
        },
        rounds,
        block,
        device,
    )
    ours_sps, theirs_sps = bs / times["dmvae"], bs / times["multivae"]
    floor = times["dmvae"] / times["floor"]
    print(
        f"{describe(config)}: dmvae {ours_sps:7.0f} samples/s, multivae {theirs_sps:7.0f} "
        f"samples/s, speed ratio {ours_sps / theirs_sps:.2f}x, floor ratio {floor:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="M = 2 and K = 1 only")
    parser.add_argument("--models", nargs="+", default=["mvae", "mmvae", "mopoe"])
    parser.add_argument("--modalities", nargs="+", type=int, help="paired MNIST M (default 2 5)")
    parser.add_argument("--no-svhn", action="store_true", help="skip the MNIST-SVHN shapes")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--block", type=int, default=1, help="steps per timed turn")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import multivae

    print(
        f"torch {torch.__version__}, multivae {getattr(multivae, '__version__', '?')}, "
        f"{args.threads} threads, {machine(args.device)}"
    )
    ks = (1,) if args.quick else (1, 10)
    configs = [(m, "paired-mnist") for m in args.modalities or ((2,) if args.quick else (2, 5))]
    if not args.no_svhn:
        configs.append((2, "mnist-svhn"))
    for modalities, experiment in configs:
        if experiment == "paired-mnist":
            data = real_paired_mnist(modalities, args.device)
        else:
            data = synthetic_mnist_svhn().to(args.device)
        timing = (args.steps, args.block)
        for name in args.models:
            for k in ks if name == "mmvae" else (1,):
                bench(experiment, name, data, k, *timing)


if __name__ == "__main__":
    main()
