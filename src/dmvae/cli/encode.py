"""`dmvae encode RUN --given m0=PATH --out FILE`: the shared representation per input row."""

from __future__ import annotations

import argparse
from pathlib import Path

from dmvae.cli import options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="write the shared representation (and styles) of inputs",
        description=(
            "Encode inputs of the given modalities with a trained run: the shared posterior's "
            "mean per input row, [N, D], as FILE.npy; with --with-style also each given "
            "modality's style mean, in FILE.npz (arrays shared, style/<modality>) or FILE.pt "
            "(a dict of tensors with those keys)."
        ),
    )
    options.add_run(p)
    options.add_given(p)
    p.add_argument(
        "--with-style",
        action="store_true",
        help="DMVAE and MMVAE+: add each given modality's style (default: the shared part only)",
    )
    options.add_device(p, "auto")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="the output file, .npy (shared part only), .npz or .pt (required)",
    )
    options.add_overwrite(p, "an existing output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dmvae import inference
    from dmvae.training import load_run

    out = Path(args.out)
    given_paths = options.parse_given(args.given)
    inference.check_encoding_file(out, args.with_style, args.overwrite)
    model, config = load_run(args.run, args.device)
    signature = inference.run_signature(model, config)
    given = inference.read_inputs(given_paths, signature, args.resize)
    representation = model.represent(given, args.with_style)
    inference.write_representation(out, representation)
    shapes = {k: list(v.shape) for k, v in representation.items()}
    print(f"wrote {shapes} to {out}")
    return 0
