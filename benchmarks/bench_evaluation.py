"""Time each step of the paper's evaluation of one trained run next to one training epoch of it,
and the Inception feature extractor against what its FLOPs allow on this machine.

The epoch time is read from the run's log (its measured samples/s); the FLOP bound divides the
machine's measured float32 matrix-product rate by TF-Inception's ~5.7 GFLOP per 299x299 image.

    python benchmarks/bench_evaluation.py RUN_DIR [--inception-images 64]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

INCEPTION_GFLOP = 5.7


def epoch_seconds(run_dir: Path) -> float:
    from dmvae import experiments

    config = json.loads((run_dir / "config.json").read_text())
    rates = [json.loads(line)["samples_per_s"] for line in (run_dir / "log.jsonl").open()]
    n = len(experiments.build_data(config, "train", "cpu"))
    return n / max(rates)


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def inception_rate(n: int) -> float | None:
    from dmvae.errors import DmvaeError
    from dmvae.evaluation.fid import InceptionFeatures

    try:
        extractor = InceptionFeatures("cpu")
    except DmvaeError as err:
        print(f"Inception: skipped ({err})")
        return None
    images = torch.rand(n, 1, 28, 28)
    extractor(images[: extractor.batch_size])
    start = time.perf_counter()
    extractor(images)
    return n / (time.perf_counter() - start)


def main() -> None:
    from dmvae.evaluation.suite import evaluate_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--inception-images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
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
    rate = inception_rate(args.inception_images)
    if rate is not None:
        peak = matmul_gflops()
        bound = peak / INCEPTION_GFLOP
        print(
            f"Inception features: {rate:.1f} images/s; float32 matmul {peak:.0f} GFLOP/s allows "
            f"{bound:.1f} images/s; bound / measured = {bound / rate:.2f}"
        )


if __name__ == "__main__":
    main()
