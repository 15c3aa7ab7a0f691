"""Training throughput of each model next to its compute floor.

The floor of a model is the time of the bare forward and backward passes its objective needs on
the same networks and batch, with a trivial loss: for DMVAE the encoders, the decoders and the
discriminators' passes (one training step of each D_m on joint + permuted samples, one pass
with input gradients for the TC estimate); for MVAE one decode per ELBO term; for MMVAE
M x M x K decodes. Both sides include the Adam step. A ratio near 1 means the objective adds
little beyond the networks' own compute.

    python benchmarks/bench_models.py [--steps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from dmvae import experiments
from dmvae.data.batch import make_batch
from dmvae.training import TrainConfig


def synthetic_batch(experiment: str, names: tuple[str, ...], n: int):
    shapes = {"mnist": (1, 28, 28), "svhn": (3, 32, 32)}
    inputs = {m: torch.rand(n, *shapes.get(m, (1, 28, 28))) for m in names}
    return make_batch(inputs, torch.randint(0, 10, (n,)))


def timed(fn, steps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def model_step(model, batch, optimizer):
    def step():
        terms = model.loss(batch, 1.0)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        return terms

    return step


def pin_subsets(model, count: int = 64) -> list[torch.Tensor]:
    """MVAE draws random ELBO subsets every step; pin one sequence of draws that the model
    replays, so that its floor can replay the same one and both do the same work."""
    draws = [model.training_subsets(torch.device("cpu")) for _ in range(count)]
    replay = itertools.cycle(draws)
    model.training_subsets = lambda device: next(replay).to(device)
    return draws


def floor_step(name: str, model, batch, optimizer, k: int):
    """Bare network passes with a trivial loss, sized as the objective needs them (for MVAE,
    after `pin_subsets`, on the same subsets the model replays)."""
    names = model.modalities
    n = len(batch)
    draws = itertools.cycle(pin_subsets(model)) if name == "mvae" else None

    def repeats(k_mod: int, subsets: torch.Tensor | None) -> int:
        """Times decoder k_mod runs on the batch: once per ELBO term that reconstructs it."""
        if name == "dmvae":
            return 1
        if name == "mvae":
            return int(subsets[:, k_mod].sum())
        return len(names) * k

    def step():
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


def bench(experiment: str, model_name: str, modalities: int, steps: int, k: int) -> None:
    cfg = TrainConfig.from_preset(experiment, model_name, **{"data.modalities": modalities})
    if model_name == "mmvae":
        cfg.model_config["K"] = k
    run = cfg.to_run_config()
    torch.manual_seed(0)
    model = experiments.build_model(run).train()
    batch = synthetic_batch(experiment, model.modalities, cfg.batch_size)
    optimizer = torch.optim.Adam(model.main_parameters(), lr=1e-4)
    floor = floor_step(model_name, model, batch, optimizer, k)  # pins MVAE's subsets first
    t_model = timed(model_step(model, batch, optimizer), steps)
    t_floor = timed(floor, steps)
    label = f"{model_name:6s} {experiment:12s} M={len(model.modalities)} batch={cfg.batch_size}"
    if model_name == "mmvae":
        label += f" K={k}"
    print(
        f"{label}: {cfg.batch_size / t_model:8.0f} samples/s, floor {cfg.batch_size / t_floor:8.0f}"
        f" samples/s, floor ratio {t_model / t_floor:.2f}"
    )
    if model_name == "dmvae":
        share = discriminator_share(model, batch, steps, t_model)
        print(f"       DMVAE discriminators' share of a step: {share:.0%}")


def discriminator_share(model, batch, steps: int, t_step: float) -> float:
    """Share of a DMVAE step taken by its discriminators' passes, timed on the same sizes.

    Per modality: one training step of D_m on joint + permuted samples of the half of the batch
    whose subset A holds m, then a forward and an input-gradient backward for the TC estimate.
    """
    half = len(batch) // 2
    s = torch.randn(half, model.style_dim, requires_grad=True)
    c = torch.randn(half, model.shared_dim)
    opt = model.auxiliary_optimizers()["discriminators"]

    def passes():
        for d in model.discriminators.values():
            logits = d(torch.cat([s.detach(), s.detach().flip(0)]), torch.cat([c, c]))
            opt.zero_grad(set_to_none=True)
            logits.mean().backward()
            opt.step()
            d.requires_grad_(False)
            d(s, c).mean().backward()
            d.requires_grad_(True)

    return timed(passes, steps) / t_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--K", type=int, default=30, help="MMVAE samples per expert")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU")
    for experiment, m in [("paired-mnist", 5), ("mnist-svhn", 2)]:
        for name in ("dmvae", "mvae", "mmvae"):
            bench(experiment, name, m, args.steps, args.K)


if __name__ == "__main__":
    main()
