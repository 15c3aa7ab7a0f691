"""Which Laplace likelihood scale (`train.likelihood_scale`) suits image modalities of your own
data, trained through `TensorExperiment` with the default MLP networks (`default_networks`).

Two own data sets, each a `TensorExperiment` with default networks:

- shapes: the generated shape image and Bernoulli attribute vector of examples/shapes.py, scored
  with that example's classifiers;
- mnist-pairs: two MNIST images of the same digit (each image paired with a seeded random other
  image of its class, in train and in test), a subset of the real MNIST at $DMVAE_DATA, scored
  with an MNIST classifier trained here (`train_classifier("mnist", ..., epochs=2)`).

Every (data set, model, scale) trains with `dmvae.train` at one fixed, reduced budget (batch
256, `--steps` steps, seed 0); every other setting is the default of `TrainSettings` and of the
model's config (no preset exists for these experiments). Each run is scored as the learning
tests score one (`dmvae.evaluation.scores`): a linear probe of the shared latent given
all modalities (5,000 train / 2,000 test rows) and the cross coherence a->b, b->a on the 2,000
test rows (for two modalities the same as the leave-one-out mean). Each run's last logged
reconstruction and KL terms go to OUT/results.json with the scores (reconstruction terms are not
comparable across scales: the scale is part of the likelihood).

    DMVAE_DATA=DATA_ROOT python benchmarks/own_data_scale.py \
        [--models dmvae mvae] [--scales 0.03 0.1 0.3 0.75] [--steps 1000] \
        [--sets shapes mnist-pairs] [--out /tmp/own-data-scale]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import torch

import dmvae
from dmvae.classifiers import train_classifier
from dmvae.data import MultimodalData
from dmvae.data.sources import load_mnist
from dmvae.evaluation.coherence import summarise
from dmvae.evaluation.scores import probe_and_coherence
from dmvae.experiments import TensorExperiment

REPO = Path(__file__).resolve().parents[1]
BATCH = 256


def shapes() -> tuple[TensorExperiment, dict]:
    """examples/shapes.py's experiment (20,000 train / 4,000 test) and its classifiers."""
    spec = importlib.util.spec_from_file_location("shapes_example", REPO / "examples/shapes.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    exp = example.build()
    return exp, exp.classifiers(None, torch.device("cpu"))


def same_digit_pairs(images, labels, n: int, seed: int) -> MultimodalData:
    """`n` seeded rows of `images` ("a"), each with a random other image of its digit ("b")."""
    g = torch.Generator().manual_seed(seed)
    partner = torch.empty_like(labels)
    for digit in labels.unique():
        rows = (labels == digit).nonzero().squeeze(1)
        pick = torch.randint(len(rows) - 1, (len(rows),), generator=g)
        pick += pick >= torch.arange(len(rows))  # never the image itself
        partner[rows] = rows[pick]
    rows = torch.randperm(len(labels), generator=g)[:n].sort().values
    tensors = {"a": images[rows], "b": images[partner[rows]]}
    return MultimodalData.from_tensors(tensors, labels[rows])


def mnist_pairs(n_train: int = 20000, n_test: int = 2000) -> tuple[TensorExperiment, dict]:
    root = os.environ.get("DMVAE_DATA", str(REPO.parent / "shared" / "data"))
    train_x, train_y = load_mnist(root, train=True, download=False)
    test_x, test_y = load_mnist(root, train=False, download=False)
    exp = TensorExperiment(
        "mnist-pairs",
        same_digit_pairs(train_x, train_y, n_train, seed=0),
        same_digit_pairs(test_x, test_y, n_test, seed=1),
    )
    classifier = train_classifier("mnist", train_x, train_y, epochs=2, progress=False)
    return exp, {"a": classifier, "b": classifier}


def scores(model, config, classifiers) -> dict[str, float]:
    """The learning tests' measure (`dmvae.evaluation.scores`), with the cross mean and
    per-direction coherence."""
    train_set = config.build_data("train").random_subset(5000, 0)
    test = config.build_data("test").random_subset(2000, 0)
    probe, per_map = probe_and_coherence(
        model, train_set, test, classifiers, torch.Generator().manual_seed(0)
    )
    cross = summarise(per_map, tuple(model.modalities))["cross_mean"]
    return {"probe": probe, "coherence": cross, **per_map}


def last_terms(out: Path) -> dict[str, float]:
    """The run's last logged reconstruction and KL terms, per modality ("rec/image", ...)."""
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return {k: v for k, v in record.items() if k.startswith(("rec/", "kl/"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dmvae", "mvae"])
    parser.add_argument("--scales", nargs="+", type=float, default=[0.03, 0.1, 0.3, 0.75])
    parser.add_argument("--sets", nargs="+", default=["shapes", "mnist-pairs"])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/own-data-scale"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start, rows = time.perf_counter(), []
    sets = {name: {"shapes": shapes, "mnist-pairs": mnist_pairs}[name]() for name in args.sets}
    for exp, _ in sets.values():
        dmvae.register_experiment(exp)
    for model_name in args.models:
        for scale in args.scales:
            for name, (exp, classifiers) in sets.items():
                out = args.out / f"{name}-{model_name}-{scale}"
                config = dmvae.RunConfig.preset(
                    name,
                    model_name,
                    {
                        "train.out": str(out),
                        "train.batch_size": BATCH,
                        "train.epochs": -(-args.steps // exp.train.num_batches(BATCH)),
                        "train.max_steps": args.steps,
                        "train.likelihood_scale": scale,
                        "train.seed": 0,
                        "train.progress": False,
                        "train.device": "cpu",
                    },
                )
                t0 = time.perf_counter()
                model = dmvae.train(config, overwrite=True)
                seconds = time.perf_counter() - t0
                row = {"set": name, "model": model_name, "scale": scale, "seconds": seconds}
                row |= scores(model, config, classifiers) | last_terms(out)
                rows.append(row)
                print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{args.steps} steps of batch {BATCH}; total {time.perf_counter() - start:.0f} s\n")
    print("| data set | model | scale | probe % | cross coherence % | train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['set']} | {r['model']} | {r['scale']:g} | {100 * r['probe']:.1f} "
            f"| {100 * r['coherence']:.1f} | {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
