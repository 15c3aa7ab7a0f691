"""Training throughput of dmvae against MultiVae, side by side in one process.

Both libraries train MVAE and MMVAE on the same networks (the paper's architectures; MultiVae
gets them wrapped as pythae encoders/decoders), the same batch size, Laplace likelihood and
data: real paired MNIST with M = 2 and 5, and MNIST-SVHN shapes on synthetic tensors. MultiVae
is fed by a DataLoader over its own data set, as its trainer does; dmvae gathers batches by
index from tensors. Each configuration is timed for `--steps` steps after one warm-up step,
the two libraries alternating so that machine load hits both alike. The dmvae floor (bare
network passes of the objective, benchmarks/bench_models.py) is printed beside it.

    pip install -e ".[bench]"
    python benchmarks/vs_multivae.py [--steps 5] [--threads 2] [--quick]
        [--models mvae mmvae] [--modalities 2 5] [--no-svhn]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
from torch import nn

from dmvae import experiments
from dmvae.data.batch import MultimodalData
from dmvae.training import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import floor_step  # noqa: E402


def multivae_modules():
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


def build_multivae(name: str, config: TrainConfig, names: tuple[str, ...], k: int):
    from multivae.models import MMVAE, MVAE, MMVAEConfig, MVAEConfig

    Encoder, Decoder = multivae_modules()
    latent = config.model_config["latent_dim"]
    encoders, decoders = experiments.networks(config.experiment, names, latent)
    common = dict(
        n_modalities=len(names),
        latent_dim=latent,
        decoders_dist={m: "laplace" for m in names},
        decoder_dist_params={m: {"scale": config.likelihood_scale} for m in names},
    )
    if name == "mvae":
        cfg = MVAEConfig(**common, k=1 if len(names) > 2 else 0, warmup=1)
        cls = MVAE
    else:
        cfg = MMVAEConfig(**common, K=k, loss="dreg_looser", learn_prior=True)
        cls = MMVAE
    return cls(
        cfg,
        {m: Encoder(encoders[m]) for m in names},
        {m: Decoder(decoders[m]) for m in names},
    )


def real_paired_mnist(modalities: int, device: str = "cpu") -> MultimodalData:
    cfg = TrainConfig.from_preset("paired-mnist", "mvae", **{"data.modalities": modalities})
    cfg.data.noise_std = 0.0  # MultiVae reconstructs its inputs; both libraries see the same
    return experiments.build_data(cfg.to_run_config(), "train", device)


def synthetic_mnist_svhn(n: int = 20000) -> MultimodalData:
    g = torch.Generator().manual_seed(0)
    images = {
        "mnist": torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
        "svhn": torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
    }
    index = {m: torch.arange(n) for m in images}
    return MultimodalData(images, index, torch.randint(0, 10, (n,), generator=g))


def dmvae_stepper(model, data: MultimodalData, batch_size: int, optimizer):
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    batches = itertools.cycle(range(len(data) // batch_size))

    def step():
        k = next(batches)
        batch = data.batch(order[k * batch_size : (k + 1) * batch_size])
        loss = model.loss(batch, 1.0)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def multivae_stepper(model, data: MultimodalData, batch_size: int, optimizer):
    from multivae.data.datasets import MultimodalBaseDataset
    from torch.utils.data import DataLoader

    images = {m: data.images[m][data.index[m]].float() / 255 for m in data.modalities}
    dataset = MultimodalBaseDataset(images, data.labels)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            inputs = next(batches)
        except StopIteration:
            batches = iter(loader)
            inputs = next(batches)
        loss = model(inputs, epoch=2).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def time_alternating(steppers: dict, steps: int) -> dict[str, float]:
    """Seconds per step of each stepper, run in turns after one warm-up step each."""
    for step in steppers.values():
        step()
    total = dict.fromkeys(steppers, 0.0)
    for _ in range(steps):
        for name, step in steppers.items():
            start = time.perf_counter()
            step()
            total[name] += time.perf_counter() - start
    return {name: t / steps for name, t in total.items()}


def bench(experiment: str, name: str, data: MultimodalData, k: int, steps: int) -> None:
    cfg = TrainConfig.from_preset(experiment, name, **{"data.modalities": len(data.modalities)})
    if name == "mmvae":
        cfg.model_config.update(K=k, estimator="dreg")
    bs = cfg.batch_size
    torch.manual_seed(0)
    ours = experiments.build_model(cfg.to_run_config()).train()
    theirs = build_multivae(name, cfg, tuple(data.modalities), k).train()
    opt_ours = torch.optim.Adam(ours.main_parameters(), lr=1e-4, amsgrad=cfg.amsgrad)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-4, amsgrad=cfg.amsgrad)
    batch = data.batch(torch.arange(bs))
    times = time_alternating(
        {
            "dmvae": dmvae_stepper(ours, data, bs, opt_ours),
            "multivae": multivae_stepper(theirs, data, bs, opt_theirs),
            "floor": floor_step(name, ours, batch, opt_ours, k),
        },
        steps,
    )
    label = f"{name:5s} {experiment:12s} M={len(data.modalities)} batch={bs}"
    if name == "mmvae":
        label += f" K={k}"
    ours_sps, theirs_sps = bs / times["dmvae"], bs / times["multivae"]
    floor = times["dmvae"] / times["floor"]
    print(
        f"{label}: dmvae {ours_sps:7.0f} samples/s, multivae {theirs_sps:7.0f} samples/s, "
        f"speed ratio {ours_sps / theirs_sps:.2f}x, floor ratio {floor:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--quick", action="store_true", help="M = 2 and K = 1 only")
    parser.add_argument("--models", nargs="+", default=["mvae", "mmvae"])
    parser.add_argument("--modalities", nargs="+", type=int, help="paired MNIST M (default 2 5)")
    parser.add_argument("--no-svhn", action="store_true", help="skip the MNIST-SVHN shapes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import multivae

    print(
        f"torch {torch.__version__}, multivae {getattr(multivae, '__version__', '?')}, "
        f"{args.threads} threads, CPU"
    )
    ks = (1,) if args.quick else (1, 10)
    configs = [(m, "paired-mnist") for m in args.modalities or ((2,) if args.quick else (2, 5))]
    if not args.no_svhn:
        configs.append((2, "mnist-svhn"))
    for modalities, experiment in configs:
        if experiment == "paired-mnist":
            data = real_paired_mnist(modalities)
        else:
            data = synthetic_mnist_svhn()
        if "mvae" in args.models:
            bench(experiment, "mvae", data, 1, args.steps)
        if "mmvae" in args.models:
            for k in ks:
                bench(experiment, "mmvae", data, k, args.steps)


if __name__ == "__main__":
    main()
