"""`dmvae generate RUN --given m0=PATH --to m1 --out DIR`: impute missing modalities."""

from __future__ import annotations

import argparse
from pathlib import Path

from dmvae.cli import options


def add_parser(sub: argparse._SubParsersAction) -> None:
    from dmvae.models.base import MultimodalVAE

    p = sub.add_parser(
        "generate",
        help="generate missing modalities from given ones (conditional generation)",
        description=(
            "Generate the target modalities of a trained run from inputs of the given ones: "
            "DIR/<target>.npy (decoded means, K rows per input), PNGs per sample for image "
            "targets and DIR/grid.png (each input's images, then its samples). docs/use.md "
            "lists what --latent and --style mean for each model."
        ),
    )
    options.add_run(p)
    options.add_given(p)
    p.add_argument(
        "--to",
        nargs="+",
        required=True,
        metavar="MODALITY",
        help="the modalities to generate, none of them given (required)",
    )
    p.add_argument(
        "--per-input",
        type=int,
        metavar="K",
        default=options.signature_default(MultimodalVAE.impute, "per_input"),
        help="samples per input (default: %(default)s)",
    )
    p.add_argument(
        "--latent",
        choices=("mean", "sample"),
        help="the shared latent: the posterior's mean or a sample of it (default: the model's "
        "usual one, sample for MVAE/MoPoE/MMVAE/MMVAE+, mean for DMVAE)",
    )
    p.add_argument(
        "--style",
        choices=("prior", "mean"),
        help="DMVAE and MMVAE+: each target's style drawn from its prior, or the prior's mean "
        "(default: prior)",
    )
    options.add_seed(p)
    options.add_device(p, "auto")
    p.add_argument("--out", required=True, metavar="DIR", help="the output folder (required)")
    options.add_overwrite(p, "files in a non-empty output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dmvae import inference
    from dmvae.training import load_run

    out = Path(args.out)
    given_paths = options.parse_given(args.given)
    inference.check_out_dir(out, args.overwrite)
    model, config = load_run(args.run, args.device)
    signature = inference.run_signature(model, config)
    given = inference.read_inputs(given_paths, signature, args.resize)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    outputs = model.impute(given, args.to, args.per_input, args.latent, args.style, generator)
    written = inference.write_generated(out, given, outputs, args.per_input, signature)
    rows = {t: len(x) for t, x in outputs.items()}
    print(f"generated {rows} rows; {len(written)} files written to {out}")
    return 0
