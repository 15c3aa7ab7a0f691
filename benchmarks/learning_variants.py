"""What the learning test sees for a variant of the DMVAE preset: a short paired-MNIST run
(M = 2, 2 epochs at batch 256, as tests/test_learning.py), then a content probe, leave-one-out
coherence and the collapse figures of its log. Used to set the test's thresholds and to measure
the release's initialisation and reconstruction scale (docs/protocol.md, "Learning test").

    python benchmarks/learning_variants.py preset 0
    python benchmarks/learning_variants.py paper-text 0 lr=3e-3 model_config.beta=100
    python benchmarks/learning_variants.py pytorch-init 0 model_config.init=pytorch
"""

from __future__ import annotations

import argparse
import json

import torch

from dmvae import experiments
from dmvae.cli.train import parse_value
from dmvae.data.sources import load_mnist, resolve_data_root
from dmvae.evaluation import classifiers as clf
from dmvae.evaluation.coherence import conditional_coherence, summarise
from dmvae.evaluation.latent import embeddings, linear_probe_accuracy
from dmvae.training import TrainConfig, train

SHORT = {"epochs": 2, "batch_size": 256, "anneal_epochs": 1, "model_config.disc_width": 125}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag")
    parser.add_argument("seed", type=int)
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--out", default="runs/learning-variants")
    args = parser.parse_args()
    overrides = {k: parse_value(v) for k, _, v in (s.partition("=") for s in args.settings)}
    config = TrainConfig.from_preset("paired-mnist", "dmvae", **{**SHORT, **overrides})
    config.seed, config.progress = args.seed, False
    config.out = f"{args.out}/{args.tag}-seed{args.seed}"
    model = train(config)
    run = config.to_run_config()
    root = resolve_data_root(config.data.root)
    x, y = load_mnist(root, train=True)
    torch.manual_seed(0)
    classifier = clf.train_classifier("mnist", x[:20000], y[:20000], epochs=2, progress=False)
    train_set = experiments.build_data(run, "train").random_subset(5000, 0)
    test = experiments.build_data(run, "test").random_subset(2000, 0)
    names = tuple(model.modalities)
    probe = linear_probe_accuracy(
        *embeddings(model, train_set, names), *embeddings(model, test, names)
    )
    g = torch.Generator().manual_seed(0)
    per_map = conditional_coherence(
        model, test, {m: classifier for m in names}, all_subsets=False, generator=g, progress=False
    )
    log = [json.loads(line) for line in open(f"{config.out}/log.jsonl")]
    last = log[-1]
    print(
        json.dumps(
            {
                "tag": args.tag,
                "seed": args.seed,
                "probe": probe,
                "coherence": summarise(per_map, names)["leave_one_out_mean"],
                "style_kl": {m: last[f"kl/{m}"] for m in names},
                "content_effect": last["content_effect"],
                "infonce": [last["shared"], last["shared_chance"]],
                "warnings": [w for r in log for w in r.get("warnings", [])],
            }
        )
    )


if __name__ == "__main__":
    main()
