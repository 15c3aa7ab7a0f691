"""`dmvae reproduce paired-mnist|mnist-svhn`: the paper's experiment grid and its report."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from dmvae.cli import options
from dmvae.models import MODELS
from dmvae.settings import parse_assignments


def grid_default(name: str) -> Any:
    """The default of `reproduce()`'s argument `name`, where the defaults live (lists as lists)."""
    from dmvae.reproduce import reproduce

    value = options.signature_default(reproduce, name)
    return list(value) if isinstance(value, tuple) else value


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.reproduce import BUDGETS, reproducible

    experiments = reproducible()
    p = sub.add_parser(
        "reproduce",
        help="train and evaluate a grid of runs and write a report beside the paper's numbers",
        description=(
            "Train and evaluate every cell (model x modalities x seed) that is not complete yet, "
            "then write DIR/report.md. Run it again with more --seeds to extend the grid."
        ),
    )
    p.add_argument("experiment", choices=experiments, help="the paper's experiment to reproduce")
    p.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        metavar="MODEL",
        default=grid_default("models"),
        help=f"the models of the grid, of {', '.join(MODELS)} "
        f"(default: {' '.join(grid_default('models'))})",
    )
    p.add_argument(
        "--modalities",
        nargs="+",
        type=int,
        metavar="M",
        default=grid_default("modalities"),
        help="paired MNIST: the numbers of modalities of the grid "
        f"(default: {' '.join(map(str, grid_default('modalities')))})",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="N",
        default=grid_default("seeds"),
        help="training seeds, one run per seed "
        f"(default: {' '.join(map(str, grid_default('seeds')))})",
    )
    p.add_argument(
        "--budget",
        choices=BUDGETS,
        default=grid_default("budget"),
        help="quick: a reduced schedule for a CPU (docs/results.md); paper: the paper's epochs "
        "(default: %(default)s)",
    )
    add_evaluation_options(p)
    add_run_options(p)
    p.set_defaults(func=run)


EVALUATION = ("fid_features", "num_samples", "max_test", "loglik_samples", "loglik_test")
"""The `EvalSettings` fields offered as flags of how every cell is evaluated."""


def add_evaluation_options(p: argparse.ArgumentParser) -> None:
    """How every cell is evaluated: the budget's settings unless given."""
    from dmvae.evaluation.settings import EvalSettings
    from dmvae.reproduce import BUDGETS
    from dmvae.reproduce.cells import evaluation_settings
    from dmvae.reproduce.layouts import LAYOUTS

    def per_budget(name: str) -> str:
        """The budgets' values of setting `name` ("quick: 500 (polymnist: 100), paper: all")."""
        default = getattr(EvalSettings(), name)
        parts = []
        for budget in BUDGETS:
            values = {x: evaluation_settings(x, budget).get(name, default) for x in LAYOUTS}
            common = max(set(values.values()), key=list(values.values()).count)
            others = [f"{x}: {v or 'all'}" for x, v in values.items() if v != common]
            parts.append(
                f"{budget}: {common or 'all'}" + (f" ({', '.join(others)})" * bool(others))
            )
        return ", ".join(parts)

    budgeted = {name: per_budget(name) for name in ("fid_features", "max_test", "loglik_test")}
    group = p.add_argument_group("evaluation of every cell")
    options.add_setting_flags(group, EvalSettings, EVALUATION, budgeted)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """How the cells run (at once, where, with which settings) and where the grid goes."""
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        default=grid_default("jobs"),
        help="run N cells at once, each in its own process: on one GPU (small nets leave it "
        "mostly idle), spread over the visible GPUs, or on a many-core CPU with the threads "
        "shared out; a failing cell is reported and the others go on (default: %(default)s)",
    )
    options.add_set(
        p,
        "override a setting in every cell, e.g. --set train.max_steps=100; repeatable "
        "(default: the budget's settings)",
    )
    options.add_data_root(p)
    options.add_download(p)
    options.add_device(p, grid_default("device"))
    options.add_no_progress(p)
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only rewrite DIR/report.md from the complete cells (default: train and evaluate "
        "the missing cells first)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the grid's folder: a run directory per cell, and report.md (required)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dmvae.reproduce import reproduce, write_report

    command = "dmvae " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.report_only:
        print(write_report(Path(args.out), args.experiment).read_text())
        return 0
    overrides: dict[str, Any] = {}
    if args.data_root:
        overrides["data.root"] = args.data_root
    if args.download:
        overrides["data.download"] = True
    overrides.update(parse_assignments(args.set))
    evaluation = options.setting_values(args, EVALUATION)
    from dmvae.data.sources import download_bars

    with download_bars(not args.no_progress):
        path = reproduce(
            args.experiment,
            args.out,
            models=args.models,
            modalities=args.modalities,
            seeds=args.seeds,
            budget=args.budget,
            overrides=overrides,
            evaluation=evaluation,
            device=args.device,
            progress=not args.no_progress,
            command=command,
            jobs=args.jobs,
        )
    print(path.read_text())
    print(f"report written to {path}")
    return 0
