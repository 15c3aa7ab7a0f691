"""The trainer on real paired MNIST: every model learns, checkpoints round-trip, runs resume to
the same result, NaNs stop the run with the last good checkpoint kept, and the CLI works."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from conftest import state_copy

from dmvae.checkpoints import read_checkpoint
from dmvae.cli import main
from dmvae.config import RunConfig
from dmvae.errors import CheckpointError, ConfigError, TrainingDiverged
from dmvae.training import CHECKPOINT, load_run, train
from dmvae.training import log as training_log

SMALL = {"model_config.K": 4}


def config(tmp_path, mnist_root, model="dmvae", modalities=2, **kw) -> RunConfig:
    settings = dict(
        out=str(tmp_path / f"{model}-{modalities}"),
        batch_size=64,
        max_steps=6,
        device="cpu",
        progress=False,
        log_every=2,
        **{"data.root": str(mnist_root), "data.modalities": modalities},
    )
    if model == "mmvae":
        settings.update(SMALL)
    settings.update(kw)
    return RunConfig.preset("paired-mnist", model, settings)


def fixed_batch(cfg: RunConfig, n: int = 128):
    data = cfg.build_data("test")
    return data.batch(torch.arange(n), torch.Generator().manual_seed(0))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "modalities"),
    [("dmvae", 2), ("dmvae", 3), ("mvae", 2), ("mvae", 3), ("mmvae", 2), ("mmvae", 3)],
)
def test_each_model_learns_on_real_paired_mnist(tmp_path, mnist_root, model, modalities):
    cfg = config(tmp_path, mnist_root, model, modalities, max_steps=25, lr=1e-3)
    batch = fixed_batch(cfg)
    torch.manual_seed(0)
    untrained = cfg.build_model().eval()
    trained = train(cfg)

    def reconstruction(m):
        """Negative log-likelihood (KL weights are still annealing at this point)."""
        torch.manual_seed(1)
        with torch.no_grad():
            terms = m.loss(batch)
        return sum(float(v) for k, v in terms.items() if k.startswith("rec/"))

    before, after = reconstruction(untrained), reconstruction(trained)
    assert after < before - 100 * modalities
    log = [json.loads(line) for line in (tmp_path / f"{model}-{modalities}" / "log.jsonl").open()]
    assert [r["step"] for r in log] == [*range(2, 26, 2), 25]
    assert all("loss" in r for r in log)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, mnist_root):
    cfg = config(tmp_path, mnist_root)
    model = train(cfg)
    loaded, run = load_run(cfg.train.out)
    assert run == cfg
    x = fixed_batch(cfg, 16).inputs
    assert torch.equal(model.embed(x), loaded.embed(x))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = model.conditional_generate(x, ["m1"], ["m0"], generator=g1)["m1"]
    b = loaded.conditional_generate(x, ["m1"], ["m0"], generator=g2)["m1"]
    assert torch.equal(a, b)


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, mnist_root, monkeypatch):
    full = state_copy(train(config(tmp_path / "a", mnist_root, max_steps=7, checkpoint_every=3)))

    cfg = config(tmp_path / "b", mnist_root, max_steps=7, checkpoint_every=3)
    from dmvae.models.dmvae import DMVAE

    real_loss, calls = DMVAE.loss, {"n": 0}

    def dying_loss(self, batch, kl_weight=1.0, update_auxiliary=None):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_loss(self, batch, kl_weight, update_auxiliary)

    monkeypatch.setattr(DMVAE, "loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(DMVAE, "loss", real_loss)
    assert read_checkpoint(tmp_path / "b" / "dmvae-2" / CHECKPOINT)[1]["info"]["step"] == 3
    resumed = state_copy(train(cfg, resume=True))
    assert full.keys() == resumed.keys()
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, mnist_root, monkeypatch):
    from dmvae.models.dmvae import DMVAE

    real_loss, calls = DMVAE.loss, {"n": 0}

    def nan_loss(self, batch, kl_weight=1.0, update_auxiliary=None):
        calls["n"] += 1
        terms = real_loss(self, batch, kl_weight, update_auxiliary)
        if calls["n"] == 4:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(DMVAE, "loss", nan_loss)
    cfg = config(tmp_path, mnist_root, checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(cfg)
    assert read_checkpoint(tmp_path / "dmvae-2" / CHECKPOINT)[1]["info"]["step"] == 2


def test_corrupt_checkpoint_and_mismatched_resume_are_reported(tmp_path, mnist_root):
    cfg = config(tmp_path, mnist_root, max_steps=2)
    train(cfg)
    path = tmp_path / "dmvae-2" / CHECKPOINT
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(cfg.train.out)
    other = config(tmp_path, mnist_root, max_steps=2, lr=0.5)
    from dmvae.errors import ConfigError

    with pytest.raises(ConfigError, match="trained with other settings"):
        train(other, resume=True)


def test_cli_train_writes_run_directory(tmp_path, mnist_root, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "--experiment",
            "paired-mnist",
            "--model",
            "mvae",
            "--modalities",
            "3",
            "--max-steps",
            "2",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--data-root",
            str(mnist_root),
            "--set",
            "model.latent_dim=8",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    run = json.loads((out / "config.json").read_text())
    assert run["model"] == {"name": "mvae", "latent_dim": 8, "beta": 1.0, "num_random_subsets": 1}
    assert run["data"]["modalities"] == 3
    assert (out / CHECKPOINT).exists() and (out / "log.jsonl").exists()
    assert any((out / "tb").iterdir())
    assert main(["train", "--out", str(out), "--set", "nonsense=1"]) == 2
    assert "unknown setting 'nonsense'" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--set", "model.gamma=ten"]) == 2
    assert "'model.gamma' must be float, got 'ten'" in capsys.readouterr().err
    assert main(["train", "--out", str(out), "--set", "model.gama=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown model settings ['gama']" in err and "'model.gamma'" in err


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, mnist_root, capsys):
    """A usage error (a bad setting, an --out that is a file) exits 2, as one line naming the
    problem; `dmvae --debug` raises instead, so the traceback shows (file system errors: the
    test below)."""
    assert main(["train", "--set", "train.epochs=0", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dmvae: error: train.epochs must be at least")
    with pytest.raises(ConfigError, match="train.epochs must be at least 1"):
        main(["--debug", "train", "--set", "train.epochs=0", "--out", str(tmp_path / "r")])

    taken = tmp_path / "taken"  # --out names an existing file
    taken.write_text("not a folder")
    args = ["train", "--max-steps", "1", "--batch-size", "32", "--device", "cpu"]
    args += ["--data-root", str(mnist_root), "--no-progress", "--out", str(taken)]
    assert main(args) == 2  # checked before any data are read
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.err.startswith(f"dmvae: error: --out {taken} is a file, not a directory")
    assert taken.read_text() == "not a folder"
    with pytest.raises(ConfigError, match="is a file"):
        main(["--debug", *args])


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied", "/runs/x/config.json"),
        OSError(28, "No space left on device", "/runs/x/checkpoint.safetensors"),
        NotADirectoryError(20, "Not a directory", "/runs/file/x"),
    ],
)
def test_file_system_errors_name_the_path_and_the_problem(error, monkeypatch, capsys):
    from dmvae.cli import train as train_cli

    def fail(args):
        raise error

    monkeypatch.setattr(train_cli, "run", fail)
    assert main(["train", "--out", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dmvae: error: {error.filename}: {error.strerror} (")
    assert err.count("\n") == 1


def test_collapse_is_warned_once_in_the_log_and_above_the_bar(
    tmp_path, mnist_root, monkeypatch, caplog
):
    from dmvae.models.dmvae import DMVAE

    monkeypatch.setattr(
        DMVAE, "collapse_warnings", lambda self, figures: {"style_kl": "style KL is 0"}
    )
    monkeypatch.setattr(training_log, "COLLAPSE_CHECK_FROM", 4)
    cfg = config(tmp_path, mnist_root, max_steps=8, batch_size=16)
    train(cfg)
    log = [json.loads(line) for line in (tmp_path / "dmvae-2" / "log.jsonl").open()]
    warned = [r for r in log if "warnings" in r]
    assert [r["step"] for r in warned] == [4]  # once per kind
    assert "style KL is 0" in warned[0]["warnings"][0]
    # A warning of the "dmvae" logger: stderr, above the bar, from the CLI (`console_log`).
    warned = [r for r in caplog.records if r.name.startswith("dmvae.")]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert "may have collapsed at step 4" in warned[0].getMessage()
    # The figures behind the warning are logged at every step.
    for key in ("content_effect", "content_norm", "shared", "shared_chance", "kl/m0", "kl/m1"):
        assert all(key in r for r in log)
    assert log[0]["shared_chance"] == pytest.approx(math.log(2 * 16 - 1))


def test_runs_from_before_the_release_objective_load_but_do_not_resume(tmp_path, mnist_root):
    """A config.json without a version, `reconstruction` and `init` cannot say which objective
    trained it: it loads for evaluation, resuming it is refused with what to add, and once the
    keys are added it resumes."""
    cfg = config(tmp_path, mnist_root, max_steps=2)
    train(cfg)
    path = tmp_path / "dmvae-2" / "config.json"
    old = json.loads(path.read_text())
    del old["version"]
    for key in ("reconstruction", "init"):
        del old["model"][key]
    old["data"].update(dm=20, max_per_class=10000, verify=True)  # the former shared data section
    path.write_text(json.dumps(old))
    model, run = load_run(cfg.train.out)
    assert run.unrecorded == ("reconstruction", "init") and run == cfg
    with pytest.raises(ConfigError, match='add them to its model section.*"release"'):
        train(cfg.override({"max_steps": 4}), resume=True)
    old["model"].update(reconstruction="release", init="release")
    path.write_text(json.dumps(old))
    train(cfg.override({"max_steps": 4}), resume=True)
    assert read_checkpoint(tmp_path / "dmvae-2" / CHECKPOINT)[1]["info"]["step"] == 4
