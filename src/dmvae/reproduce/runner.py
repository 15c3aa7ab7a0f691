"""Running a grid: train and evaluate each incomplete cell in its own run directory, and rewrite
the report after each one, so that an interrupted grid resumes and reports what is done."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dmvae.errors import ConfigError
from dmvae.files import atomic_path
from dmvae.reproduce.cells import Cell, cell_config, evaluation_settings, grid
from dmvae.reproduce.report import write_report
from dmvae.reproduce.summary import MODELS_ORDER


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
    """Train (or resume) and evaluate one cell unless its metrics already exist."""
    from dmvae.devices import resolve_device
    from dmvae.evaluation.suite import evaluate_run
    from dmvae.training import CHECKPOINT, same_run, train

    config = cell_config(cell, budget, out, overrides)
    config = config.override({"train.device": device, "train.progress": progress})
    run_dir = cell.run_dir(out)
    if not same_run(run_dir, config):
        raise ConfigError(
            f"{run_dir} holds a run with other settings (another budget or --set?); use a new "
            "--out or the settings it was started with"
        )
    metrics_path = run_dir / "eval" / "metrics.json"
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    start = time.perf_counter()
    started = (run_dir / CHECKPOINT).exists()  # a cell without a checkpoint starts afresh
    train(config, resume=started, overwrite=not started)
    train_seconds = time.perf_counter() - start
    settings = {**evaluation_settings(cell.experiment, budget), **(evaluation or {})}
    metrics = evaluate_run(
        run_dir, device=resolve_device(device), progress=progress, seed=cell.seed, **settings
    )
    metrics["train_seconds"] = round(train_seconds, 1)
    metrics["budget"] = budget
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
) -> Path:
    """Run every incomplete cell of the grid, then write the report; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells = grid(experiment, list(models), list(modalities), list(seeds))
    if command:
        with open(out / "commands.txt", "a") as f:
            f.write(command + "\n")
    for n, cell in enumerate(cells, 1):
        print(
            f"[{n}/{len(cells)}] {cell.model} M={cell.modalities} seed={cell.seed} "
            f"-> {cell.run_dir(out)}",
            flush=True,
        )
        run_cell(
            cell,
            budget,
            out,
            overrides=overrides,
            device=device,
            evaluation=evaluation,
            progress=progress,
        )
        write_report(out, experiment, command)
    return write_report(out, experiment, command)
