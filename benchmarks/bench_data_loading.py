"""Batches from in-memory tensors (dmvae) against a torch DataLoader over the same tuples.

Paired noisy MNIST, M = 5, batch 1024, one epoch each, side by side in one process. The
DataLoader side is what a per-item data set does: index an item, add its noise, collate.

    python benchmarks/bench_data_loading.py [--data-root DATA_ROOT] [--workers 0]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from dmvae.data.datasets import load_paired_mnist
from dmvae.data.sources import resolve_data_root


class PerItemPairs(Dataset):
    """The same tuples as a map-style data set: one item, its noise, its label."""

    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        out = []
        for m in self.data.modalities:
            clean = self.data.images[m][self.data.index[m][i]].float() / 255
            out.append((clean + torch.randn_like(clean), clean))
        return out, self.data.labels[i]


def epoch_time(batches) -> tuple[float, int]:
    start, n = time.perf_counter(), 0
    for b in batches:
        n += len(b.labels) if hasattr(b, "labels") else len(b[1])
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root")
    parser.add_argument("--modalities", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    data = load_paired_mnist(resolve_data_root(args.data_root), "train", args.modalities)
    gen = torch.Generator().manual_seed(0)
    t_ours, n = epoch_time(data.batches(args.batch_size, generator=gen, drop_last=False))
    loader = DataLoader(
        PerItemPairs(data), batch_size=args.batch_size, shuffle=True, num_workers=args.workers
    )
    t_loader, n2 = epoch_time(loader)
    assert n == n2 == len(data)
    print(f"paired MNIST M={args.modalities}, batch {args.batch_size}, {n} tuples, CPU")
    print(f"dmvae MultimodalData : {n / t_ours:10.0f} samples/s ({t_ours:.2f} s/epoch)")
    print(
        f"torch DataLoader     : {n / t_loader:10.0f} samples/s ({t_loader:.2f} s/epoch, "
        f"{args.workers} workers)"
    )
    print(f"speed-up ratio (DataLoader time / dmvae time): {t_loader / t_ours:.1f}x")


if __name__ == "__main__":
    main()
