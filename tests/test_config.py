"""The typed run config: presets, checked overrides, run files, config.json round trips and the
reading of run directories written before it existed."""

from __future__ import annotations

import json

import pytest

from dmvae import settings
from dmvae.cli import main
from dmvae.config import RunConfig, TrainSettings
from dmvae.errors import ConfigError
from dmvae.experiments import PairedMNISTData
from dmvae.models import MODELS, DMVAEConfig


def test_every_preset_builds_and_round_trips_through_config_json():
    from dmvae.experiments.base import EXPERIMENTS

    for name, spec in MODELS.items():
        # a preset may precede its experiment (MMVAE+'s "polymnist")
        for experiment in (e for e in spec.presets if e in EXPERIMENTS):
            config = RunConfig.preset(experiment, name)
            again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
            assert again == config, (experiment, name)


def test_presets_are_not_shared_with_the_registry():
    a = RunConfig.preset("mnist-svhn", "dmvae")
    a.model_config.beta["mnist"] = -1.0  # a user's mutation of their copy ...
    assert RunConfig.preset("mnist-svhn", "dmvae").model_config.beta["mnist"] == 100.0  # stays


def test_overrides_are_type_checked_and_unknown_names_list_the_valid_ones():
    config = RunConfig.preset("paired-mnist", "dmvae")
    changed = config.override({"lr": 3e-3, "model.gamma": 10, "data.modalities": 4})
    assert changed.train.lr == 3e-3 and changed.data.modalities == 4
    assert changed.model_config.gamma == 10.0 and isinstance(changed.model_config.gamma, float)
    assert config.train.lr == 1e-3  # frozen: the original is unchanged
    assert config.override({"model_config.gamma": 5}).model_config.gamma == 5.0  # old spelling
    assert config.override({"model.disc_betas": [0.1, 0.2]}).model_config.disc_betas == (0.1, 0.2)
    with pytest.raises(ConfigError, match=r"'model.gamma' must be float, got 'ten'"):
        config.override({"model.gamma": "ten"})
    with pytest.raises(ConfigError, match=r"'train.epochs' must be int, got 1.5"):
        config.override({"epochs": 1.5})
    with pytest.raises(ConfigError, match=r"'train.amp' must be bool, got 1"):
        config.override({"amp": 1})
    with pytest.raises(ConfigError, match=r"unknown model settings \['gama'\].*'model.gamma'"):
        config.override({"model.gama": 1})
    with pytest.raises(ConfigError, match="unknown setting 'gamma'.*'model.gamma'"):
        config.override({"gamma": 1})
    with pytest.raises(ConfigError, match="paired MNIST has 2 to 5 modalities, got 7"):
        config.override({"data.modalities": 7})
    with pytest.raises(ConfigError, match="train.batch_size must be at least 1"):
        config.override({"batch_size": 0})
    with pytest.raises(ConfigError, match="reconstruction='mean' is unknown"):
        config.override({"model.reconstruction": "mean"})
    with pytest.raises(ConfigError, match=r"unknown data settings \['dm'\]"):
        config.override({"data.dm": 3})  # an MNIST-SVHN setting


def test_coerce_handles_unions_tables_and_optionals():
    assert settings.coerce({"m0": 1, "m1": 2.5}, float | dict[str, float], "beta") == {
        "m0": 1.0,
        "m1": 2.5,
    }
    assert settings.coerce(None, int | None, "max_steps") is None
    with pytest.raises(ConfigError, match="must be float or a table of float by name"):
        settings.coerce({"m0": "x"}, float | dict[str, float], "beta")
    assert settings.parse_assignments(["a=1", "b=x", "c=[1, 2]", "d=true"]) == {
        "a": 1,
        "b": "x",
        "c": [1, 2],
        "d": True,
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        settings.parse_assignments(["novalue"])


def test_defaults_are_declared_once():
    assert RunConfig.preset("folder", "mvae", {"data.path": "x"}).train == TrainSettings()
    assert RunConfig.preset("paired-mnist", "dmvae").data == PairedMNISTData()
    assert DMVAEConfig().latent_dim == 20


def test_run_file_with_overrides_gives_the_same_config_as_flags(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text(
        'experiment = "paired-mnist"\n'
        '[model]\nname = "mvae"\nlatent_dim = 8\n'
        "[data]\nmodalities = 3\n"
        "[train]\nepochs = 2\nlr = 0.002\n"
    )
    from_file = RunConfig.from_file(run, overrides={"train.epochs": 5})
    from_flags = RunConfig.preset(
        "paired-mnist",
        "mvae",
        {"model.latent_dim": 8, "data.modalities": 3, "train.lr": 2e-3, "train.epochs": 5},
    )
    assert from_file == from_flags
    written = tmp_path / "config.json"
    written.write_text(json.dumps(from_file.to_dict()))
    assert RunConfig.from_file(written) == from_file  # a config.json is a run file too
    run.write_text('[model]\nname = "mvae"\n[optim]\nlr = 1\n')
    with pytest.raises(ConfigError, match=r"unknown keys \['optim'\]"):
        RunConfig.from_file(run)
    run.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RunConfig.from_file(run)


def test_cli_prints_the_resolved_config_of_a_run_file(tmp_path, capsys):
    run = tmp_path / "run.toml"
    run.write_text('[model]\nname = "mmvae"\nK = 3\n[train]\nout = "runs/x"\n')
    args = ["train", "--config", str(run), "--set", "train.lr=0.01", "--print-config"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"]["name"] == "mmvae" and printed["model"]["K"] == 3
    assert printed["train"]["lr"] == 0.01 and printed["train"]["amsgrad"] is True  # preset kept
    assert main(["train", "--set", "lr=1"]) == 2
    assert "--out RUN_DIR" in capsys.readouterr().err


def test_unknown_names_and_newer_files_are_refused():
    with pytest.raises(ConfigError, match="unknown model 'vae'.*dmvae"):
        RunConfig.preset("paired-mnist", "vae")
    with pytest.raises(ConfigError, match="unknown experiment 'celeba'"):
        RunConfig.preset("celeba", "dmvae")
    newer = {**RunConfig.preset().to_dict(), "version": 99}
    with pytest.raises(ConfigError, match="newer than this dmvae reads"):
        RunConfig.from_dict(newer)


def test_the_example_sweep_is_a_folder_of_valid_run_files():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "examples" / "sweep"
    configs = [RunConfig.from_file(path) for path in sorted(folder.glob("*.toml"))]
    assert len(configs) == 3
    assert sorted(c.model_config.gamma for c in configs) == [10.0, 100.0, 1000.0]
    assert len({c.train.out for c in configs}) == 3
    assert all(c.data.modalities == 3 and c.model_config.beta == 10.0 for c in configs)
