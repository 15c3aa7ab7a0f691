"""Atomic writes: a failed write leaves the old file and no temporary file behind."""

from __future__ import annotations

import pytest

from dmvae.files import atomic_path


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "file.npz"
    with atomic_path(target, suffix=".tmp.npz") as tmp:
        assert tmp.name.endswith(".tmp.npz") and tmp.parent == target.parent
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_path(target, fsync=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.npz"]


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_files_written_atomically_get_a_new_files_usual_mode(tmp_path, mask, mode):
    """Caches in a shared data folder must be readable by the others: safetensors writes 0600,
    torch.save and numpy 0666 & ~umask; every file written here gets the latter."""
    import os

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from dmvae.files import umask

    previous = os.umask(mask)
    try:
        assert umask() == mask
        writers = {
            "cache.safetensors": lambda tmp: save_file({"x": torch.zeros(2)}, str(tmp)),
            "pairing.pt": lambda tmp: torch.save({"x": 1}, tmp),
            "stats.npz": lambda tmp: np.savez(tmp, x=np.zeros(2)),
        }
        for name, write in writers.items():
            with atomic_path(
                tmp_path / name, suffix=".tmp.npz" if name.endswith("z") else ".tmp"
            ) as tmp:
                write(tmp)
            assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    finally:
        os.umask(previous)
