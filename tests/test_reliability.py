"""Nothing is lost: a finished run is not replaced, one process writes a run at a time, a moved
run resumes, Ctrl-C and kill -9 resume to the uninterrupted weights bit for bit, temporary files
of a killed writer are removed, and every message names files that exist."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import state_copy, write_bars_folder

from dmvae.checkpoints import read_checkpoint
from dmvae.cli import main
from dmvae.config import RunConfig
from dmvae.errors import ConfigError, TrainingDiverged
from dmvae.models.mvae import MVAE
from dmvae.training import CHECKPOINT, train
from dmvae.training.rundir import LOCK, RunLocked


@pytest.fixture
def data(tmp_path):
    return write_bars_folder(tmp_path / "data")


def config(data, out, **train) -> RunConfig:
    settings = {"data.path": str(data), "out": str(out), "batch_size": 32, "epochs": 2}
    settings.update({"progress": False, "checkpoint_every": 3, "log_every": 1})
    return RunConfig.preset("folder", "mvae", {**settings, **train})


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_finished_run_is_never_replaced_without_overwrite(tmp_path, data):
    cfg = config(data, tmp_path / "run", max_steps=4)
    train(cfg)
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    (tmp_path / "run" / "eval").mkdir()
    with pytest.raises(ConfigError, match="already holds a run.*--resume.*--overwrite"):
        train(cfg.override({"lr": 0.5}))
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before
    train(cfg.override({"lr": 0.5}), overwrite=True)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() != before
    assert not (tmp_path / "run" / "eval").exists()  # results of the replaced run are gone
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["lr"] == 0.5


def test_a_moved_or_respelled_run_resumes_and_a_mismatch_names_the_keys(tmp_path, data):
    full = state_copy(train(config(data, tmp_path / "full", max_steps=12)))
    train(config(data, tmp_path / "a", max_steps=6))
    shutil.move(tmp_path / "a", tmp_path / "b")
    spelled = str(tmp_path / "b") + "/"
    resumed = train(config(data, spelled, max_steps=12), resume=True)
    assert_same(full, state_copy(resumed))
    with pytest.raises(ConfigError, match=r"train\.lr: saved 0\.001, now 0\.5.*saved settings"):
        train(config(data, tmp_path / "b", max_steps=14, lr=0.5), resume=True)


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(tmp_path, data):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    with pytest.raises(RunLocked, match=f"being written by another process \\(pid {os.getpid()}"):
        train(config(data, out, max_steps=2))
    assert not (out / "config.json").exists()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / LOCK).write_text(json.dumps({"pid": gone.pid, "host": os.uname().nodename}))
    leftover = out / f"{CHECKPOINT}.{gone.pid}.tmp"
    leftover.write_bytes(b"x" * 100)
    train(config(data, out, max_steps=2))
    assert not (out / LOCK).exists() and not leftover.exists()


@pytest.fixture
def sigint(request):
    """SIGINT's disposition set to `request.param` for the test and restored afterwards, so
    that the Ctrl-C tests see what a terminal gives, however pytest was started (a shell
    without job control starts background jobs with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, request.param)
    yield request.param
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("sigint", [signal.default_int_handler], indirect=True)
def test_ctrl_c_saves_after_the_current_step_and_resumes_exactly(
    tmp_path, data, monkeypatch, sigint
):
    full = state_copy(train(config(data, tmp_path / "full", max_steps=10)))
    real_loss, calls = MVAE.loss, {"n": 0}

    def interrupted_loss(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # Ctrl-C arrives in the middle of step 5
            signal.raise_signal(signal.SIGINT)
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(MVAE, "loss", interrupted_loss)
    with pytest.raises(KeyboardInterrupt, match="checkpoint at step 5"):
        train(config(data, tmp_path / "run", max_steps=10, checkpoint_every=1000))
    monkeypatch.setattr(MVAE, "loss", real_loss)
    assert read_checkpoint(tmp_path / "run" / CHECKPOINT)[1]["info"]["step"] == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = train(config(data, tmp_path / "run", max_steps=10), resume=True)
    assert_same(full, state_copy(resumed))


@pytest.mark.parametrize("sigint", [signal.SIG_IGN], indirect=True)
def test_an_ignored_sigint_stays_ignored_and_the_run_finishes(tmp_path, data, monkeypatch, sigint):
    real_loss, calls = MVAE.loss, {"n": 0}

    def interrupted_loss(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] in (3, 4):  # two Ctrl-C, which would stop a run in a terminal at once
            signal.raise_signal(signal.SIGINT)
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(MVAE, "loss", interrupted_loss)
    train(config(data, tmp_path / "run", max_steps=6))
    assert json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])["step"] == 6
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_checkpoints_follow_the_clock_too(tmp_path, data, monkeypatch):
    real_loss, calls = MVAE.loss, {"n": 0}

    def dying_loss(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("power cut")
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(MVAE, "loss", dying_loss)
    cfg = config(data, tmp_path / "run", max_steps=10, checkpoint_every=1000)
    with pytest.raises(RuntimeError, match="power cut"):
        train(cfg.override({"checkpoint_minutes": 1e-9}))  # due after every step
    assert read_checkpoint(tmp_path / "run" / CHECKPOINT)[1]["info"]["step"] == 3


def test_a_nan_before_the_first_checkpoint_names_no_checkpoint(tmp_path, data, monkeypatch):
    real_loss = MVAE.loss

    def nan_loss(self, *args, **kwargs):
        terms = real_loss(self, *args, **kwargs)
        terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(MVAE, "loss", nan_loss)
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet") as err:
        train(config(data, tmp_path / "run", max_steps=5))
    assert "kept in" not in str(err.value)


def test_a_run_stopped_by_a_nan_before_its_first_checkpoint_is_started_again_not_resumed(
    tmp_path, data, monkeypatch, capsys
):
    """No circle between "continue with --resume" and "start without --resume": both the plain
    command and --resume point to --overwrite, which starts the run again."""
    real_loss = MVAE.loss

    def nan_loss(self, *args, **kwargs):
        terms = real_loss(self, *args, **kwargs)
        terms["loss"] = terms["loss"] * float("nan")
        return terms

    out = tmp_path / "run"
    argv = _train_command(data, out, 5)[3:]
    monkeypatch.setattr(MVAE, "loss", nan_loss)
    assert main(argv) == 1
    assert "then start the run again with --overwrite" in capsys.readouterr().err
    monkeypatch.setattr(MVAE, "loss", real_loss)
    assert (out / "config.json").exists() and not (out / CHECKPOINT).exists()
    assert _exits(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" not in err, err
    assert f"{out} holds a run that stopped before its first checkpoint, so there is nothing" in err
    assert "start it again with --overwrite, or choose another --out" in err
    assert main([*argv, "--resume"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"--resume: the run in {out} stopped before its first checkpoint" in err
    assert "start it again with --overwrite instead of --resume" in err
    assert main([*argv, "--overwrite"]) == 0
    assert read_checkpoint(out / CHECKPOINT)[1]["info"]["step"] == 5


def _exits(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


def test_a_checkpoint_write_that_fails_keeps_the_previous_one_and_says_so(
    tmp_path, data, monkeypatch, capsys
):
    """A full disk during the second checkpoint: one line with the path, the error, the kept
    step and the fix; the first checkpoint is whole, no temporary file or lock is left, and
    --resume finishes the run."""
    import errno

    from dmvae import checkpoints

    real_save, calls = checkpoints.save_file, {"n": 0}

    def full_disk(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            with open(filename, "wb") as f:
                f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(tensors, filename, metadata=metadata)

    out = tmp_path / "run"
    argv = _train_command(data, out, 4)[3:]
    monkeypatch.setattr(checkpoints, "save_file", full_disk)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert (
        f"cannot write the checkpoint of step 4 to {out / CHECKPOINT}: No space left on device; "
        "the previous checkpoint (step 2) is kept; free disk space, then continue with --resume"
    ) in err
    assert read_checkpoint(out / CHECKPOINT)[1]["info"]["step"] == 2
    assert not list(out.glob("*.tmp*")) and not (out / LOCK).exists()
    monkeypatch.setattr(checkpoints, "save_file", real_save)
    assert main([*argv, "--resume"]) == 0
    assert read_checkpoint(out / CHECKPOINT)[1]["info"]["step"] == 4


FILE_SIZE_LIMIT = """
import resource, signal, sys
from dmvae.training import state
real = state.save
def save(path, *args):  # after the first checkpoint, files may not reach half its size
    if path.exists():
        half = path.stat().st_size // 2
        resource.setrlimit(resource.RLIMIT_FSIZE, (half, half))
    return real(path, *args)
state.save = save
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
from dmvae.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_file_size_limit_in_a_checkpoint_write_is_one_line_and_keeps_the_previous_one(
    tmp_path, data
):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    args = _train_command(data, out, 4)[3:]
    done = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT, *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot write the checkpoint of step 4 to {out / CHECKPOINT}: File too large" in (
        done.stderr
    )
    assert "previous checkpoint (step 2) is kept; raise the file size limit (ulimit -f)" in (
        done.stderr
    )
    assert read_checkpoint(out / CHECKPOINT)[1]["info"]["step"] == 2
    assert not list(out.glob("*.tmp*")) and not (out / LOCK).exists()


def _train_command(data, out, steps: int) -> list[str]:
    return [
        sys.executable, "-m", "dmvae", "train", "--experiment", "folder", "--model", "mvae",
        "--set", f"data.path={data}", "--batch-size", "32", "--epochs", "2",
        "--max-steps", str(steps), "--set", "train.checkpoint_every=2", "--no-progress",
        "--device", "cpu", "--out", str(out),
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.35])
def test_kill_9_at_a_random_point_resumes_to_the_uninterrupted_weights(tmp_path, data, delay):
    """SIGKILL once the run has checkpointed (plus `delay` seconds: during a later step or a
    checkpoint write), then resume: the weights equal those of a run never killed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps = 16
    subprocess.run(_train_command(data, tmp_path / "full", steps), env=env, check=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_command(data, out, steps), env=env)
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT).exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if delay == 0.0:  # killed in the middle of the run: its lock stays behind
        assert proc.returncode == -signal.SIGKILL and (out / LOCK).exists()
    resume = _train_command(data, out, steps) + ["--resume"]
    subprocess.run(resume, env=env, check=True)
    from dmvae.training import load_run

    full, _ = load_run(tmp_path / "full")
    resumed, _ = load_run(out)
    assert_same(state_copy(full), state_copy(resumed))
    assert not list(out.glob("*.tmp*")) and not (out / LOCK).exists()


KILL_IN_WRITE = """
import os, signal, sys
real = os.replace
def replace(src, dst):  # SIGKILL once the second checkpoint's bytes are on disk, before rename
    if str(dst).endswith("checkpoint.safetensors") and os.path.exists(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst)
os.replace = replace
from dmvae.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_9_inside_a_checkpoint_write_keeps_the_previous_one_and_resumes_exactly(
    tmp_path, data
):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps = 10
    subprocess.run(_train_command(data, tmp_path / "full", steps), env=env, check=True)
    out = tmp_path / "killed"
    args = _train_command(data, out, steps)[3:]  # drop "python -m dmvae"
    killed = subprocess.run([sys.executable, "-c", KILL_IN_WRITE, *args], env=env)
    assert killed.returncode == -signal.SIGKILL
    assert read_checkpoint(out / CHECKPOINT)[1]["info"]["step"] == 2  # the previous one, whole
    assert list(out.glob(f"{CHECKPOINT}.*.tmp"))  # the half-done write is left behind ...
    subprocess.run(_train_command(data, out, steps) + ["--resume"], env=env, check=True)
    assert not list(out.glob("*.tmp*"))  # ... and removed by the next writer
    from dmvae.training import load_run

    assert_same(state_copy(load_run(tmp_path / "full")[0]), state_copy(load_run(out)[0]))
