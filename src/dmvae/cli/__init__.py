"""Command-line entry point: `dmvae <command> ...`.

Each sub-command lives in its own module with an `add_parser(subparsers)` that registers it
and sets `func`; `main` only dispatches, and turns `DmvaeError` into one clear error line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dmvae import __version__
from dmvae.errors import DmvaeError

COMMANDS = ("data", "train", "classifiers", "evaluate", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmvae", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dmvae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"dmvae.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"dmvae.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DmvaeError as err:
        print(f"dmvae: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dmvae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
