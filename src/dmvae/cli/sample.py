"""`dmvae sample RUN --num N --out DIR`: unconditional joint samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from dmvae.cli import options

SOURCES = ("prior", "gmm")  # `content_sampler`'s by name


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="draw unconditional samples of every modality",
        description=(
            "Draw joint samples of every modality of a trained run, the shared latent from the "
            "prior or from the ex-post GMM `dmvae evaluate` saved: DIR/<modality>.npy "
            "(decoded means), PNGs per sample for images and DIR/grid.png."
        ),
    )
    options.add_run(p)
    p.add_argument(
        "--num", type=int, required=True, metavar="N", help="the number of samples (required)"
    )
    p.add_argument(
        "--from",
        dest="source",
        choices=SOURCES,
        default=SOURCES[0],
        help="where the shared latent comes from: the model's prior, or the ex-post GMM of "
        "`dmvae evaluate RUN` (default: %(default)s)",
    )
    options.add_seed(p)
    options.add_device(p, "auto")
    p.add_argument("--out", required=True, metavar="DIR", help="the output folder (required)")
    options.add_overwrite(p, "files in a non-empty output folder")
    p.set_defaults(func=run)


def content_sampler(source: str, run: str, device):
    """The shared-latent sampler `--from` names: None (the model's prior) or the saved GMM."""
    from dmvae.inference import saved_gmm

    return saved_gmm(run, device) if source == "gmm" else None


def run(args: argparse.Namespace) -> int:
    import torch

    from dmvae import inference
    from dmvae.training import load_run

    out = Path(args.out)
    inference.check_out_dir(out, args.overwrite)
    model, config = load_run(args.run, args.device)
    device = next(model.parameters()).device
    content = content_sampler(args.source, args.run, device)
    signature = inference.run_signature(model, config)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    samples = model.sample(args.num, content, generator)
    written = inference.write_samples(out, samples, signature)
    print(f"{args.num} samples from the {args.source}; {len(written)} files written to {out}")
    return 0
