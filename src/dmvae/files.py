"""Atomic file writes: every file the library writes (checkpoints, caches, statistics) appears
whole or not at all, so an interrupted run never leaves a half-written file behind; and with
the permissions any new file gets (0666 less the umask), so that caches in a shared data folder
serve everyone, whatever mode the writing library chose for its file; and `writable`, whether
a folder may take a cache at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", fsync: bool = False) -> Iterator[Path]:
    """A temporary sibling of `path` to write to; it replaces `path` when the block succeeds.

    `suffix` lets writers that insist on an extension (np.savez: ".npz") keep theirs; `fsync`
    flushes the file to disk before the rename (checkpoints). The file gets a new file's usual
    mode (safetensors writes 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), since
    setting it to read it back races with other threads creating files."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def writable(directory: Path) -> bool:
    """Whether caches (pairing indices, feature statistics, classifiers) may go into
    `directory`. A folder whose nearest existing ancestor has no write permission bits is
    read-only by intent, even for root (who could write)."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.stat().st_mode & 0o222:
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
        return True
    except OSError:
        return False
