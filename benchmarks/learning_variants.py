"""What the learning tests see for a variant of a model's preset: a short paired-MNIST run
(for DMVAE M = 2, 2 epochs at batch 256, as tests/test_learning.py; other models take their
budget from the settings), then a content probe, leave-one-out coherence and the last logged
figures. Used to set the tests' thresholds and to measure the release's initialisation and
reconstruction scale (docs/protocol.md, "Learning test") and learning on incomplete data.

    python benchmarks/learning_variants.py preset 0
    python benchmarks/learning_variants.py paper-text 0 lr=3e-3 model.beta=100
    python benchmarks/learning_variants.py pytorch-init 0 model.init=pytorch
    python benchmarks/learning_variants.py smoke 0 max_steps=5  # a quick check that it runs
    python benchmarks/learning_variants.py missing 0 data.modalities=3 data.missing_rate=0.5
    python benchmarks/learning_variants.py missing 0 --model mopoe data.modalities=3 \
        data.missing_rate=0.5 max_steps=600 batch_size=64 anneal_epochs=0.3
"""

from __future__ import annotations

import argparse
import json

import torch

from dmvae import classifiers as clf
from dmvae.config import RunConfig
from dmvae.data.sources import load_mnist, resolve_data_root
from dmvae.evaluation.scores import content_scores
from dmvae.settings import parse_assignments
from dmvae.training import train

SHORT = {"epochs": 2, "batch_size": 256, "anneal_epochs": 1, "model.disc_width": 125}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag")
    parser.add_argument("seed", type=int)
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--model", default="dmvae")
    parser.add_argument("--out", default="runs/learning-variants")
    args = parser.parse_intermixed_args()
    out = f"{args.out}/{args.model}-{args.tag}-seed{args.seed}"
    run = {"seed": args.seed, "progress": False, "out": out}
    short = SHORT if args.model == "dmvae" else {}
    config = RunConfig.preset(
        "paired-mnist", args.model, {**short, **parse_assignments(args.settings), **run}
    )
    model = train(config)
    x, y = load_mnist(resolve_data_root(config.data.root), train=True)
    torch.manual_seed(0)
    classifier = clf.train_classifier("mnist", x[:20000], y[:20000], epochs=2, progress=False)
    train_set = config.build_data("train").complete_rows().random_subset(5000, 0)
    test = config.build_data("test").random_subset(2000, 0)
    probe, coherence = content_scores(
        model, train_set, test, classifier, torch.Generator().manual_seed(0)
    )
    log = [json.loads(line) for line in open(f"{out}/log.jsonl")]
    last = log[-1]
    print(
        json.dumps(
            {
                "tag": args.tag,
                "model": args.model,
                "seed": args.seed,
                "probe": probe,
                "coherence": coherence,
                "last": {k: v for k, v in last.items() if k.startswith(("kl", "shared"))},
                "content_effect": last.get("content_effect"),
                "warnings": [w for r in log for w in r.get("warnings", [])],
            }
        )
    )


if __name__ == "__main__":
    main()
