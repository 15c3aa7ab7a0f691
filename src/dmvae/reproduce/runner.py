"""Running a grid: train and evaluate each incomplete cell in its own run directory, and rewrite
the report after each one, so that an interrupted grid resumes and reports what is done."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dmvae.devices import resolve_device
from dmvae.errors import ConfigError, DmvaeError
from dmvae.evaluation import metrics_file
from dmvae.evaluation.settings import EvalSettings
from dmvae.evaluation.suite import evaluate_run
from dmvae.files import atomic_path
from dmvae.reproduce.cells import Cell, cell_config, evaluation_settings, grid
from dmvae.reproduce.report import write_report
from dmvae.reproduce.summary import MODELS_ORDER
from dmvae.training import CHECKPOINT, same_run, train

log = logging.getLogger(__name__)


def run_cell(
    cell: Cell,
    budget: str,
    out: Path,
    *,
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
    evaluation: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict:
    """Train (or resume) and evaluate one cell; a trained cell computes only the metrics its
    eval/metrics.json lacks or holds from other settings (`metrics_file.outdated`)."""
    config = cell_config(cell, budget, out, overrides)
    config = config.override({"train.device": device, "train.progress": progress})
    run_dir = cell.run_dir(out)
    if not same_run(run_dir, config):
        raise ConfigError(
            f"{run_dir} holds a run with other settings (another budget or --set?); use a new "
            "--out or the settings it was started with"
        )
    metrics_path = run_dir / "eval" / "metrics.json"
    wanted = {**evaluation_settings(cell.experiment, budget), **(evaluation or {})}
    settings = EvalSettings(**wanted, seed=cell.seed, progress=progress)
    old = metrics_file.read_metrics(metrics_path)
    pending = metrics_file.outdated(old, settings)
    if old and not pending:
        return old
    extra = {}
    if not old:  # trained and scored together; a scored cell was trained before
        start = time.perf_counter()
        started = (run_dir / CHECKPOINT).exists()  # a cell without a checkpoint starts afresh
        train(config, resume=started, overwrite=not started)
        extra = {"train_seconds": round(time.perf_counter() - start, 1), "budget": budget}
    now = dataclasses.replace(settings, metrics=pending)
    metrics = evaluate_run(run_dir, settings=now, device=resolve_device(device))
    if extra:
        metrics.update(extra)
        with atomic_path(metrics_path) as tmp:  # what evaluate_run wrote, and these two keys
            tmp.write_text(json.dumps(metrics, indent=2))
    return metrics


def reproduce(
    experiment: str,
    out: str | Path,
    *,
    models: Iterable[str] = MODELS_ORDER,
    modalities: Iterable[int] = (2, 3, 4, 5),
    seeds: Iterable[int] = (0,),
    budget: str = "quick",
    overrides: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    device: str = "auto",
    progress: bool = True,
    command: str | None = None,
    jobs: int = 1,
) -> Path:
    """Run every incomplete cell of the grid, then write the report; returns its path.

    `jobs` > 1 runs that many cells at once, each in its own process (see `run_parallel`).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = grid(experiment, list(models), list(modalities), list(seeds))
    if command:
        with open(out / "commands.txt", "a") as f:
            f.write(command + "\n")
    settings = dict(overrides=overrides, device=device, evaluation=evaluation)
    if jobs > 1:
        failed = run_parallel(cells, budget, out, jobs, settings, progress, command)
        path = write_report(out, experiment, command)
        if failed:
            raise CellsFailed(failed, path)
        return path
    for n, cell in enumerate(cells, 1):
        log.info(
            "[%d/%d] %s M=%s seed=%s -> %s",
            n,
            len(cells),
            cell.model,
            cell.modalities,
            cell.seed,
            cell.run_dir(out),
        )
        run_cell(cell, budget, out, progress=progress, **settings)
        write_report(out, experiment, command)
    return write_report(out, experiment, command)


class CellsFailed(DmvaeError):
    """Some cells of a parallel grid failed; the others finished and are in the report."""

    def __init__(self, failed: dict[Cell, str], report: Path) -> None:
        self.failed = failed
        lines = [f"{c.model} M={c.modalities} seed={c.seed}: {why}" for c, why in failed.items()]
        super().__init__(
            f"{len(failed)} cell(s) failed (the others are in {report}): " + "; ".join(lines)
        )


def cell_device(device: str, index: int) -> str:
    """The device of the `index`-th parallel cell: CUDA cells go round-robin over the visible
    GPUs; a CPU (or a single GPU) is shared by all."""
    import torch

    wants_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    count = torch.cuda.device_count() if wants_cuda else 0
    return f"cuda:{index % count}" if count > 1 else device


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_parallel(
    cells: list[Cell],
    budget: str,
    out: Path,
    jobs: int,
    settings: dict[str, Any],
    progress: bool,
    command: str | None,
) -> dict[Cell, str]:
    """Run the cells `jobs` at a time in spawned processes (each with its share of the CPU
    threads, CUDA cells spread over the GPUs), with one progress bar over the cells and the
    report rewritten as each one finishes. A failing cell is reported and the others go on;
    returns the failures by cell."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    threads = max(1, (os.cpu_count() or 1) // jobs)
    failed: dict[Cell, str] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = {
            pool.submit(
                run_cell,
                cell,
                budget,
                out,
                progress=False,
                **{**settings, "device": cell_device(settings["device"], i)},
            ): cell
            for i, cell in enumerate(cells)
        }
        bar = tqdm(total=len(cells), desc=f"cells ({jobs} at once)", disable=not progress)
        for future in as_completed(futures):
            cell = futures[future]
            error = future.exception()
            name = f"{cell.model} M={cell.modalities} seed={cell.seed}"
            if error is None:
                bar.write(f"done: {name} -> {cell.run_dir(out)}")
                write_report(out, cell.experiment, command)
            else:
                failed[cell] = f"{type(error).__name__}: {error}"
                bar.write(f"FAILED: {name} ({failed[cell]}); the other cells go on")
            bar.update()
        bar.close()
    return failed
