"""How fast a training schedule makes a model coherent: after every epoch, leave-one-out
coherence on noisy test tuples and a linear probe of the shared latent.

Used to choose `dmvae reproduce --budget quick` (docs/results.md). Settings are `KEY=VALUE`
overrides of the paper's preset, as in `dmvae train --set`; every step is `TrainStep`, the
trainer's own step.

    python benchmarks/learning_curve.py dmvae 2 4 batch_size=256 lr=0.001 anneal_epochs=5
    python benchmarks/learning_curve.py dmvae 2 1 --train-size 2048 --test-size 500  # smoke test
"""

from __future__ import annotations

import argparse
import time

import torch
from common import build_trainer

from dmvae.classifiers import load_classifier
from dmvae.config import RunConfig
from dmvae.data.sources import resolve_data_root
from dmvae.evaluation.scores import content_scores
from dmvae.objectives import kl_anneal_weight
from dmvae.settings import parse_assignments

PROBE_TRAIN = 5000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("modalities", type=int)
    parser.add_argument("epochs", type=int)
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--train-size", type=int, help="train on the first N tuples only")
    args = parser.parse_args()
    overrides = {"data.modalities": args.modalities, **parse_assignments(args.settings)}
    config = RunConfig.preset("paired-mnist", args.model, overrides)
    t = config.train
    train = config.build_data("train")
    if args.train_size is not None:
        train = train.subset(torch.arange(args.train_size))
    test = config.build_data("test").subset(torch.arange(args.test_size))
    probe_train = train.subset(torch.arange(min(PROBE_TRAIN, len(train))))
    model, train_step = build_trainer(config, t.seed)
    mnist = load_classifier("mnist", resolve_data_root(config.data.root))
    generator = torch.Generator().manual_seed(t.seed)
    anneal = round(t.anneal_epochs * train.num_batches(t.batch_size, t.drop_last))
    step, start = 0, time.perf_counter()
    print(f"{args.model} M={args.modalities} {args.settings}", flush=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch in train.batches(t.batch_size, generator=generator, drop_last=t.drop_last):
            train_step(batch, kl_anneal_weight(step, anneal))
            step += 1
        train_step.check()  # a NaN stops the curve here, naming its step
        model.eval()
        probe, loo = content_scores(model, probe_train, test, mnist, generator)
        print(
            f"epoch {epoch}: {time.perf_counter() - start:.0f} s, leave-one-out coherence "
            f"{100 * loo:.1f} %, linear probe {100 * probe:.1f} %",
            flush=True,
        )


if __name__ == "__main__":
    main()
