"""The logger interface the trainer and the evaluation report to, and the registry of loggers by
name (`train.loggers`, `dmvae train --log-to`).

A logger is opened for one stage of a run (`LogSite`: training, or an evaluation of it) and
receives the run's config when training starts or resumes, mean loss terms every
`train.log_every` steps (already on the host: loggers never cause a device synchronisation),
notes such as collapse warnings, and is closed at the end. Loggers that keep a run of their
own elsewhere (MLflow, Weights & Biases) record its id in RUN_DIR/trackers.json, so that a
resumed training and the run's evaluations continue that same tracker run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from dmvae.errors import ConfigError, DmvaeError
from dmvae.files import atomic_path

log = logging.getLogger(__name__)

TRACKERS_FILE = "trackers.json"


@dataclass(frozen=True)
class LogSite:
    """Where a logger reports: the run directory, the stage ("train", or "evaluate": the
    final metrics of an evaluation, at the checkpoint's step) and whether it continues records
    of an earlier start (a resumed training; an evaluation always continues)."""

    run_dir: Path
    stage: Literal["train", "evaluate"]
    resume: bool


class Logger(Protocol):
    """What the trainer and the evaluation call. Subclass it to inherit the no-op methods and
    write only `log_metrics`."""

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        """Record `values` (name -> number) at training step `step`."""
        ...

    def log_text(self, step: int, key: str, text: str) -> None:
        """Record a note (a collapse warning, under key "warnings") at `step`; it is given
        before the `log_metrics` of the same step."""

    def log_config(self, config: Mapping[str, Any]) -> None:
        """Record the run's config.json, each time a training starts or resumes (a resumed
        run may have changed the settings that `config.RESUMABLE` names)."""

    def close(self) -> None:
        """Flush and release what the logger holds."""


LoggerFactory = Callable[[LogSite], Logger]


@dataclass(frozen=True)
class LoggerEntry:
    factory: LoggerFactory
    check: Callable[[], Any] | None = None


LOGGERS: dict[str, LoggerEntry] = {}


def register_logger(
    name: str, factory: LoggerFactory, check: Callable[[], Any] | None = None
) -> None:
    """Make `name` a valid `train.loggers` entry. `factory(site)` opens the logger; `check()`,
    if given, runs before a run writes anything and raises a `ConfigError` saying what to
    install when the logger cannot work here (a missing optional package)."""
    LOGGERS[name] = LoggerEntry(factory, check)


def check_loggers(names: Iterable[str]) -> None:
    """Refuse unknown logger names and loggers whose packages are missing, before training."""
    names = list(names)
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise ConfigError(
            f"unknown logger {', '.join(map(repr, unknown))} in train.loggers / --log-to: "
            f"choose from {', '.join(sorted(LOGGERS))} (or register yours with "
            "dmvae.tracking.register_logger)"
        )
    for name in names:
        if LOGGERS[name].check is not None:
            LOGGERS[name].check()


def open_loggers(names: Iterable[str], site: LogSite) -> Loggers:
    """The named loggers, opened for `site`, as one logger (`check_loggers` first). A logger
    that cannot start (a tracker without its login) is a one-line ConfigError."""
    names = list(dict.fromkeys(names))
    check_loggers(names)
    opened = Loggers({})
    for name in names:
        try:
            opened.loggers[name] = LOGGERS[name].factory(site)
        except BaseException as err:
            opened.close()
            if isinstance(err, DmvaeError) or not isinstance(err, Exception):
                raise
            first = (str(err).strip().splitlines() or [""])[0]
            raise ConfigError(
                f"cannot start the {name} logger ({type(err).__name__}: {first}); fix its "
                f"set-up (docs/tracking.md) or drop {name} from train.loggers / --log-to"
            ) from err
    return opened


class Loggers(Logger):
    """Several loggers as one. A logger that fails while the run goes on (a tracking server
    that went away) is dropped with a warning: the run and the other loggers go on."""

    def __init__(self, loggers: dict[str, Logger]) -> None:
        self.loggers = loggers

    def _each(self, call: Callable[[Logger], Any], what: str) -> None:
        for name, logger in list(self.loggers.items()):
            try:
                call(logger)
            except Exception as err:  # a tracker must not stop training
                del self.loggers[name]
                log.warning(
                    "logger %r failed to %s (%s: %s); it records nothing more in this run",
                    name,
                    what,
                    type(err).__name__,
                    err,
                )

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        self._each(lambda lg: lg.log_metrics(step, values), f"log step {step}")

    def log_text(self, step: int, key: str, text: str) -> None:
        self._each(lambda lg: lg.log_text(step, key, text), f"log a note at step {step}")

    def log_config(self, config: Mapping[str, Any]) -> None:
        self._each(lambda lg: lg.log_config(config), "log the config")

    def close(self) -> None:
        self._each(lambda lg: lg.close(), "close")
        self.loggers = {}


def recall(run_dir: Path, name: str) -> dict[str, Any] | None:
    """What logger `name` recorded in RUN_DIR/trackers.json (its own run's id), if anything."""
    path = run_dir / TRACKERS_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        log.warning("%s is unreadable; the trackers start new runs", path)
        return None
    return record if isinstance(record, dict) else None


def recorded_run(site: LogSite, name: str, title: str) -> dict[str, Any] | None:
    """The tracker run that logger `name` recorded for this run directory, which a resume or an
    evaluation continues; an evaluation without one is refused, since it never starts a tracker
    run of its own (`title`: how the tracker is called)."""
    known = recall(site.run_dir, name) if site.resume else None
    if site.stage == "evaluate" and not known:
        raise ConfigError(
            f"{site.run_dir} has no {title} run in {TRACKERS_FILE} (trained without {name}, "
            "or elsewhere); its results are in eval/metrics.json"
        )
    return known


def remember(run_dir: Path, name: str, record: Mapping[str, Any]) -> None:
    """Record logger `name`'s run id (and where it lives) in RUN_DIR/trackers.json."""
    path = run_dir / TRACKERS_FILE
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    known[name] = dict(record)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(known, indent=2))


def flat_numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a nested mapping (metrics.json) by "a/b/c" name; other values are left
    out, since trackers record numbers."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_numbers(value, f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out
