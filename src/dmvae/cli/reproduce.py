"""`dmvae reproduce paired-mnist|mnist-svhn`: the paper's experiment grid and its report."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from dmvae.models import MODELS
from dmvae.settings import add_set_option, parse_assignments


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.reproduce import BUDGETS, reproducible

    p = sub.add_parser(
        "reproduce",
        help="train and evaluate a grid of runs and write a report beside the paper's numbers",
        description=(
            "Train and evaluate every cell (model x modalities x seed) that is not complete yet, "
            "then write DIR/report.md. Run it again with more --seeds to extend the grid."
        ),
    )
    p.add_argument("experiment", choices=reproducible())
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument(
        "--modalities", nargs="+", type=int, default=[2, 3, 4, 5], help="paired MNIST: M values"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument(
        "--budget",
        choices=BUDGETS,
        default="quick",
        help="quick: a reduced schedule for a CPU (docs/results.md); paper: the paper's epochs",
    )
    p.add_argument(
        "--fid",
        choices=("inception", "classifier", "none"),
        help="features for FIDs (default: classifier for quick, inception for paper)",
    )
    p.add_argument("--num-samples", type=int, help="generated images per FID (default 10000)")
    p.add_argument("--max-test", type=int, help="evaluate on a seeded subset of the test set")
    add_set_option(
        p,
        "override a setting in every cell, e.g. --set train.max_steps=100",
    )
    p.add_argument("--data-root", help="data directory (default: $DMVAE_DATA or the user cache)")
    p.add_argument("--download", action="store_true", help="download missing data sets")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--report-only", action="store_true", help="rewrite the report from complete cells"
    )
    p.add_argument("--out", required=True, metavar="DIR")
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
    if args.fid:
        evaluation["fid_features"] = args.fid
    if args.num_samples:
        evaluation["num_samples"] = args.num_samples
    if args.max_test:
        evaluation["max_test"] = args.max_test
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
    )
    print(path.read_text())
    print(f"report written to {path}")
    return 0
