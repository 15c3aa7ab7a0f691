"""What the learning test sees for a variant of the DMVAE preset: a short paired-MNIST run
(M = 2, 2 epochs at batch 256, as tests/test_learning.py), then a content probe, leave-one-out
coherence and the collapse figures of its log. Used to set the test's thresholds and to measure
the release's initialisation and reconstruction scale (docs/protocol.md, "Learning test").

    python benchmarks/learning_variants.py preset 0
    python benchmarks/learning_variants.py paper-text 0 lr=3e-3 model.beta=100
    python benchmarks/learning_variants.py pytorch-init 0 model.init=pytorch
    python benchmarks/learning_variants.py smoke 0 max_steps=5  # a quick check that it runs
"""

from __future__ import annotations

import argparse
import json

import torch
from common import content_scores

from dmvae.config import RunConfig
from dmvae.data.sources import load_mnist, resolve_data_root
from dmvae.evaluation import classifiers as clf
from dmvae.settings import parse_assignments
from dmvae.training import train

SHORT = {"epochs": 2, "batch_size": 256, "anneal_epochs": 1, "model.disc_width": 125}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag")
    parser.add_argument("seed", type=int)
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--out", default="runs/learning-variants")
    args = parser.parse_args()
    out = f"{args.out}/{args.tag}-seed{args.seed}"
    run = {"seed": args.seed, "progress": False, "out": out}
    config = RunConfig.preset(
        "paired-mnist", "dmvae", {**SHORT, **parse_assignments(args.settings), **run}
    )
    model = train(config)
    x, y = load_mnist(resolve_data_root(config.data.root), train=True)
    torch.manual_seed(0)
    classifier = clf.train_classifier("mnist", x[:20000], y[:20000], epochs=2, progress=False)
    train_set = config.build_data("train").random_subset(5000, 0)
    test = config.build_data("test").random_subset(2000, 0)
    names = tuple(model.modalities)
    probe, coherence = content_scores(
        model, train_set, test, classifier, torch.Generator().manual_seed(0)
    )
    log = [json.loads(line) for line in open(f"{out}/log.jsonl")]
    last = log[-1]
    print(
        json.dumps(
            {
                "tag": args.tag,
                "seed": args.seed,
                "probe": probe,
                "coherence": coherence,
                "style_kl": {m: last[f"kl/{m}"] for m in names},
                "content_effect": last["content_effect"],
                "infonce": [last["shared"], last["shared_chance"]],
                "warnings": [w for r in log for w in r.get("warnings", [])],
            }
        )
    )


if __name__ == "__main__":
    main()
