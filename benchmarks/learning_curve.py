"""How fast a training schedule makes a model coherent: after every epoch, leave-one-out
coherence on noisy test tuples and a linear probe of the shared latent.

Used to choose `dmvae reproduce --budget quick` (docs/results.md). Settings are `KEY=VALUE`
overrides of the paper's preset, as in `dmvae train --set`.

    python benchmarks/learning_curve.py dmvae 2 4 batch_size=256 lr=0.001 anneal_epochs=5
"""

from __future__ import annotations

import argparse
import time

import torch

from dmvae import experiments
from dmvae.cli.train import parse_value
from dmvae.data.sources import resolve_data_root
from dmvae.evaluation.classifiers import load_classifier
from dmvae.evaluation.coherence import conditional_coherence, summarise
from dmvae.evaluation.latent import embeddings, linear_probe_accuracy
from dmvae.objectives import kl_anneal_weight
from dmvae.training import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("modalities", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--test-size", type=int, default=2000)
    args = parser.parse_args()
    config = TrainConfig.from_preset("paired-mnist", args.model)
    config.data.modalities = args.modalities
    for item in args.settings:
        key, _, value = item.partition("=")
        config.set(key, parse_value(value))
    run = config.to_run_config()
    torch.manual_seed(config.seed)
    train = experiments.build_data(run, "train")
    test = experiments.build_data(run, "test").subset(torch.arange(args.test_size))
    probe_train = train.subset(torch.arange(5000))
    model = experiments.build_model(run)
    optimizer = torch.optim.Adam(model.main_parameters(), lr=config.lr, amsgrad=config.amsgrad)
    mnist = load_classifier("mnist", resolve_data_root(config.data.root))
    classifiers = {m: mnist for m in model.modalities}
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = train.num_batches(config.batch_size)
    anneal = round(config.anneal_epochs * steps_per_epoch)
    step, start = 0, time.perf_counter()
    print(f"{args.model} M={args.modalities} {args.settings}", flush=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch in train.batches(config.batch_size, generator=generator):
            loss = model.loss(batch, kl_anneal_weight(step, anneal))["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        model.eval()
        per_map = conditional_coherence(
            model, test, classifiers, all_subsets=False, generator=generator, progress=False
        )
        loo = summarise(per_map, model.modalities)["leave_one_out_mean"]
        names = tuple(model.modalities)
        probe = linear_probe_accuracy(
            *embeddings(model, probe_train, names), *embeddings(model, test, names)
        )
        print(
            f"epoch {epoch}: {time.perf_counter() - start:.0f} s, leave-one-out coherence "
            f"{100 * loo:.1f} %, linear probe {100 * probe:.1f} %",
            flush=True,
        )


if __name__ == "__main__":
    main()
