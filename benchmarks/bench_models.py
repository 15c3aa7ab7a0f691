"""Training throughput of each model next to its compute floor.

The floor of a model is the time of the bare forward and backward passes its objective needs on
the same networks and batch, with a trivial loss: for DMVAE the encoders, the decoders and the
discriminators' passes (one training step of each D_m on joint + permuted samples, one pass
with input gradients for the TC estimate); for MVAE one decode per ELBO term; for MoPoE one
decode per modality; for MMVAE and MMVAE+ M x M x K decodes. Both sides include the Adam
step. A ratio near 1 means the objective adds little beyond the networks' own compute. The
model side is `dmvae.training.TrainStep`, the trainer's own step (the loss, the
discriminators' updates, Adam with the preset's lr and amsgrad). `--compile MODE` compiles the
networks of both sides with `torch.compile`.

    python benchmarks/bench_models.py [--steps 5] [--threads 2] [--K 30] [--models dmvae mvae mmvae]
        [--quick] [--device cuda] [--compile MODE]
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

import torch
from common import build_trainer, describe, machine, synthetic_batch, timed

from dmvae.config import RunConfig
from dmvae.data.batch import Batch
from dmvae.models.base import MultimodalVAE
from dmvae.training import TrainStep


def pin_subsets(model: MultimodalVAE, count: int = 64) -> list[torch.Tensor]:
    """MVAE draws random ELBO subsets every step; pin one sequence of draws that the model
    replays, so that its floor can replay the same one and both do the same work."""
    draws = [model.training_subsets() for _ in range(count)]
    replay = itertools.cycle(draws)
    model.training_subsets = lambda: next(replay)
    return draws


def floor_step(
    model: MultimodalVAE, batch: Batch, optimizer: torch.optim.Optimizer
) -> Callable[[], None]:
    """Bare network passes with a trivial loss, sized as the objective needs them (for MVAE,
    after `pin_subsets`, on the same subsets the model replays), and `optimizer`'s step."""
    name, names = model.name, model.modalities
    n = len(batch)
    draws = itertools.cycle(pin_subsets(model)) if name == "mvae" else None

    def repeats(k_mod: int, subsets: torch.Tensor | None) -> int:
        """Times decoder k_mod runs on the batch: once per ELBO term that reconstructs it."""
        if name in ("dmvae", "mopoe"):  # MoPoE: one z per sample, from its mixture component
            return 1
        if name == "mvae":
            return int(subsets[:, k_mod].sum())
        return len(names) * model.config.K  # MMVAE, MMVAE+: K samples of every expert

    def step() -> None:
        subsets = next(draws) if name == "mvae" else None
        total = 0.0
        latents = {}
        for m in names:
            mu, logvar = model.encoders[m](batch.inputs[m])
            latents[m] = mu + logvar.exp()
            total = total + mu.mean() + logvar.mean()
        for k_mod, m in enumerate(names):
            reps = repeats(k_mod, subsets)
            z = latents[m].repeat(reps, 1) if reps > 1 else latents[m]
            total = total + model.decoders[m](z).mean()
        if name == "dmvae":
            s_dim = model.style_dim
            for m in names:
                s, c = latents[m][:, :s_dim], latents[m][:, s_dim:]
                half = n // 2
                d = model.discriminators[m]
                d_loss = d(
                    torch.cat([s[:half], s[:half]]).detach(), torch.cat([c[:half]] * 2).detach()
                )
                d_loss.mean().backward()
                d.requires_grad_(False)
                total = total + d(s[:half], c[:half].detach()).mean()
                d.requires_grad_(True)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    return step


def compile_networks(model: MultimodalVAE, mode: str) -> None:
    """`torch.compile` every encoder, decoder and auxiliary network in place (the objective's
    own terms stay eager): whether it pays on a GPU is what `--compile` measures."""
    nets = [*model.encoders.values(), *model.decoders.values()]
    for aux in model.auxiliary_networks().values():  # DMVAE's: a ModuleDict of the D_m
        nets += list(aux.values()) if isinstance(aux, torch.nn.ModuleDict) else [aux]
    for net in nets:
        net.compile(mode=mode)


def bench(config: RunConfig, steps: int, device: str = "cpu", compile_mode: str = "") -> None:
    """Print samples/s of the training step (`TrainStep`) and of its floor on one batch."""
    model, step = build_trainer(config, device=device)
    if compile_mode:
        compile_networks(model, compile_mode)
    bs = config.train.batch_size
    batch = synthetic_batch(model.modalities, bs, device)
    floor = floor_step(model, batch, step.optimizers["main"])  # pins MVAE's subsets first
    t_model = timed(lambda: step(batch, 1.0), steps, device)
    t_floor = timed(floor, steps, device)
    print(
        f"{describe(config)}: {bs / t_model:8.0f} samples/s, floor {bs / t_floor:8.0f}"
        f" samples/s, floor ratio {t_model / t_floor:.2f}"
    )
    if config.model == "dmvae":
        share = discriminator_share(model, step, batch, steps, t_model, device)
        print(f"       DMVAE discriminators' share of a step: {share:.0%}")


def discriminator_share(
    model: MultimodalVAE,
    step: TrainStep,
    batch: Batch,
    steps: int,
    t_step: float,
    device: str = "cpu",
) -> float:
    """Share of a DMVAE step taken by its discriminators' passes, timed on the same sizes with
    the step's own discriminator optimiser.

    Per modality: one training step of D_m on joint + permuted samples of the half of the batch
    whose subset A holds m, then a forward and an input-gradient backward for the TC estimate.
    """
    half = len(batch) // 2
    s = torch.randn(half, model.style_dim, device=device, requires_grad=True)
    c = torch.randn(half, model.shared_dim, device=device)
    opt = step.optimizers["discriminators"]

    def passes() -> None:
        for d in model.discriminators.values():
            logits = d(torch.cat([s.detach(), s.detach().flip(0)]), torch.cat([c, c]))
            opt.zero_grad(set_to_none=True)
            logits.mean().backward()
            opt.step()
            d.requires_grad_(False)
            d(s, c).mean().backward()
            d.requires_grad_(True)

    return timed(passes, steps, device) / t_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--K", type=int, default=30, help="MMVAE samples per expert")
    parser.add_argument("--models", nargs="+", default=["dmvae", "mvae", "mmvae"])
    parser.add_argument("--quick", action="store_true", help="paired MNIST M = 2 only")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--compile",
        default="",
        metavar="MODE",
        help="torch.compile the networks (default, reduce-overhead, max-autotune...)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {machine(args.device)}")
    if args.quick:
        cases = [("paired-mnist", {"data.modalities": 2})]
    else:
        cases = [("paired-mnist", {"data.modalities": 5}), ("mnist-svhn", {})]
    for experiment, overrides in cases:
        for name in args.models:
            extra = {"model.K": args.K} if name == "mmvae" else {}
            config = RunConfig.preset(experiment, name, {**overrides, **extra})
            bench(config, args.steps, args.device, args.compile)


if __name__ == "__main__":
    main()
