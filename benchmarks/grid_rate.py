"""How long the paired-MNIST `paper` grid trains with every cell at once, from a rate window.

All cells of the grid (3 models x M = 2..5, one seed, the paper's budget) start together as
separate processes, as `dmvae reproduce --jobs 12` runs them, and train for `--window` seconds;
each cell's rate is read from its log between the first record after `--warmup` seconds and
its last one. The table gives each cell's steps/s and samples/s and the time its whole budget
takes at that rate. The grid's estimate is the slowest cell's time: an upper bound, since a
cell that finishes early frees the device for the others. Evaluation is not timed.

    python benchmarks/grid_rate.py [--window 180] [--warmup 30] [--device cuda] [--seed 0]
        [--models dmvae mvae mmvae] [--modalities 2 3 4 5] [--out /tmp/grid-rate] [--data-root D]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import torch

from dmvae.data.batch import MultimodalData
from dmvae.reproduce.cells import Cell, cell_config, grid
from dmvae.reproduce.runner import cell_device
from dmvae.training import train


def overrides(device: str, data_root: str | None) -> dict:
    """Train only: records every 20 steps, no checkpoint before the window ends."""
    root = {"data.root": data_root} if data_root else {}
    return {
        **root,
        "train.device": device,
        "train.progress": False,
        "train.log_every": 20,
        "train.checkpoint_every": 10**9,
        "train.checkpoint_minutes": 0,
    }


def _train(cell: Cell, out: Path, settings: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    with contextlib.suppress(KeyboardInterrupt):  # the end of the window
        train(cell_config(cell, "paper", out, settings), overwrite=True)


def rate(log: Path, batch_size: int, warmup: float) -> tuple[float, int]:
    """Steps/s between the first record after `warmup` seconds and the last record, and the
    last step; each record's elapsed time is step x batch / its samples/s."""
    records = [json.loads(line) for line in log.read_text().splitlines()]
    elapsed = [r["step"] * batch_size / r["samples_per_s"] for r in records]
    first = next((i for i, t in enumerate(elapsed) if t >= warmup), None)
    if first is None or first == len(records) - 1:
        raise RuntimeError(f"{log}: too few records after {warmup} s; lengthen --window")
    steps = records[-1]["step"] - records[first]["step"]
    return steps / (elapsed[-1] - elapsed[first]), records[-1]["step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=180.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["dmvae", "mvae", "mmvae"])
    parser.add_argument("--modalities", nargs="+", type=int, default=[2, 3, 4, 5])
    parser.add_argument("--out", default="/tmp/grid-rate")
    parser.add_argument("--data-root", help="data folder (default: $DMVAE_DATA or the cache)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    cells = grid("paired-mnist", args.models, args.modalities, [args.seed])
    threads = max(1, (multiprocessing.cpu_count()) // len(cells))
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(
            target=_train,
            args=(cell, out, overrides(cell_device(args.device, i), args.data_root), threads),
        )
        for i, cell in enumerate(cells)
    ]
    for p in procs:
        p.start()
    time.sleep(args.window)
    for p in procs:  # Ctrl-C: each run stops after its current step
        if p.is_alive():
            os.kill(p.pid, signal.SIGINT)
    for p in procs:
        p.join()
    failed = [cell for cell, p in zip(cells, procs, strict=True) if p.exitcode != 0]
    if failed:
        raise SystemExit(f"cells failed (their errors are above): {failed}")
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{len(cells)} cells at once on {device}, {args.window:.0f} s window")
    print("| model | M | steps/s | samples/s | paper budget (steps) | train time at that rate |")
    print("|---|---|---|---|---|---|")
    slowest = 0.0
    data: dict[int, MultimodalData] = {}
    for cell in cells:
        config = cell_config(cell, "paper", out, overrides("cpu", args.data_root))
        t = config.train
        if cell.modalities not in data:
            data[cell.modalities] = config.build_data("train", "cpu")
        total = t.epochs * data[cell.modalities].num_batches(t.batch_size, t.drop_last)
        steps_per_s, _ = rate(cell.run_dir(out) / "log.jsonl", t.batch_size, args.warmup)
        seconds = total / steps_per_s
        slowest = max(slowest, seconds)
        print(
            f"| {cell.model} | {cell.modalities} | {steps_per_s:.1f} | "
            f"{steps_per_s * t.batch_size:,.0f} | {total:,} | {seconds / 60:.1f} min |"
        )
    print(f"grid (slowest cell, an upper bound): {slowest / 60:.1f} min of training")


if __name__ == "__main__":
    main()
