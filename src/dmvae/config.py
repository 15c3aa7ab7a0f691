"""The run config: everything that defines a run, typed and frozen, from the command line (or a
TOML file) to RUN_DIR/config.json and back.

A run config has four sections, each a frozen dataclass whose defaults are declared once:
`train` (`TrainSettings`), `model` (the model's config class, found through the model
registry), `data` (the experiment's data config class, through the experiment registry) and
the two names `experiment` and `model`. Settings are addressed as "section.name"
("train.lr", "model.gamma", "data.modalities"; a bare "lr" means "train.lr") and every value
is type-checked (`dmvae.settings`) before a model, a data set or a file is touched.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dmvae import settings
from dmvae.errors import ConfigError
from dmvae.experiments import get_experiment
from dmvae.models import get_model
from dmvae.models.base import MultimodalVAE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

VERSION = 2
SECTIONS = ("train", "model", "data")
# Settings a resumed run may change: where it is (a moved run resumes), how long it runs, on
# what device, and how it reports (`loggers` included) and checkpoints.
RESUMABLE = (
    "out",
    "epochs",
    "max_steps",
    "device",
    "progress",
    "log_every",
    "checkpoint_every",
    "checkpoint_minutes",
    "amp",
    "loggers",
)


# Data settings that say where the data are and how they are scored, not what is trained on:
# a resumed run may change them, and `dmvae evaluate` may override them.
LOCATION = ("root", "download", "path", "classifiers")


@dataclass(frozen=True)
class TrainSettings:
    """How a run trains. `anneal_epochs`: linear KL warm-up; `likelihood_scale`: the Laplace
    scale of every modality; `max_steps` stops early; `amp`: bfloat16 autocast. A checkpoint
    is written every `checkpoint_every` steps and at least every `checkpoint_minutes`.
    `loggers`: where the mean loss terms go every `log_every` steps, by registered name
    (`dmvae.tracking`: jsonl, tensorboard, mlflow, wandb)."""

    out: str = "runs/default"
    epochs: int = 1
    batch_size: int = 1024
    lr: float = 1e-3
    amsgrad: bool = False
    anneal_epochs: float = 0.0
    likelihood_scale: float = 0.75
    drop_last: bool = True
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    checkpoint_every: int = 500
    checkpoint_minutes: float = 5.0
    log_every: int = 10
    progress: bool = True
    loggers: tuple[str, ...] = ("jsonl", "tensorboard")

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "checkpoint_every", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"train.max_steps must be at least 1, got {self.max_steps}")
        for name in ("lr", "likelihood_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        if self.checkpoint_minutes < 0:
            raise ConfigError(
                f"train.checkpoint_minutes must be >= 0 (0: by steps only), got "
                f"{self.checkpoint_minutes}"
            )
        if self.anneal_epochs < 0:
            raise ConfigError(f"train.anneal_epochs must be >= 0, got {self.anneal_epochs}")


@dataclass(frozen=True)
class RunConfig:
    """One run: experiment and model by registered name, and the typed settings of each."""

    experiment: str
    model: str
    model_config: Any
    data: Any
    train: TrainSettings = field(default_factory=TrainSettings)
    # Settings a config.json from before the version key lacks (`ModelSpec.unrecorded`): read
    # as today's defaults, so the run evaluates, but `train(resume=True)` refuses it.
    unrecorded: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def preset(
        cls,
        experiment: str = "paired-mnist",
        model: str = "dmvae",
        overrides: Mapping[str, Any] | None = None,
    ) -> RunConfig:
        """The paper's settings of `model` on `experiment` (the defaults where it has none),
        then `overrides` ("train.lr": 1e-3, "model.gamma": 10, ...)."""
        exp, spec = get_experiment(experiment), get_model(model)
        classes = {"model": spec.config, "data": exp.data_config}
        preset, given = spec.preset(exp.name), group(overrides or {}, classes)
        return cls(
            experiment=experiment,
            model=model,
            model_config=settings.build(spec.config, {**preset.model, **given["model"]}, "model"),
            data=settings.build(exp.data_config, given["data"], "data"),
            train=settings.build(TrainSettings, {**preset.train, **given["train"]}, "train"),
        )

    def override(self, values: Mapping[str, Any]) -> RunConfig:
        """A copy with `values` set, by dotted key; every value is type-checked."""
        given = group(values, {"model": type(self.model_config), "data": type(self.data)})
        return RunConfig(
            self.experiment,
            self.model,
            settings.replace(self.model_config, given["model"], "model"),
            settings.replace(self.data, given["data"], "data"),
            settings.replace(self.train, given["train"], "train"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The layout of config.json (and of a `--config` file)."""
        return {
            "version": VERSION,
            "experiment": self.experiment,
            "model": {"name": self.model, **settings.as_dict(self.model_config)},
            "data": settings.as_dict(self.data),
            "train": settings.as_dict(self.train),
        }

    @classmethod
    def from_dict(cls, run: Mapping[str, Any]) -> RunConfig:
        """A config.json as written (missing settings take their defaults). Files written
        before the version key existed are read as the code of that time meant them."""
        unrecorded = _unrecorded(run)
        run = _migrate(run) if "version" not in run else run
        check_version(run["version"], "config.json")
        model = dict(run.get("model") or {})
        name = model.pop("name", None)
        if not isinstance(name, str) or "experiment" not in run:
            raise ConfigError("a run config needs `experiment` and `model.name`")
        exp, spec = get_experiment(run["experiment"]), get_model(name)
        return cls(
            experiment=run["experiment"],
            model=name,
            model_config=settings.build(spec.config, model, "model"),
            data=settings.build(exp.data_config, run.get("data") or {}, "data"),
            train=settings.build(TrainSettings, run.get("train") or {}, "train"),
            unrecorded=unrecorded,
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        experiment: str | None = None,
        model: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> RunConfig:
        """A run from a TOML or JSON file with config.json's keys (any subset): the preset of
        its experiment and model, then the file's settings, then `overrides`. `experiment` and
        `model` (the CLI's flags) replace the file's names."""
        values = read_file(Path(path))
        if "version" in values:
            check_version(values.pop("version"), str(path))
        model_section = dict(values.pop("model", {}) or {})
        names = {
            "experiment": experiment or values.pop("experiment", None),
            "model": model or model_section.pop("name", None),
        }
        values.pop("experiment", None)
        model_section.pop("name", None)
        unknown = sorted(set(values) - {"data", "train"})
        if unknown:
            raise ConfigError(
                f"{path}: unknown keys {unknown}; a run file has experiment, [model], [data], "
                "[train]"
            )
        flat = {f"model.{k}": v for k, v in model_section.items()}
        for section in ("data", "train"):
            flat.update({f"{section}.{k}": v for k, v in (values.get(section) or {}).items()})
        given = {k: v for k, v in names.items() if v}  # else `preset`'s defaults
        return cls.preset(**given, overrides={**flat, **(overrides or {})})

    def build_model(self) -> MultimodalVAE:
        """The model this config describes, with the experiment's networks and likelihoods."""
        exp, spec = get_experiment(self.experiment), get_model(self.model)
        encoders, decoders = exp.networks(self.data, self.model_config.latent_dim)
        likelihoods = exp.likelihoods(self.data, self.train.likelihood_scale)
        return spec.model(encoders, decoders, likelihoods, self.model_config)

    def build_data(self, split: str, device: torch.device | str = "cpu"):
        """The run's train or test split, on `device` (a `MultimodalData`; the training split
        with the modalities the data settings make missing)."""
        return get_experiment(self.experiment).dataset(self.data, split, device)

    def check(self) -> None:
        """The experiment's checks of the data settings (`Experiment.check`), before training."""
        get_experiment(self.experiment).check(self.data)

    def identity(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed: the settings that change training
        (all but `RESUMABLE` ones and where the data are read from)."""
        d = self.to_dict()
        d["train"] = {k: v for k, v in d["train"].items() if k not in RESUMABLE}
        d["data"] = {k: v for k, v in d["data"].items() if k not in LOCATION}
        return d


def data_folder_key(experiment: str) -> str:
    """The data setting that names an experiment's data folder ("root", or the folder
    experiment's "path"), which `--data-root` sets."""
    fields = settings.field_types(get_experiment(experiment).data_config)
    key = next((k for k in ("root", "path") if k in fields), None)
    if key is None:
        raise ConfigError(f"--data-root: experiment {experiment!r} reads no data folder; drop it")
    return key


# `--set` keys that name the run's experiment or model (as config.json spells them) rather
# than set a value: the CLI takes them as --experiment / --model (`take_names`).
NAME_KEYS = {"experiment": "experiment", "model": "model", "model.name": "model"}


def take_names(values: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The experiment and model that `values` name (`NAME_KEYS`), and the other settings."""
    names: dict[str, str] = {}
    rest: dict[str, Any] = {}
    for key, value in values.items():
        if key not in NAME_KEYS:
            rest[key] = value
            continue
        name = NAME_KEYS[key]
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key!r} names the {name}: give a name, got {value!r}")
        if names.get(name, value) != value:
            raise ConfigError(
                f"the {name} is named twice, {names[name]!r} and {value!r}; give one name"
            )
        names[name] = value
    return names, rest


def group(
    values: Mapping[str, Any], classes: Mapping[str, type] | None = None
) -> dict[str, dict[str, Any]]:
    """Dotted settings by section: {"train": {"lr": ...}, "model": {...}, "data": {...}}.
    `classes`, the dataclass of each section, lets an unknown bare key be answered with the
    sections that do have it."""
    grouped: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in values.items():
        section, name = split_key(key, classes)
        grouped[section][name] = value
    return grouped


def split_key(key: str, classes: Mapping[str, type] | None = None) -> tuple[str, str]:
    """("train", "lr") for "train.lr" or "lr"; "model_config.X" is read as "model.X"."""
    if key in NAME_KEYS:
        raise ConfigError(
            f"{key!r} names the {NAME_KEYS[key]}, it is not a setting: choose it with "
            f"`dmvae train --{NAME_KEYS[key]} NAME` (or {key} in a --config file)"
        )
    section, dot, name = key.partition(".")
    if not dot:
        if key not in settings.field_types(TrainSettings):
            raise ConfigError(f"unknown setting {key!r}: {_suggest(key, classes)}")
        return "train", key
    section = "model" if section == "model_config" else section
    if section not in SECTIONS or not name:
        raise ConfigError(f"unknown setting {key!r}: keys start with train., model. or data.")
    return section, name


def _suggest(key: str, classes: Mapping[str, type] | None) -> str:
    """What an unknown bare key may have meant: only names that exist."""
    known = {"train": TrainSettings, **(classes or {})}
    fields = {f"{s}.{k}" for s, cls in known.items() for k in settings.field_types(cls)}
    same = sorted(f for f in fields if f.partition(".")[2] == key)
    if same:
        return f"a bare name is a train setting; did you mean {' or '.join(map(repr, same))}?"
    close = difflib.get_close_matches(key, sorted({f.partition(".")[2] for f in fields}), n=3)
    close = sorted(f for f in fields if f.partition(".")[2] in close)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    return (
        f"{hint}settings are named train.KEY, model.KEY or data.KEY; `dmvae train ... "
        "--print-config` lists them"
    )


def check_version(version: Any, where: str) -> None:
    """Refuse a config whose `version` this dmvae does not know: a newer one may mean its
    keys otherwise, and any other value is a typo."""
    if isinstance(version, int) and not isinstance(version, bool) and version == VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise ConfigError(
            f"{where}: config version {version} is newer than this dmvae reads (version "
            f"{VERSION}); upgrade dmvae"
        )
    raise ConfigError(
        f"{where}: unknown config version {version!r}; this dmvae reads version {VERSION} (and "
        f"files from before versions, which have no `version` key): set version = {VERSION} or "
        "remove the key"
    )


def read_file(path: Path) -> dict[str, Any]:
    """A run file's table: TOML (`.toml`) or JSON (config.json)."""
    if not path.exists():
        raise ConfigError(f"no config file {path}")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
        return json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} is not valid {path.suffix[1:].upper()} ({err})") from err


def _migrate(run: Mapping[str, Any]) -> dict[str, Any]:
    """A config.json from before the version key had one data section shared by all
    experiments: drop the keys this experiment never read."""
    run = json.loads(json.dumps(run))
    known = settings.field_types(get_experiment(run["experiment"]).data_config)
    run["data"] = {k: v for k, v in run.get("data", {}).items() if k in known}
    run["version"] = VERSION
    return run


def _unrecorded(run: Mapping[str, Any]) -> tuple[str, ...]:
    """The model's `unrecorded` settings that an unversioned config.json does not name."""
    if "version" in run or not isinstance(run.get("model"), Mapping):
        return ()
    spec = get_model(run["model"].get("name", ""))
    return tuple(k for k in spec.unrecorded if k not in run["model"])
