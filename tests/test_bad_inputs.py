"""Bad input never costs data and never shows a traceback: each case below runs the command
line and asserts its exit status (2 for usage errors, 1 for everything else), a message that
names the problem, and that neither the run directories nor the data root changed.

Add a row for every bad input you find."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from dmvae.cli import main
from dmvae.training import CHECKPOINT
from dmvae.training.rundir import LOCK as LOCK_FILE

USAGE, FAILURE = 2, 1


@pytest.fixture(scope="module")
def root(tmp_path_factory, mnist_root):
    """A data root with a copy of MNIST (so that nothing may write into the real one), a data
    folder of .npy files, a finished run, a run without a checkpoint, and odd files."""
    base = tmp_path_factory.mktemp("bad-inputs")
    shutil.copytree(mnist_root / "MNIST" / "raw", base / "data" / "MNIST" / "raw")
    for split, n in (("train", 128), ("test", 32)):
        folder = base / "folder" / split
        folder.mkdir(parents=True)
        labels = np.arange(n) % 4
        np.save(folder / "code.npy", np.eye(4, dtype=np.float32)[labels])
        np.save(folder / "image.npy", np.full((n, 1, 8, 8), 9, np.uint8))
        np.save(folder / "labels.npy", labels)
    for name, content in {
        "rows/train/a.npy": np.zeros((3, 2), np.float32),
        "rows/train/b.npy": np.zeros((4, 2), np.float32),
        "ints/train/a.npy": np.zeros((3, 2), np.int64),
    }.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(base / name, content)
    folder_args = ["--experiment", "folder", "--set", f"data.path={base / 'folder'}"]
    finished = ["train", *folder_args, "--model", "mvae", "--max-steps", "2", "--batch-size"]
    assert main([*finished, "32", "--no-progress", "--out", str(base / "done")]) == 0
    (base / "empty-run").mkdir()
    (base / "a-file").write_text("not a folder")
    (base / "bad.toml").write_text("[model\n")
    (base / "odd.toml").write_text("[optim]\nlr = 1\n")
    (base / "v1.toml").write_text("version = 1\n[train]\nlr = 0.01\n")
    (base / "v3.json").write_text('{"version": 3, "train": {"lr": 0.01}}')
    locked = base / "locked"
    shutil.copytree(base / "done", locked)
    (locked / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    shutil.copytree(base / "done", base / "no-checkpoint")  # as a NaN before the first one
    (base / "no-checkpoint" / CHECKPOINT).unlink()
    shutil.copytree(base / "done", base / "corrupt")
    ckpt = base / "corrupt" / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:500])
    shutil.copytree(base / "done", base / "truncated")
    cfg = base / "truncated" / "config.json"
    cfg.write_text(cfg.read_text()[:40])
    (base / "empty-data").mkdir()
    (base / "raises.py").write_text("import math\n\nEXPERIMENT = undefined_name\n")
    (base / "fails.py").write_text("raise RuntimeError('no GPU here')\n")
    (base / "needs.py").write_text("import dmvae_no_such_dependency\n")
    return base


TRAIN = ["train", "--data-root", "{data}", "--no-progress", "--out", "{new}"]
FOLDER = ["train", "--experiment", "folder", "--set", "data.path={folder}", "--batch-size", "32"]
FOLDER += ["--model", "mvae"]
CASES = [
    # settings: names, types and ranges, refused before any data is read
    (TRAIN + ["--set", "lr=abc"], USAGE, "'train.lr' must be float, got 'abc'"),
    (TRAIN + ["--set", "max_steps=abc"], USAGE, "'train.max_steps' must be int or null"),
    (TRAIN + ["--set", "model.beta=[1]"], USAGE, "'model.beta' must be float or a table"),
    (TRAIN + ["--model", "mmvae", "--set", "model=mvae"], USAGE, "--model mmvae and --set model"),
    (TRAIN + ["--set", "model.name=nope"], USAGE, "unknown model 'nope'"),
    (TRAIN + ["--set", "experiment=nope"], USAGE, "unknown experiment 'nope'"),
    (TRAIN + ["--set", "model=1"], USAGE, "'model' names the model: give a name, got 1"),
    (TRAIN + ["--set", "gamma=1"], USAGE, "a bare name is a train setting; did you mean 'model"),
    (TRAIN + ["--set", "nonsense=1"], USAGE, "unknown setting 'nonsense'"),
    (TRAIN + ["--set", "model.gama=1"], USAGE, "unknown model settings ['gama']"),
    (TRAIN + ["--set", "data.dm=3"], USAGE, "unknown data settings ['dm']"),
    (TRAIN + ["--set", "lr"], USAGE, "--set expects KEY=VALUE"),
    (TRAIN + ["--set", "=1"], USAGE, "--set expects KEY=VALUE"),
    (TRAIN + ["--lr", "-1"], USAGE, "train.lr must be positive, got -1.0"),
    (TRAIN + ["--lr", "0"], USAGE, "train.lr must be positive, got 0.0"),
    (TRAIN + ["--batch-size", "0"], USAGE, "train.batch_size must be at least 1"),
    (TRAIN + ["--epochs", "0"], USAGE, "train.epochs must be at least 1"),
    (TRAIN + ["--epochs", "-1"], USAGE, "train.epochs must be at least 1"),
    (TRAIN + ["--max-steps", "0"], USAGE, "train.max_steps must be at least 1"),
    (TRAIN + ["--set", "epochs=1.5"], USAGE, "'train.epochs' must be int, got 1.5"),
    (TRAIN + ["--set", "amp=1"], USAGE, "'train.amp' must be bool, got 1"),
    (TRAIN + ["--set", "log_every=0"], USAGE, "train.log_every must be at least 1"),
    (TRAIN + ["--set", "anneal_epochs=-2"], USAGE, "train.anneal_epochs must be >= 0"),
    (TRAIN + ["--set", "likelihood_scale=0"], USAGE, "train.likelihood_scale must be positive"),
    (TRAIN + ["--set", "checkpoint_minutes=-1"], USAGE, "checkpoint_minutes must be >= 0"),
    (TRAIN + ["--set", "data.noise_std=-1"], USAGE, "data.noise_std must be >= 0"),
    (TRAIN + ["--set", "data.pairing_seed=1.5"], USAGE, "'data.pairing_seed' must be int"),
    (TRAIN + ["--modalities", "1"], USAGE, "paired MNIST has 2 to 5 modalities, got 1"),
    (TRAIN + ["--modalities", "6"], USAGE, "paired MNIST has 2 to 5 modalities, got 6"),
    (TRAIN + ["--set", "model.beta=-1"], USAGE, "DMVAE beta must be >= 0"),
    (TRAIN + ["--set", "model.gamma=-5"], USAGE, "DMVAE gamma must be >= 0"),
    (TRAIN + ["--set", 'model.delta={"m0": 1, "m1": -1}'], USAGE, "DMVAE delta must be >= 0"),
    (TRAIN + ["--set", "model.temperature=0"], USAGE, "temperature and disc_lr must be positive"),
    (TRAIN + ["--set", "model.subset_prob=1.5"], USAGE, "subset_prob must lie in (0, 1)"),
    (TRAIN + ["--set", "model.style_dim=0"], USAGE, "style_dim must be at least 1"),
    (TRAIN + ["--set", "model.reconstruction=mean"], USAGE, "reconstruction='mean' is unknown"),
    (TRAIN + ["--set", "model.disc_betas=[0.5]"], USAGE, "'model.disc_betas' must be a list of 2"),
    (TRAIN + ["--model", "mvae", "--set", "model.beta=-1"], USAGE, "MVAE beta must be >= 0"),
    (
        TRAIN + ["--model", "mmvae", "--set", "model.K=0"],
        USAGE,
        "MMVAE needs latent_dim >= 1 and K >= 1",
    ),
    (
        TRAIN + ["--model", "mmvae", "--set", "model.estimator=x"],
        USAGE,
        "'model.estimator' must be one of 'dreg'",
    ),
    (TRAIN + ["--model", "nope"], USAGE, "unknown model 'nope'"),
    (TRAIN + ["--experiment", "nope"], USAGE, "unknown experiment 'nope'"),
    (TRAIN + ["--experiment", "nomodule:X"], USAGE, "cannot import 'nomodule'"),
    (TRAIN + ["--experiment", "{root}/missing.py:X"], USAGE, "missing.py does not exist"),
    (
        TRAIN + ["--experiment", "{root}/raises.py:X"],
        FAILURE,
        "raises.py failed while it was imported: NameError: name 'undefined_name' is not defined",
    ),
    (TRAIN + ["--experiment", "{root}/raises.py:X"], FAILURE, "raises.py, line 3); fix it there"),
    (TRAIN + ["--experiment", "{root}/raises.py:X"], FAILURE, "`dmvae --debug train ...` for"),
    (TRAIN + ["--experiment", "{root}/fails.py:X"], FAILURE, "RuntimeError: no GPU here"),
    (
        TRAIN + ["--experiment", "{root}/needs.py:X"],
        FAILURE,
        "ModuleNotFoundError: No module named 'dmvae_no_such_dependency'",
    ),
    (TRAIN + ["--epochs", "abc"], USAGE, "invalid int value: 'abc'"),
    (TRAIN + ["--config", "{root}/missing.toml"], USAGE, "no config file"),
    (TRAIN + ["--config", "{root}/bad.toml"], USAGE, "is not valid TOML"),
    (TRAIN + ["--config", "{root}/odd.toml"], USAGE, "unknown keys ['optim']"),
    (
        TRAIN + ["--config", "{root}/v1.toml"],
        USAGE,
        "v1.toml: unknown config version 1; this dmvae reads version 2 (and files from before "
        "versions, which have no `version` key): set version = 2 or remove the key",
    ),
    (
        TRAIN + ["--config", "{root}/v3.json"],
        USAGE,
        "v3.json: config version 3 is newer than this dmvae reads (version 2); upgrade dmvae",
    ),
    (["train", "--set", "lr=1"], USAGE, "give the run directory: --out RUN_DIR"),
    # the file system and existing runs
    (TRAIN[:-1] + ["{root}/a-file"], USAGE, "is a file, not a directory"),
    (FOLDER + ["--out", "{root}/done"], USAGE, "already holds a run; continue it with --resume"),
    (
        FOLDER + ["--lr", "0.5", "--resume", "--out", "{root}/done"],
        USAGE,
        "train.lr: saved 0.001, now 0.5",
    ),
    (FOLDER + ["--resume", "--out", "{root}/empty-run"], FAILURE, "no checkpoint in"),
    (
        FOLDER + ["--out", "{root}/no-checkpoint"],
        USAGE,
        "stopped before its first checkpoint, so there is nothing to resume; start it again "
        "with --overwrite, or choose another --out",
    ),
    (
        FOLDER + ["--resume", "--out", "{root}/no-checkpoint"],
        FAILURE,
        "nothing to resume; start it again with --overwrite instead of --resume",
    ),
    (FOLDER + ["--resume", "--out", "{root}/locked"], FAILURE, "being written by another process"),
    (
        ["train", "--data-root", "{root}/empty-data", "--out", "{new}"],
        FAILURE,
        "MNIST files missing",
    ),
    # your own data
    (["train", "--experiment", "folder", "--out", "{new}"], USAGE, "needs data.path"),
    (FOLDER[:4] + ["data.path={root}/nowhere", "--out", "{new}"], FAILURE, "no folder"),
    (FOLDER[:4] + ["data.path={root}/rows", "--out", "{new}"], FAILURE, "same number of rows"),
    (FOLDER[:4] + ["data.path={root}/ints", "--out", "{new}"], FAILURE, "convert integer codes"),
    (FOLDER[:6] + ["1024", "--out", "{new}"], USAGE, "batch size 1024 exceeds the 128 training"),
    (
        FOLDER + ["--set", 'data.likelihoods={"code": "gaussian"}', "--out", "{new}"],
        USAGE,
        "unknown likelihoods",
    ),
    (
        FOLDER + ["--set", 'data.noise_std={"x": 1}', "--out", "{new}"],
        USAGE,
        "unknown modalities ['x']",
    ),
    # evaluation
    (["evaluate", "{root}/missing"], FAILURE, "is not a run directory"),
    (["evaluate", "{root}/done", "--num-samples", "0"], USAGE, "num_samples=0 is invalid"),
    (["evaluate", "{root}/done", "--max-test", "0"], USAGE, "max_test=0 is invalid"),
    (["evaluate", "{root}/done", "--num-real", "1"], USAGE, "num_real=1 is invalid"),
    (["evaluate", "{root}/done", "--metrics", "bogus"], USAGE, "invalid choice: 'bogus'"),
    (["evaluate", "{root}/done", "--fid", "bogus"], USAGE, "invalid choice: 'bogus'"),
    (["evaluate", "hf://alice/run"], USAGE, "writes its results beside the run: pass --out DIR"),
    (["evaluate", "{root}/done", "--out", "{new}"], USAGE, "--out is for shared runs"),
    # sharing (docs/sharing.md): refused before the Hub is asked
    (["hub", "push", "{root}/missing", "alice/run"], FAILURE, "is not a run directory"),
    (["hub", "push", "{root}/done", "alice/a/b"], USAGE, "is not a Hub run reference"),
    (["hub", "pull", "hf://alice/run@", "--out", "{new}"], USAGE, "hf://user/name@revision"),
    # --data-root points the folder experiment's data.path elsewhere (a moved data folder)
    (["evaluate", "{root}/done", "--data-root", "{root}/empty-data"], FAILURE, "no folder"),
    (["evaluate", "{root}/done", "--set", "data.noise_std={}"], USAGE, "change what the run"),
    (["evaluate", "{root}/done", "--set", "train.lr=1"], USAGE, "data settings only"),
    (["evaluate", "{root}/corrupt", "--metrics", "latent"], FAILURE, "is corrupt or truncated"),
    (
        ["evaluate", "{root}/locked", "--metrics", "latent"],
        FAILURE,
        "is still training (pid",  # the lock of a live process
    ),
    (
        ["evaluate", "{root}/locked", "--metrics", "latent"],
        FAILURE,
        "or evaluate its current checkpoint (step 2) with --allow-running",
    ),
    (
        ["evaluate", "{root}/truncated", "--metrics", "latent"],
        FAILURE,
        "config.json is not valid JSON",
    ),
    # reproduce, data, classifiers
    (["reproduce", "folder", "--out", "{new}"], USAGE, "invalid choice: 'folder'"),
    (
        ["reproduce", "paired-mnist", "--budget", "huge", "--out", "{new}"],
        USAGE,
        "invalid choice: 'huge'",
    ),
    (["reproduce", "paired-mnist", "--report-only", "--out", "{root}/missing"], FAILURE, "no grid"),
    (["data", "summary", "--modalities", "1", "--data-root", "{data}"], USAGE, "2 to 5 modalities"),
    (["data", "summary", "--experiment", "nope"], USAGE, "unknown experiment 'nope'"),
    (["classifiers", "train", "--dataset", "bogus"], USAGE, "invalid choice: 'bogus'"),
]


def snapshot(base) -> dict:
    return {
        str(p.relative_to(base)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit:  # argparse's usage errors
        return exit.code


@pytest.mark.parametrize(
    ("argv", "status", "message"), CASES, ids=[" ".join(c[0][:6]) for c in CASES]
)
def test_bad_input_gives_one_clear_line_and_changes_nothing(root, capsys, argv, status, message):
    names = {"data": root / "data", "root": root, "folder": root / "folder", "new": root / "new"}
    for key, path in names.items():
        argv = [a.replace("{" + key + "}", str(path)) for a in argv]
    before = snapshot(root)
    capsys.readouterr()
    assert run(argv) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert message in err, err
    lines = err.strip().splitlines()
    assert ": error: " in lines[-1]
    if lines[-1].startswith("dmvae: error:"):  # ours: one line (argparse adds its usage)
        assert len(lines) == 1, err
    assert snapshot(root) == before
    assert not (root / "new").exists()


def test_an_experiment_module_that_raises_on_import_names_it_in_one_line(
    tmp_path, monkeypatch, capsys
):
    """`--experiment package.module:X` whose import raises: the module, the exception and the
    line of the user's code, and how to see the traceback; `--debug` shows the traceback."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "exp.py").write_text("import os\n\n\nraise ValueError('bad shapes')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["train", "--experiment", "mypkg.exp:EXPERIMENT", "--out", str(tmp_path / "run")]
    assert run(argv) == FAILURE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "experiment module mypkg.exp failed while it was imported: ValueError: bad shapes" in err
    assert f"({package / 'exp.py'}, line 4)" in err
    assert "(run `dmvae --debug train ...` for the traceback)" in err
    with pytest.raises(Exception, match="failed while it was imported") as raised:
        main(["--debug", *argv])
    assert isinstance(raised.value.__cause__, ValueError)  # the user's traceback is chained
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("given", [["--model", "mvae"], ["--set", "model=mvae"]])
@pytest.mark.parametrize("more", [[], ["--set", "model.name=mvae"]])
def test_set_model_is_the_model_flag_and_suggestions_name_only_settings_that_exist(
    capsys, given, more
):
    """config.json spells the model's name model.name: `--set model=X` and `model.name=X` name
    the model as --model does; an unknown key is answered only with keys that exist."""
    assert main(["train", *given, *more, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["name"] == "mvae"
    assert run(["train", "--set", "nonsense=1", "--print-config"]) == USAGE
    err = capsys.readouterr().err
    assert "model.nonsense" not in err and "data.nonsense" not in err and "--print-config" in err
    assert run(["train", "--model", "mvae", "--set", "gama=1", "--print-config"]) == USAGE
    assert "model.gamma" not in capsys.readouterr().err  # MVAE has no gamma
    assert run(["train", "--set", "gama=1", "--print-config"]) == USAGE  # DMVAE has one
    assert "did you mean 'model.gamma'?" in capsys.readouterr().err
