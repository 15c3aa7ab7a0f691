"""Your own modalities and your own model through the library: a toy fourth model registered in
one place, a TensorExperiment and a folder of .npy files trained by the library's trainer, and
clear errors for data that do not fit."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from dmvae import objectives as obj
from dmvae.cli import main
from dmvae.config import RunConfig
from dmvae.data import MultimodalData
from dmvae.errors import ConfigError, DataError
from dmvae.evaluation.suite import evaluate_run
from dmvae.experiments import EXPERIMENTS, TensorExperiment, register_experiment
from dmvae.models import MODELS, ModelSpec, MultimodalVAE, register_model
from dmvae.training import load_run, train


def toy_tensors(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A 8x8 image of a bar whose row is the label and a 5-bit code of the same label."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(4, (n,), generator=g)
    images = torch.zeros(n, 8, 8, dtype=torch.uint8)
    images[torch.arange(n), 2 * labels] = 200
    code = nn.functional.one_hot(labels, 5).float()
    return {"image": images, "code": code}, labels


@pytest.fixture
def toy_experiment():
    train_x, train_y = toy_tensors(512, 0)
    test_x, test_y = toy_tensors(128, 1)
    exp = register_experiment(
        TensorExperiment(
            "toy-bars",
            MultimodalData.from_tensors(train_x, train_y),
            MultimodalData.from_tensors(test_x, test_y),
            likelihoods={"code": "bernoulli"},
        )
    )
    yield exp
    EXPERIMENTS.pop("toy-bars")


# ---------------------------------------------------------------- a fourth model, one file
@dataclass(frozen=True)
class MeanVAEConfig:
    latent_dim: int = 4
    beta: float = 1.0


class MeanVAE(MultimodalVAE):
    """A toy model: the shared posterior is the mean of the experts' Gaussians."""

    config_class = MeanVAEConfig

    def setup(self):
        self.shared_dim = self.config.latent_dim

    def encode(self, inputs, subset=None):
        names = self.check_subset(subset)
        params = [self.encode_modality(m, inputs[m]) for m in names]
        return tuple(torch.stack(p).mean(0) for p in zip(*params, strict=True))

    def loss(self, batch, kl_weight=1.0, update_auxiliary=None):
        mu, logvar = self.encode(batch.inputs)
        z = obj.reparameterize(mu, logvar)
        terms = {
            f"rec/{m}": -self.likelihoods[m].log_prob(batch.targets[m], self.decoders[m](z)).mean()
            for m in self.modalities
        }
        terms["kl"] = obj.kl_normal_standard(mu, logvar).mean()
        rec = torch.stack([terms[f"rec/{m}"] for m in self.modalities]).sum()
        terms["loss"] = rec + kl_weight * self.config.beta * terms["kl"]
        return terms

    def conditional_generate(self, given, targets, subset=None, n_per_input=1, **_):
        mu, _ = self.encode(given, subset or tuple(given))
        return self.decode({t: mu.repeat_interleave(n_per_input, 0) for t in targets})


@pytest.fixture
def toy_model():
    yield register_model(ModelSpec("meanvae", MeanVAE, MeanVAEConfig))
    MODELS.pop("meanvae")


def test_a_registered_toy_model_trains_resumes_and_loads_through_the_library(
    tmp_path, toy_experiment, toy_model
):
    config = RunConfig.preset(
        "toy-bars",
        "meanvae",
        {"out": str(tmp_path / "run"), "batch_size": 64, "max_steps": 6, "epochs": 3},
    )
    config = config.override(
        {"model.latent_dim": 3, "log_every": 2, "checkpoint_every": 3, "progress": False}
    )
    trained = train(config)
    model, again = load_run(tmp_path / "run")
    assert again == config and isinstance(model, MeanVAE) and model.shared_dim == 3
    x = toy_experiment.test.batch(torch.arange(4)).inputs
    assert torch.equal(model.embed(x), trained.embed(x))
    more = train(config.override({"max_steps": 10}), resume=True)
    assert isinstance(more, MeanVAE)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    assert [r["step"] for r in log] == [2, 4, 6, 8, 10]
    assert {"rec/image", "rec/code", "kl", "loss"} <= log[-1].keys()
    metrics = evaluate_run(tmp_path / "run", metrics=["latent", "gmm", "grids"], progress=False)
    assert set(metrics["latent"]) == {"image", "code", "all"}
    assert (tmp_path / "run" / "eval" / "unconditional_gmm.png").exists()


def test_nothing_is_written_when_the_data_or_the_networks_do_not_fit(tmp_path, toy_experiment):
    out = tmp_path / "never"
    with pytest.raises(DataError, match="no folder"):
        train(RunConfig.preset("folder", "mvae", {"data.path": str(tmp_path), "out": str(out)}))
    wrong = TensorExperiment(
        "toy-wrong-nets",
        toy_experiment.train,
        toy_experiment.test,
        networks=lambda d: ({"image": nn.Linear(3, 2)}, {"image": nn.Linear(2, 3)}),
    )
    register_experiment(wrong)
    try:
        with pytest.raises(ValueError, match="name modalities"):
            train(RunConfig.preset("toy-wrong-nets", "mvae", {"out": str(out)}))
    finally:
        EXPERIMENTS.pop("toy-wrong-nets")
    assert not out.exists()


def test_the_cli_trains_a_folder_of_npy_files_with_a_bernoulli_modality(tmp_path, capsys):
    for split, (n, seed) in {"train": (512, 0), "test": (128, 1)}.items():
        tensors, labels = toy_tensors(n, seed)
        (tmp_path / "data" / split).mkdir(parents=True)
        np.save(tmp_path / "data" / split / "image.npy", tensors["image"].numpy())
        torch.save(tensors["code"], tmp_path / "data" / split / "code.pt")
        np.save(tmp_path / "data" / split / "labels.npy", labels.numpy())
    out = tmp_path / "run"
    args = ["train", "--experiment", "folder", "--model", "dmvae", "--out", str(out)]
    args += [
        "--set",
        f"data.path={tmp_path / 'data'}",
        "--set",
        'data.likelihoods={"code": "bernoulli"}',
    ]
    args += [
        "--max-steps",
        "8",
        "--batch-size",
        "64",
        "--no-progress",
        "--set",
        "model.style_dim=2",
    ]
    assert main(args) == 0, capsys.readouterr().err
    model, config = load_run(out)
    assert model.modalities == ("code", "image")
    assert model.likelihoods["code"].kind == "bernoulli"
    assert model.decoders["code"](torch.zeros(1, model.config.latent_dim)).max() <= 1  # sigmoid
    assert config.data.likelihoods == {"code": "bernoulli"}


def test_data_that_do_not_fit_are_named(tmp_path, toy_experiment):
    with pytest.raises(ValueError, match="same number of rows"):
        MultimodalData.from_tensors({"a": torch.zeros(3, 2), "b": torch.zeros(4, 2)})
    with pytest.raises(TypeError, match="labels must be a 1-D integer tensor"):
        MultimodalData.from_tensors({"a": torch.zeros(3, 2)}, torch.zeros(3))
    with pytest.raises(TypeError, match="got torch.int64; convert integer codes"):
        MultimodalData.from_tensors({"a": torch.zeros(3, 2).long()})
    data = toy_experiment.train
    with pytest.raises(ConfigError, match=r"shape \(5,\) in train, \(6,\) in test"):
        other = MultimodalData.from_tensors(
            {"image": data.images["image"], "code": torch.zeros(512, 6)}
        )
        TensorExperiment("x", data, other)
    with pytest.raises(ConfigError, match=r"likelihoods name unknown modalities \['txt'\]"):
        TensorExperiment("x", data, data, likelihoods={"txt": "bernoulli"})
    with pytest.raises(ValueError, match="unknown likelihood 'gauss'"):
        TensorExperiment("x", data, data, likelihoods={"code": "gauss"})
    with pytest.raises(DataError, match="no folder"):
        RunConfig.preset("folder", "dmvae", {"data.path": str(tmp_path)}).build_data("train")
    (tmp_path / "train").mkdir()
    np.save(tmp_path / "train" / "a.npy", np.zeros((3, 2), np.float32))
    np.save(tmp_path / "train" / "b.npy", np.zeros((4, 2), np.float32))
    with pytest.raises(DataError, match="same number of rows"):
        RunConfig.preset("folder", "dmvae", {"data.path": str(tmp_path)}).build_data("train")
    with pytest.raises(ConfigError, match="needs data.path"):
        RunConfig.preset("folder", "dmvae")
    with pytest.raises(ConfigError, match=r"unknown likelihoods \{'a': 'gaussian'\}"):
        RunConfig.preset(
            "folder", "dmvae", {"data.path": "x", "data.likelihoods": {"a": "gaussian"}}
        )


def test_an_experiment_is_found_by_module_attribute(tmp_path, monkeypatch):
    (tmp_path / "myexp.py").write_text(
        "import torch\n"
        "from dmvae.data import MultimodalData\n"
        "from dmvae.experiments import TensorExperiment\n"
        "d = MultimodalData.from_tensors({'a': torch.rand(64, 3), 'b': torch.rand(64, 2)})\n"
        "EXP = TensorExperiment('mine', d, d)\n"
    )
    monkeypatch.chdir(tmp_path)
    for name in ("myexp:EXP", "myexp.py:EXP"):
        config = RunConfig.preset(name, "mvae", {"out": str(tmp_path / name), "max_steps": 2})
        train(config.override({"batch_size": 16, "progress": False}))
        model, again = load_run(tmp_path / name)
        assert again.experiment == name and model.modalities == ("a", "b")
    with pytest.raises(ConfigError, match="has no attribute 'NOPE'"):
        RunConfig.preset("myexp:NOPE", "mvae")
    with pytest.raises(ConfigError, match="cannot import 'nomodule'"):
        RunConfig.preset("nomodule:EXP", "mvae")


@pytest.mark.slow
def test_a_run_killed_after_an_epoch_boundary_checkpoint_resumes_to_the_same_weights(
    tmp_path, toy_experiment, monkeypatch
):
    """8 steps per epoch and a checkpoint at step 8: the resumed run must draw epoch 2's
    permutation, not epoch 1's again."""
    from dmvae.models.mvae import MVAE

    settings = {"batch_size": 64, "epochs": 3, "checkpoint_every": 8, "progress": False}
    full = train(RunConfig.preset("toy-bars", "mvae", {**settings, "out": str(tmp_path / "a")}))
    config = RunConfig.preset("toy-bars", "mvae", {**settings, "out": str(tmp_path / "b")})
    real_loss, calls = MVAE.loss, {"n": 0}

    def dying_loss(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:
            raise KeyboardInterrupt
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(MVAE, "loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.setattr(MVAE, "loss", real_loss)
    resumed = train(config, resume=True)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# ---------------------------------------------------------------- own data, first class
READER = """
import torch
from torch import nn


class CodeReader(nn.Module):
    '''The code modality's classifier: its one-hot bits are the logits.'''

    def forward(self, code):
        return code[:, :4] * 10.0


READER = CodeReader()
"""


def write_toy_folder(root, labels=True, n=(512, 128)):
    """The bars of `toy_tensors` as a folder: image.npy, code.pt and labels.npy per split."""
    for split, (size, seed) in zip(("train", "test"), zip(n, (0, 1), strict=True), strict=True):
        tensors, y = toy_tensors(size, seed)
        (root / split).mkdir(parents=True, exist_ok=True)
        np.save(root / split / "image.npy", tensors["image"].numpy())
        torch.save(tensors["code"], root / split / "code.pt")
        if labels:
            np.save(root / split / "labels.npy", y.numpy())
    (root.parent / "reader.py").write_text(READER)
    return root


TOY_TRAIN = ["--max-steps", "40", "--batch-size", "64", "--no-progress"]
TOY_TRAIN += ["--device", "cpu"]


def test_the_folder_route_scores_coherence_with_the_users_and_the_builtin_classifier(
    tmp_path, capsys, monkeypatch
):
    """Relative paths on the command line, then evaluation from another folder: the stored
    path is absolute, and metrics.md names both classifiers."""
    write_toy_folder(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    classifiers = json.dumps({"image": "cnn", "code": "reader.py:READER"})
    args = ["train", "--experiment", "folder", "--model", "mvae", "--out", "run"]
    args += ["--set", "data.path=data", "--set", f"data.classifiers={classifiers}", *TOY_TRAIN]
    assert main(args) == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    reader = f"{tmp_path / 'reader.py'}:READER"
    assert data["path"] == str(tmp_path / "data") and data["classifiers"]["code"] == reader
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    evaluate = ["evaluate", str(tmp_path / "run"), "--metrics", "coherence", "--no-progress"]
    assert main([*evaluate, "--device", "cpu", "--fid", "none"]) == 0
    capsys.readouterr()
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert 0 <= metrics["coherence"]["image->code"] <= 1
    used = metrics["provenance"]["coherence"]["classifiers"]
    assert used["code"]["source"] == reader and used["code"]["accuracy_here"] == 1.0
    assert used["image"]["kind"] == "image-data-image" and used["image"]["accuracy_here"] > 0.9
    assert used["image"]["source"].startswith(str(tmp_path / "data" / "dmvae_classifiers"))
    report = (tmp_path / "run" / "eval" / "metrics.md").read_text()
    assert "Classifiers that scored coherence" in report and reader in report


def test_a_classifier_typo_or_a_split_that_does_not_fit_stops_before_training(tmp_path, capsys):
    data = write_toy_folder(tmp_path / "data")
    base = ["train", "--experiment", "folder", "--model", "mvae", *TOY_TRAIN]
    base += ["--set", f"data.path={data}"]
    cases = [
        ('data.classifiers={"imgae": "cnn"}', "data.classifiers name unknown modalities"),
        ('data.classifiers={"code": "cnn"}', "needs uint8 images"),
        ('data.classifiers={"image": "nomodule:X"}', "cannot import 'nomodule'"),
        ('data.classifiers={"image": "resnet"}', "give 'package.module:attribute'"),
    ]
    for n, (setting, message) in enumerate(cases):
        out = tmp_path / f"run{n}"
        assert main([*base, "--set", setting, "--out", str(out)]) != 0
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()
    # test splits that do not fit the train split
    breakages = {
        "test split missing": (lambda: shutil.rmtree(data / "test"), "no folder"),
        "a modality missing": (lambda: (data / "test" / "code.pt").unlink(), "same files"),
        "another shape": (
            lambda: np.save(data / "test" / "image.npy", np.zeros((128, 9, 9), np.uint8)),
            "same shape and dtype",
        ),
        "labels on one side": (lambda: (data / "test" / "labels.npy").unlink(), "label both"),
    }
    for n, (what, (breaking, message)) in enumerate(breakages.items()):
        write_toy_folder(tmp_path / "data")
        breaking()
        out = tmp_path / f"broken{n}"
        assert main([*base, "--out", str(out)]) != 0, what
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (what, err)
        assert not out.exists(), what


def test_data_without_labels_skip_the_label_metrics_with_a_reason(tmp_path, capsys):
    data = write_toy_folder(tmp_path / "data", labels=False)
    out = tmp_path / "run"
    args = ["train", "--experiment", "folder", "--model", "mvae", *TOY_TRAIN]
    assert main([*args, "--set", f"data.path={data}", "--out", str(out)]) == 0
    summary = ["data", "summary", "--experiment", "folder", "--set", f"data.path={data}"]
    assert main(summary) == 0
    assert "not checkable (one label per row)" in capsys.readouterr().out
    evaluate = ["evaluate", str(out), "--fid", "classifier", "--no-progress", "--device", "cpu"]
    assert main(evaluate) == 0
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert "no labels" in metrics["skipped"]["latent"]
    assert "latent" not in metrics and (out / "eval" / "gmm.npz").exists()


def test_a_run_trained_from_python_is_evaluated_by_naming_its_experiment(
    tmp_path, toy_experiment, capsys, monkeypatch
):
    config = RunConfig.preset("toy-bars", "mvae", {"out": str(tmp_path / "run"), "max_steps": 4})
    train(config.override({"batch_size": 64, "progress": False}))
    EXPERIMENTS.pop("toy-bars")  # a new process: the name is not registered there
    try:
        evaluate = ["evaluate", str(tmp_path / "run"), "--metrics", "latent", "--no-progress"]
        assert main(evaluate) != 0
        assert "--experiment package.module:ATTRIBUTE" in capsys.readouterr().err
        (tmp_path / "toys.py").write_text(
            "import torch\n"
            "from dmvae.data import MultimodalData\n"
            "from dmvae.experiments import TensorExperiment\n"
            f"from {__name__} import toy_tensors\n"
            "train = MultimodalData.from_tensors(*toy_tensors(512, 0))\n"
            "test = MultimodalData.from_tensors(*toy_tensors(128, 1))\n"
            "EXP = TensorExperiment('toy-bars', train, test, likelihoods={'code': 'bernoulli'})\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        assert main([*evaluate, "--experiment", f"{tmp_path / 'toys.py'}:EXP"]) == 0
        metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
        assert metrics["latent"]["all"] > 0.5
    finally:
        EXPERIMENTS["toy-bars"] = toy_experiment


@pytest.mark.slow
def test_a_moved_folder_is_found_with_data_root_and_classifiers_can_be_added_later(
    tmp_path, capsys
):
    data = write_toy_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["train", "--experiment", "folder", "--model", "mvae", *TOY_TRAIN]
    assert main([*args, "--set", f"data.path={data}", "--out", str(out)]) == 0
    data.rename(tmp_path / "moved")
    evaluate = ["evaluate", str(out), "--metrics", "coherence", "--no-progress", "--fid", "none"]
    assert main(evaluate) != 0
    assert "no folder" in capsys.readouterr().err
    moved = ["--data-root", str(tmp_path / "moved")]
    assert main([*evaluate, *moved]) == 0
    assert (
        "no classifier for"
        in json.loads((out / "eval" / "metrics.json").read_text())["skipped"]["coherence"]
    )
    later = ["--set", 'data.classifiers={"image": "cnn", "code": "cnn"}']
    assert main([*evaluate, *moved, *later]) != 0
    assert "needs uint8 images" in capsys.readouterr().err
    reader = f"{tmp_path / 'reader.py'}:READER"
    later = ["--set", json.dumps({"image": "cnn", "code": reader}).join(["data.classifiers=", ""])]
    assert main([*evaluate, *moved, *later]) == 0
    assert "coherence" in json.loads((out / "eval" / "metrics.json").read_text())
    assert main([*evaluate, "--set", "data.likelihoods={}"]) != 0
    assert "change what the run was trained on" in capsys.readouterr().err


def test_float_images_in_0_255_get_a_hint():
    with pytest.warns(UserWarning, match="give them as uint8"):
        MultimodalData.from_tensors({"image": torch.randint(0, 256, (8, 1, 4, 4)).float()})


@pytest.mark.slow
def test_changed_test_data_under_the_same_name_give_fresh_distances(tmp_path, capsys):
    """The FID reference statistics are cached beside the data; new test images under the same
    folder and experiment name must give the numbers a fresh cache gives."""
    data = write_toy_folder(tmp_path / "data")
    out = tmp_path / "run"
    classifiers = 'data.classifiers={"image": "cnn"}'
    args = ["train", "--experiment", "folder", "--model", "mvae", *TOY_TRAIN, "--out", str(out)]
    assert main([*args, "--set", f"data.path={data}", "--set", classifiers]) == 0
    evaluate = ["evaluate", str(out), "--metrics", "fid", "--fid", "classifier", "--no-progress"]
    evaluate += ["--num-samples", "64", "--device", "cpu"]

    def distances() -> dict:
        assert main(evaluate) == 0, capsys.readouterr().err
        return json.loads((out / "eval" / "metrics.json").read_text())["fid"]

    before = distances()
    images = np.load(data / "test" / "image.npy")
    np.save(data / "test" / "image.npy", (images // 2 + np.uint8(40)).astype(np.uint8))
    changed = distances()
    shutil.rmtree(data / "dmvae_stats")
    fresh = distances()
    assert changed == fresh
    key = "class_conditional_leave_one_out_mean"
    assert changed[key] != pytest.approx(before[key])


def test_a_model_without_loss_fails_when_it_is_built():
    class Forgetful(MultimodalVAE):
        def encode(self, inputs, subset=None): ...

        def conditional_generate(self, given, targets, subset=None, **_): ...

    with pytest.raises(TypeError, match="abstract method.*loss"):
        Forgetful()


MODEL_FILE = """
from dataclasses import dataclass

import torch

from dmvae import objectives as obj
from dmvae.models import ModelSpec, MultimodalVAE


@dataclass(frozen=True)
class Config:
    latent_dim: int = 4


class Mean(MultimodalVAE):
    config_class = Config

    def setup(self):
        self.shared_dim = self.config.latent_dim

    def encode(self, inputs, subset=None):
        names = self.check_subset(subset)
        params = [self.encode_modality(m, inputs[m]) for m in names]
        return tuple(torch.stack(p).mean(0) for p in zip(*params))

    def loss(self, batch, kl_weight=1.0, update_auxiliary=None):
        names = self.modalities
        mu, logvar = self.encode(batch.inputs)
        z = obj.reparameterize(mu, logvar)
        lp = [self.likelihoods[m].log_prob(batch.targets[m], self.decoders[m](z)) for m in names]
        kl = obj.kl_normal_standard(mu, logvar)
        return {"loss": (kl_weight * kl - sum(lp)).mean()}

    def conditional_generate(self, given, targets, subset=None, n_per_input=1, **_):
        mu, _ = self.encode(given, subset or tuple(given))
        return self.decode({t: mu.repeat_interleave(n_per_input, 0) for t in targets})


SPEC = ModelSpec("filemean", Mean, Config)
NOT_A_SPEC = Mean
"""


def test_a_model_is_found_by_module_attribute_and_found_again_by_config_json(
    tmp_path, monkeypatch, toy_experiment, capsys
):
    """Trained from Python by "module:attribute", from the CLI by "file.py:attribute"."""
    (tmp_path / "mymodel.py").write_text(MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    for name in ("mymodel:SPEC", "mymodel.py:SPEC"):
        out = tmp_path / name.replace(":", "_")
        if name.endswith(".py:SPEC"):
            args = ["train", "--experiment", "toy-bars", "--model", name, "--out", str(out)]
            args += ["--max-steps", "2", "--batch-size", "16", "--no-progress"]
            assert main([*args, "--set", "model.latent_dim=3"]) == 0, capsys.readouterr().err
        else:
            config = RunConfig.preset("toy-bars", name, {"out": str(out), "max_steps": 2})
            train(config.override({"batch_size": 16, "progress": False, "model.latent_dim": 3}))
        assert json.loads((out / "config.json").read_text())["model"]["name"] == name
        MODELS.pop(name)  # as in a new process: load_run imports it again
        model, again = load_run(out)
        assert again.model == name and type(model).__name__ == "Mean" and model.shared_dim == 3
        assert MODELS[name].title == "FILEMEAN"
        MODELS.pop(name)
    with pytest.raises(ConfigError, match="names the class Mean, not a dmvae ModelSpec"):
        RunConfig.preset("toy-bars", "mymodel:NOT_A_SPEC")
    with pytest.raises(ConfigError, match="has no attribute 'NOPE'"):
        RunConfig.preset("toy-bars", "mymodel:NOPE")
    with pytest.raises(ConfigError, match="cannot import 'nomodule' for model"):
        RunConfig.preset("toy-bars", "nomodule:SPEC")
