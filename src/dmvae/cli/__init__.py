"""Command-line entry point: `dmvae <command> ...`.

Each sub-command lives in its own module with an `add_parser(subparsers)` that registers it
and sets `func`; `main` only dispatches, and turns errors into one line on stderr: a usage error
(argparse's, or a `ConfigError`: a bad setting) exits with status 2, any other `DmvaeError` or a
file system error (`OSError`: a path that is a file, a read-only folder, a full disk) with 1.
`dmvae --debug COMMAND ...` shows the traceback instead.

The library reports through `logging.getLogger("dmvae")`; while a command runs, `console_log`
prints those messages as the command line always did: information on stdout, warnings on
stderr as "warning: ...", above any progress bar.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dmvae import __version__
from dmvae.errors import ConfigError, DmvaeError

COMMANDS = (
    "data",
    "train",
    "classifiers",
    "evaluate",
    "reproduce",
    "generate",
    "sample",
    "encode",
    "hub",
)
USAGE_ERROR = 2  # argparse's exit status for a bad command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmvae",
        description="Train, evaluate and reproduce multimodal VAEs (DMVAE, MVAE, MMVAE).",
        epilog="`dmvae COMMAND --help` describes a command and its options, with their defaults.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"dmvae {__version__}",
        help="print dmvae's version and exit",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error show the full traceback, not one line (default: one line); give it "
        "before the command",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="the command to run:")
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
        return USAGE_ERROR
    try:
        with console_log():
            return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        saved = f" ({err}; continue with --resume)" if str(err) else ""
        print(f"dmvae: interrupted{saved}", file=sys.stderr)
        return 130
    except (DmvaeError, OSError) as err:
        if args.debug:
            raise
        print(f"dmvae: error: {error_line(err, args.command)}", file=sys.stderr)
        return USAGE_ERROR if isinstance(err, ConfigError) else 1


class ConsoleHandler(logging.Handler):
    """The library's messages as a command prints them: INFO on stdout, WARNING and above on
    stderr prefixed by the level, written through tqdm so that a progress bar stays whole.
    The streams are looked up at each message (a caller may have replaced sys.stdout)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                tqdm.write(f"{record.levelname.lower()}: {text}", file=sys.stderr)
            else:
                tqdm.write(text, file=sys.stdout)
        except Exception:  # logging's rule: a failed message never stops the program
            self.handleError(record)


@contextmanager
def console_log() -> Iterator[None]:
    """Print the "dmvae" logger's messages while a command runs, from INFO up unless a program
    calling `main` set the logger's level; its level and handlers are restored afterwards."""
    logger = logging.getLogger("dmvae")
    handler, level = ConsoleHandler(), logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def error_line(err: DmvaeError | OSError, command: str) -> str:
    """One line for an error: a `DmvaeError`'s message (and, for an error in the user's code,
    how to see its traceback); for a file system error the path and the problem ("runs/x: File
    exists"), and how to see where it happened."""
    hint = f" (run `dmvae --debug {command} ...` for the traceback)"
    if isinstance(err, DmvaeError):
        return str(err) + (hint if err.traceback_hint else "")
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    where = "".join(f"{p}: " for p in paths)
    problem = err.strerror or str(err) or type(err).__name__
    return f"{where}{problem}{hint}"


if __name__ == "__main__":
    sys.exit(main())
