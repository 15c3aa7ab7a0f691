"""Time each step of the paper's evaluation of one trained run next to one training epoch of it,
the digit classifier in the two memory layouts, our GMM fit next to scikit-learn's on the same
embeddings, and the Inception feature extractor against what its FLOPs allow on this machine.

The epoch time is read from the run's log (its measured samples/s). The FLOP bound divides the
machine's measured float32 matrix-product rate by TF-Inception's FLOPs per 299x299 image as
torch's FlopCounterMode counts them (2 per multiply-add: 11.4 GFLOP, i.e. 5.7 G multiply-adds).

    python benchmarks/bench_evaluation.py RUN_DIR [--inception-images 64] [--no-sklearn]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch


def epoch_seconds(run_dir: Path) -> float:
    """Seconds of one training epoch of the run at the best samples/s its log reports."""
    from dmvae.config import RunConfig

    config = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    rates = [json.loads(line)["samples_per_s"] for line in (run_dir / "log.jsonl").open()]
    return len(config.build_data("train", "cpu")) / max(rates)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def inception_rate(n: int) -> tuple[float, float] | None:
    """Images/s of the batched extractor on 28x28 inputs, and its GFLOP per image."""
    from torch.utils.flop_counter import FlopCounterMode

    from dmvae.errors import DmvaeError
    from dmvae.evaluation.fid import InceptionFeatures

    try:
        extractor = InceptionFeatures("cpu")
    except DmvaeError as err:
        print(f"Inception: skipped ({err})")
        return None
    images = torch.rand(n, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        extractor(images[:1])
    extractor(images[: extractor.batch_size])
    start = time.perf_counter()
    extractor(images)
    return n / (time.perf_counter() - start), counter.get_total_flops() / 1e9


@torch.inference_mode()
def classifier_side_by_side(n: int = 20480) -> None:
    """The digit classifier as evaluation runs it (channels-last) and in the default layout."""
    from dmvae.classifiers import MnistClassifier, _for_inference, predict

    layouts = {"channels-last": _for_inference(MnistClassifier())}
    layouts["contiguous"] = MnistClassifier().eval()
    layouts["contiguous"].features = layouts["contiguous"].features_net
    images = torch.rand(n, 1, 28, 28)
    rates = {}
    for name, net in layouts.items():
        predict(net, images[:2048])
        start = time.perf_counter()
        predict(net, images)
        rates[name] = n / (time.perf_counter() - start)
    print(
        f"MNIST classifier: channels-last {rates['channels-last']:.0f} images/s, contiguous "
        f"{rates['contiguous']:.0f} images/s; speed ratio "
        f"{rates['channels-last'] / rates['contiguous']:.2f}x"
    )


def gmm_side_by_side(run_dir: Path) -> None:
    """Our batched EM and scikit-learn's GaussianMixture on the run's training embeddings."""
    from sklearn.mixture import GaussianMixture

    from dmvae.evaluation.density import em, training_embeddings
    from dmvae.training import load_run

    model, config = load_run(run_dir, "cpu")
    emb = training_embeddings(model, config.build_data("train", "cpu"))
    start = time.perf_counter()
    ours = em(emb, 100)
    ours_s = time.perf_counter() - start
    print(f"GMM on {tuple(emb.shape)} embeddings: ours {ours_s:.1f} s ({ours.n_iter} iterations)")
    for dtype in ("float32", "float64"):
        start = time.perf_counter()
        ref = GaussianMixture(100, covariance_type="full", random_state=0)
        ref.fit(emb.numpy().astype(dtype))
        ref_s = time.perf_counter() - start
        print(
            f"  scikit-learn {dtype}: {ref_s:.1f} s ({ref.n_iter_} iterations); "
            f"speed ratio {ref_s / ours_s:.2f}x"
        )


def main() -> None:
    from dmvae.evaluation.suite import evaluate_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--inception-images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-sklearn", action="store_true", help="skip the GMM side by side")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:  # evaluate a copy: the run's eval/ stays as it is
        copy = Path(tmp) / "run"
        shutil.copytree(args.run_dir, copy, ignore=shutil.ignore_patterns("eval", "tb"))
        metrics = evaluate_run(
            copy,
            metrics=["coherence", "latent", "gmm", "fid"],
            fid_features="classifier",
            progress=False,
        )
    epoch = epoch_seconds(args.run_dir)
    print(f"run {args.run_dir} ({metrics['model']}, M={len(metrics['modalities'])}), CPU")
    print(f"one training epoch: {epoch:.1f} s")
    for step, seconds in metrics["seconds"].items():
        print(f"  {step:10s} {seconds:7.1f} s  ({seconds / epoch:.2f} of an epoch)")
    classifier_side_by_side()
    if not args.no_sklearn:
        gmm_side_by_side(args.run_dir)
    measured = inception_rate(args.inception_images)
    if measured is not None:
        rate, gflop = measured
        peak = matmul_gflops()
        bound = peak / gflop
        print(
            f"Inception features: {rate:.1f} images/s at {gflop:.2f} GFLOP per image; float32 "
            f"matmul {peak:.0f} GFLOP/s allows {bound:.1f} images/s; bound ratio {bound / rate:.2f}"
        )


if __name__ == "__main__":
    main()
