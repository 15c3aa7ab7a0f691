"""`dmvae evaluate RUN_DIR`: the paper's evaluation of a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from dmvae.cli import options


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.evaluation.registry import METRICS

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
        f"(default: {' '.join(n for n, m in METRICS.items() if m.by_default)})",
    )
    add_scoring_options(p)
    add_data_options(p)
    options.add_no_progress(p)
    p.set_defaults(func=run)


SCORING = ("num_samples", "fid_features", "max_test", "num_real", "style", "with_style")
SCORING += ("batch_size", "loglik_samples", "loglik_test")
"""The `EvalSettings` fields offered as flags of how the metrics are computed."""


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    """How the metrics are computed: sample counts, distances, styles, batches."""
    from dmvae.evaluation.settings import EvalSettings

    options.add_setting_flags(p, EvalSettings, SCORING)


def add_data_options(p: argparse.ArgumentParser) -> None:
    """Where the run computes and finds its data and experiment, its seed, and a running run."""
    from dmvae.evaluation.settings import EvalSettings

    options.add_device(p, "auto")
    options.add_data_root(p, "the folder the run was trained on; the folder experiment's data.path")
    options.add_setting_flags(p, EvalSettings, ("experiment", "seed"))
    options.add_set(
        p,
        "override where the data are and how they are scored, e.g. --set "
        '\'data.classifiers={"image": "cnn"}\' or --set data.path=DIR; repeatable '
        "(default: the run's config.json)",
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
        **options.setting_values(args, (*SCORING, "experiment", "seed")),
        data=data,
        metrics=args.metrics,
        data_root=args.data_root,
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
