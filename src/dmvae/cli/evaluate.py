"""`dmvae evaluate RUN_DIR`: the paper's evaluation of a trained run."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.evaluation.suite import FID_FEATURES, METRICS, STYLES, EvalSettings

    default = EvalSettings()  # the defaults live in EvalSettings alone
    p = sub.add_parser("evaluate", help="evaluate a trained run (coherence, latent, GMM, FID)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--metrics", nargs="+", choices=METRICS, help="default: all")
    p.add_argument(
        "--num-samples",
        type=int,
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
    p.add_argument("--max-test", type=int, help="evaluate on a seeded subset of the test set")
    p.add_argument(
        "--num-real", type=int, help="FID reference images per data set (default: whole test set)"
    )
    p.add_argument(
        "--style",
        choices=STYLES,
        help="style of conditional samples (default: prior for DMVAE, posterior for baselines)",
    )
    p.add_argument("--with-style", action="store_true", help="DMVAE latent probe: content+style")
    p.add_argument(
        "--batch-size", type=int, default=default.batch_size, help="default: %(default)s"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root")
    p.add_argument("--seed", type=int, default=default.seed, help="default: %(default)s")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from dmvae.devices import resolve_device
    from dmvae.evaluation.suite import EvalSettings, evaluate_run

    settings = EvalSettings(
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
    evaluate_run(args.run_dir, settings=settings, device=resolve_device(args.device))
    out = Path(args.run_dir) / "eval"
    print((out / "metrics.md").read_text())
    print(f"metrics, grids and the GMM written to {out}")
    return 0
