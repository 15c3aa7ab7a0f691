"""How to evaluate a run (`EvalSettings`), checked on creation so that a bad value fails before
the run is loaded; its own module because the context and the suite both read it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dmvae.errors import ConfigError

FID_FEATURES = ("inception", "classifier", "none")
STYLES = ("prior", "posterior")


def flag(
    default: Any,
    help: str,
    *,
    name: str | None = None,
    metavar: str | None = "N",
    choices: Sequence[str] | None = None,
    none: str | None = None,
) -> Any:
    """A settings field that the command line offers as a flag, declared here once: its help
    sentence, its flag `name` (default: --field-name), `metavar`, `choices`, and how its
    default reads in the help where the value alone would not say it (`none`). The commands
    build their flags from this metadata (`cli.options.add_setting_flags`)."""
    meta = {"help": help, "flag": name, "metavar": metavar, "choices": choices, "none": none}
    return field(default=default, metadata={"cli": meta})


@dataclass(frozen=True)
class EvalSettings:
    """How to evaluate a run. `metrics=None` (or empty) means every registered metric that
    runs by default (`Metric.by_default`: all but the log-likelihoods); the
    names are checked against the registry when the evaluation is scheduled, before the run is
    loaded (`registry.check_metric_names`). `style=None` the model's default,
    `all_subsets=None` every subset for more than two modalities; `max_test` / `num_real` None:
    the whole test set. `loglik_samples` is K, the importance samples per test tuple of the
    log-likelihoods, which average over `loglik_test` tuples (None: all that `max_test` keeps).
    `experiment` replaces the run's experiment name (one registered in
    Python, named as "module:attribute"); `data_root` and `data` override where the data are
    and how they are scored (`load_run`), e.g. data={"classifiers": {"image": "cnn"}}.
    """

    metrics: Sequence[str] | None = None
    num_samples: int = flag(10000, "generated images per FID")
    fid_features: str = flag(
        "inception",
        "Inception FID (needs dmvae[fid]), the quick classifier-feature FD, or none",
        name="--fid",
        choices=FID_FEATURES,
    )
    batch_size: int = flag(1000, "test samples per batch of coherence and log-likelihoods")
    data_root: str | None = None
    experiment: str | None = flag(
        None,
        "the experiment object of a run trained from Python on an experiment registered there, "
        "as 'package.module:attribute' or 'file.py:attribute'",
        metavar="NAME",
        none="the name in config.json",
    )
    data: Mapping[str, Any] | None = None
    max_test: int | None = flag(
        None, "evaluate on a seeded subset of N test samples", none="the whole test set"
    )
    num_real: int | None = flag(
        None, "FID reference images per data set", none="the whole test set"
    )
    style: str | None = flag(
        None,
        "style of conditional samples",
        choices=STYLES,
        none="prior for DMVAE, posterior for baselines",
    )
    with_style: bool = flag(
        False,
        "DMVAE's latent probe classifies content and style together",
        none="content alone",
    )
    all_subsets: bool | None = None
    loglik_samples: int = flag(
        1000, "K, importance samples per test tuple of the log-likelihoods (metric loglik)"
    )
    loglik_test: int | None = flag(
        None,
        "the log-likelihoods average over a seeded subset of N test tuples",
        none="every tuple --max-test keeps",
    )
    seed: int = flag(0, "the evaluation's random seed: samples, test subsets, probes and GMM")
    progress: bool = True

    def __post_init__(self) -> None:
        metrics = (self.metrics,) if isinstance(self.metrics, str) else self.metrics
        object.__setattr__(self, "metrics", tuple(metrics) if metrics else None)
        check_choice("fid_features", [self.fid_features], FID_FEATURES)
        check_choice("style", [self.style], (*STYLES, None))
        _count("num_samples", self.num_samples, 1)
        _count("batch_size", self.batch_size, 1)
        _count("max_test", self.max_test, 1, optional=True)
        _count("num_real", self.num_real, 2, optional=True)
        _count("loglik_samples", self.loglik_samples, 1)
        _count("loglik_test", self.loglik_test, 1, optional=True)


def check_choice(name: str, values: Sequence[Any], valid: Sequence[Any]) -> None:
    """A ConfigError naming the values not in `valid`, and the valid ones."""
    unknown = [v for v in values if v not in valid]
    if unknown:
        shown = ", ".join(map(repr, unknown))
        raise ConfigError(f"unknown {name} {shown}: choose from {', '.join(map(repr, valid))}")


def _count(name: str, value: Any, low: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        valid = f"an integer >= {low}" + (" or None (the whole test set)" if optional else "")
        raise ConfigError(f"{name}={value!r} is invalid: use {valid}")
