"""`dmvae reproduce paired-mnist|mnist-svhn`: the paper's experiment grid and its report."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from dmvae.cli import options
from dmvae.models import MODELS
from dmvae.settings import parse_assignments


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.evaluation.settings import FID_FEATURES, EvalSettings
    from dmvae.reproduce import BUDGETS, reproduce, reproducible
    from dmvae.reproduce.cells import evaluation_settings

    def default(name: str) -> Any:  # the defaults live in reproduce()'s signature
        value = options.signature_default(reproduce, name)
        return list(value) if isinstance(value, tuple) else value

    experiments = reproducible()
    fid = ", ".join(
        f"{evaluation_settings(experiments[0], b)['fid_features']} for {b}" for b in BUDGETS
    )
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
        default=default("models"),
        help=f"the models of the grid, of {', '.join(MODELS)} "
        f"(default: {' '.join(default('models'))})",
    )
    p.add_argument(
        "--modalities",
        nargs="+",
        type=int,
        metavar="M",
        default=default("modalities"),
        help="paired MNIST: the numbers of modalities of the grid "
        f"(default: {' '.join(map(str, default('modalities')))})",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        metavar="N",
        default=default("seeds"),
        help=f"training seeds, one run per seed (default: {' '.join(map(str, default('seeds')))})",
    )
    p.add_argument(
        "--budget",
        choices=BUDGETS,
        default=default("budget"),
        help="quick: a reduced schedule for a CPU (docs/results.md); paper: the paper's epochs "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--fid",
        choices=FID_FEATURES,
        help=f"features for FIDs (default: {fid})",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        metavar="N",
        help=f"generated images per FID (default: {EvalSettings().num_samples})",
    )
    p.add_argument(
        "--max-test",
        type=int,
        metavar="N",
        help="evaluate on a seeded subset of N test samples (default: the whole test set)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        default=default("jobs"),
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
    options.add_device(p, default("device"))
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
    p.set_defaults(func=run)


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
    evaluation: dict[str, Any] = {}
    for key, value in (
        ("fid_features", args.fid),
        ("num_samples", args.num_samples),
        ("max_test", args.max_test),
    ):
        if value is not None:
            evaluation[key] = value
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
