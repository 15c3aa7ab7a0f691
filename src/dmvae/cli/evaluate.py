"""`dmvae evaluate RUN_DIR`: the paper's evaluation of a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dmvae.cli import options

if TYPE_CHECKING:
    from dmvae.evaluation.settings import EvalSettings


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.evaluation.registry import METRICS
    from dmvae.evaluation.settings import EvalSettings

    default = EvalSettings()  # the defaults live in EvalSettings alone
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run (coherence, latent, GMM, FID)",
        description=(
            "Evaluate a trained run as the paper does: conditional and joint coherence, linear "
            "latent classification, the ex-post GMM, unconditional, conditional and "
            "class-specific FIDs and sample grids, written to RUN_DIR/eval/ (metrics.json, "
            "metrics.md and PNGs). The digit classifiers are trained on first use."
        ),
    )
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="the run directory `dmvae train` wrote, or a shared run hf://user/name[@revision]",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="for a shared run (hf://...), required: the local folder to copy it into and "
        "evaluate there (a local run is evaluated into RUN_DIR/eval)",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        choices=METRICS,
        metavar="METRIC",
        help=f"the metrics to compute, of {', '.join(METRICS)}; they run in this order "
        "(default: all)",
    )
    add_scoring_options(p, default)
    add_data_options(p, default)
    options.add_no_progress(p)
    p.set_defaults(func=run)


def add_scoring_options(p: argparse.ArgumentParser, default: EvalSettings) -> None:
    """How the metrics are computed: sample counts, distances, styles, batches."""
    from dmvae.evaluation.settings import FID_FEATURES, STYLES

    p.add_argument(
        "--num-samples",
        type=int,
        metavar="N",
        default=default.num_samples,
        help="generated images per FID (default: %(default)s)",
    )
    p.add_argument(
        "--fid",
        choices=FID_FEATURES,
        default=default.fid_features,
        help="Inception FID (needs dmvae[fid]), the quick classifier-feature FD, or none "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-test",
        type=int,
        metavar="N",
        default=default.max_test,
        help="evaluate on a seeded subset of N test samples (default: the whole test set)",
    )
    p.add_argument(
        "--num-real",
        type=int,
        metavar="N",
        default=default.num_real,
        help="FID reference images per data set (default: the whole test set)",
    )
    p.add_argument(
        "--style",
        choices=STYLES,
        default=default.style,
        help="style of conditional samples (default: prior for DMVAE, posterior for baselines)",
    )
    p.add_argument(
        "--with-style",
        action="store_true",
        help="DMVAE's latent probe classifies content and style together (default: content alone)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        default=default.batch_size,
        help="test samples per batch when scoring coherence (default: %(default)s)",
    )


def add_data_options(p: argparse.ArgumentParser, default: EvalSettings) -> None:
    """Where the run computes and finds its data and experiment, its seed, and a running run."""
    options.add_device(p, "auto")
    options.add_data_root(p, "the folder the run was trained on; the folder experiment's data.path")
    p.add_argument(
        "--experiment",
        metavar="NAME",
        help="the experiment object of a run trained from Python on an experiment registered "
        "there, as 'package.module:attribute' or 'file.py:attribute' (default: the name in "
        "config.json)",
    )
    options.add_set(
        p,
        "override where the data are and how they are scored, e.g. --set "
        '\'data.classifiers={"image": "cnn"}\' or --set data.path=DIR; repeatable '
        "(default: the run's config.json)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=default.seed,
        help="the evaluation's random seed: samples, test subset, probes and GMM "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--allow-running",
        action="store_true",
        help="evaluate the current checkpoint of a run whose training is still running; "
        "metrics.json and metrics.md mark the results as taken while training ran (default: "
        "refuse such a run until its training stops)",
    )


def run(args: argparse.Namespace) -> int:
    from dmvae.devices import resolve_device
    from dmvae.errors import ConfigError
    from dmvae.evaluation.settings import EvalSettings
    from dmvae.evaluation.suite import evaluate_run
    from dmvae.settings import parse_assignments

    data = {}
    for key, value in parse_assignments(args.set).items():
        section, _, name = key.partition(".")
        if section != "data" or not name:
            raise ConfigError(
                f"--set {key}: evaluation takes data settings only (data.path, data.root, "
                "data.classifiers); training settings are fixed by the run"
            )
        data[name] = value
    settings = EvalSettings(
        experiment=args.experiment,
        data=data,
        metrics=args.metrics,
        num_samples=args.num_samples,
        fid_features=args.fid,
        batch_size=args.batch_size,
        data_root=args.data_root,
        max_test=args.max_test,
        num_real=args.num_real,
        style=args.style,
        with_style=args.with_style,
        seed=args.seed,
        progress=not args.no_progress,
    )
    run_dir = local_copy(args, data)  # after the settings: a bad one fails before a download
    from dmvae.data.sources import download_bars

    with download_bars(settings.progress):
        evaluate_run(
            run_dir,
            settings=settings,
            device=resolve_device(args.device),
            allow_running=args.allow_running,
        )
    out = run_dir / "eval"
    print((out / "metrics.md").read_text())
    print(f"metrics, grids and the GMM written to {out}")
    return 0


def local_copy(args: argparse.Namespace, data: dict) -> Path:
    """The folder to evaluate: RUN_DIR itself, or a shared run copied into --out (its folder in
    the Hugging Face cache is read-only, and the results belong with the run)."""
    from dmvae.errors import ConfigError
    from dmvae.remote import is_hub_ref

    if not is_hub_ref(args.run_dir):
        if args.out:
            raise ConfigError(
                f"--out is for shared runs (hf://user/name); {args.run_dir} is evaluated into "
                f"{Path(args.run_dir) / 'eval'}: drop --out"
            )
        return Path(args.run_dir)
    if not args.out:
        raise ConfigError(
            f"evaluating {args.run_dir} writes its results beside the run: pass --out DIR, the "
            "local folder to copy it into and evaluate there"
        )
    from dmvae.hub import pull_run

    return pull_run(args.run_dir, args.out, args.experiment, data)
