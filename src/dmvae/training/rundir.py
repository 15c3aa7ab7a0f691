"""A run directory is never lost or mixed up: one process writes it at a time (a lock file
that recognises a writer killed with -9), a finished run is not replaced without `overwrite`,
resuming checks that the settings which change training are the saved ones, and temporary
files left by a killed writer are removed when the next one starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from dmvae.config import RunConfig
from dmvae.errors import CheckpointError, ConfigError, DmvaeError
from dmvae.tracking import TRACKERS_FILE
from dmvae.training.state import CHECKPOINT

LOCK = ".lock"
RUN_FILES = ("config.json", CHECKPOINT, "log.jsonl", TRACKERS_FILE)
RUN_FOLDERS = ("tb", "eval")


class RunLocked(DmvaeError):
    """Another live process is writing the run directory."""


def check_start(out: Path, config: RunConfig, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is written, a start that would lose or mix up a run."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory; choose another --out")
    if resume:
        check_resume(out, config)
    elif not overwrite and not (out / CHECKPOINT).exists() and _holds_run(out):
        raise ConfigError(
            f"{out} holds a run that stopped before its first checkpoint, so there is nothing "
            "to resume; start it again with --overwrite, or choose another --out"
        )
    elif not overwrite and _holds_run(out):
        raise ConfigError(
            f"{out} already holds a run; continue it with --resume, replace it with "
            "--overwrite, or choose another --out"
        )


def _holds_run(out: Path) -> bool:
    return any((out / name).exists() for name in RUN_FILES)


def check_resume(out: Path, config: RunConfig) -> None:
    if not (out / CHECKPOINT).exists() and _holds_run(out):
        raise CheckpointError(
            f"--resume: the run in {out} stopped before its first checkpoint, so there is "
            "nothing to resume; start it again with --overwrite instead of --resume"
        )
    if not (out / CHECKPOINT).exists():
        raise CheckpointError(f"--resume: no checkpoint in {out}; start the run without --resume")
    if not (out / "config.json").exists():
        raise CheckpointError(f"--resume: {out} has a checkpoint but no config.json")
    try:
        saved = RunConfig.from_dict(json.loads((out / "config.json").read_text()))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{out}/config.json is not valid JSON ({err})") from err
    if saved.unrecorded:
        raise ConfigError(
            f"{out}/config.json predates config versions and does not say which "
            f"{', '.join(saved.unrecorded)} the run was trained with, so it cannot be resumed "
            "safely; if you know them, add them to its model section (runs trained with the "
            'defaults since the release objective: "reconstruction": "release", "init": '
            '"release"; before it: "per_sample", "pytorch"), or start a new run'
        )
    differences = identity_diff(saved, config)
    if differences:
        raise ConfigError(
            f"{out} was trained with other settings ({'; '.join(differences)}); resume it "
            "with the saved settings, or choose a new --out"
        )


def identity_diff(saved: RunConfig, now: RunConfig) -> list[str]:
    """Each setting that changes training and differs, as "key: saved X, now Y"."""
    a, b = _flat(saved.identity()), _flat(now.identity())
    return [
        f"{key}: saved {a.get(key)!r}, now {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and key in ("model", "data", "train"):
            out.update(_flat(value, f"{key}."))
        else:
            out[prefix + key] = value
    return out


def clear(out: Path) -> None:
    """Remove a run's files (for `overwrite`); other files in the folder are kept."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)


def remove_leftovers(out: Path) -> list[Path]:
    """Temporary files of writes a killed process never finished (only the lock holder calls
    this, so none of them is being written)."""
    found = [p for folder in (out, out / "eval") for p in folder.glob("*.tmp*") if p.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found


@contextmanager
def locked(out: Path, command: str = "train", name: str = LOCK) -> Iterator[None]:
    """Hold `out/.lock` while writing the run; a lock whose process is gone is taken over.
    `command` (train, evaluate) is recorded, so that a refused process is told what the
    holder does."""
    path = out / name
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.time(),
        "command": command,
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            _take_over_if_stale(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        break
    else:
        raise RunLocked(f"could not lock {path}; remove it if no process writes {out}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _take_over_if_stale(path: Path) -> None:
    holder = _holder(path)
    pid, host = holder.get("pid"), holder.get("host")
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        path.unlink(missing_ok=True)  # left by a process that was killed
        return
    doing = "evaluated" if holder.get("command") == "evaluate" else "written"
    error = RunLocked(
        f"{path.parent} is being {doing} by another process (pid {pid} on {host}, since "
        f"{_since(holder)}); wait for it to finish, or remove {path} if that process is gone"
    )
    error.holder = holder
    raise error


def _holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _since(holder: dict) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))


EVAL_LOCK = ".eval.lock"


@contextmanager
def evaluation_lock(run: Path, allow_running: bool = False) -> Iterator[dict | None]:
    """Hold the run while evaluating it: `.eval.lock` (one evaluation at a time), then its
    `.lock` (no training starts, resumes or overwrites it meanwhile). A run whose training
    holds `.lock` is refused, unless `allow_running`: then the training's lock record is
    yielded (None otherwise), for the results to say they were taken while it ran. A folder
    that holds no run is left to the loader to refuse."""
    if not (run / "config.json").is_file():
        yield None
        return
    with ExitStack() as held:
        try:
            held.enter_context(locked(run, "evaluate", EVAL_LOCK))
        except RunLocked as err:
            raise _refusal(run, err) from None
        try:
            held.enter_context(locked(run, "evaluate"))
            training = None
        except RunLocked as err:
            holder = getattr(err, "holder", None)
            if not allow_running or holder is None or holder.get("command", "train") != "train":
                raise _refusal(run, err) from None
            training = holder
        yield training


def _refusal(run: Path, err: RunLocked) -> RunLocked:
    """Why an evaluation cannot take the run: another evaluation, or its training, holds it."""
    holder = getattr(err, "holder", None)
    if holder is None:
        return err
    who = f"pid {holder.get('pid')} on {holder.get('host')}, since {_since(holder)}"
    if holder.get("command", "train") == "evaluate":
        return RunLocked(
            f"{run} is being evaluated by another process ({who}); wait for it to finish (its "
            f"results are merged into eval/metrics.json), or remove {run / EVAL_LOCK} and "
            f"{run / LOCK} if that process is gone"
        )
    from dmvae.checkpoints import read_metadata

    path = run / CHECKPOINT
    step = read_metadata(path)["info"]["step"] if path.exists() else None
    now = f"its current checkpoint (step {step})" if step is not None else "its checkpoints"
    return RunLocked(
        f"{run} is still training ({who}): wait for it to finish, or evaluate {now} with "
        "--allow-running (the results are marked as taken while training ran), or remove "
        f"{run / LOCK} if that process is gone"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Ctrl-C during training: the first one is noted and the loop stops after the current
    step (so that the checkpoint it writes is consistent); a second one stops at once.

    SIGINT's disposition on entry is restored on exit. Where SIGINT is ignored on entry (a job
    started in the background of a non-interactive shell, `nohup ... &` in a script; Python
    itself then keeps it ignored), it stays ignored: whoever started the process asked that a
    Ctrl-C meant for the foreground leave it alone, and the run goes on to its end. It is also
    left alone where the handler is not Python's (`signal.getsignal` returns None: it could not
    be restored)."""
    previous = signal.getsignal(signal.SIGINT)
    ignored = previous is signal.SIG_IGN or previous is None
    if threading.current_thread() is not threading.main_thread() or ignored:
        yield lambda: False
        return
    flag = {"set": False}

    def handler(signum, frame) -> None:
        if flag["set"]:
            raise KeyboardInterrupt
        flag["set"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: flag["set"]
    finally:
        signal.signal(signal.SIGINT, previous)
