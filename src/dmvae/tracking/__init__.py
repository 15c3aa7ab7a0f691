"""Where a run's numbers go: log.jsonl and TensorBoard in the run directory, MLflow and Weights &
Biases as extras, and your own loggers (`register_logger`). docs/tracking.md describes them."""

from dmvae.tracking import local, mlflow_logger, wandb_logger  # noqa: F401 - register the loggers
from dmvae.tracking.registry import (
    LOGGERS,
    TRACKERS_FILE,
    Logger,
    LoggerFactory,
    Loggers,
    LogSite,
    check_loggers,
    flat_numbers,
    open_loggers,
    register_logger,
)

__all__ = [
    "LOGGERS",
    "TRACKERS_FILE",
    "LogSite",
    "Logger",
    "LoggerFactory",
    "Loggers",
    "check_loggers",
    "flat_numbers",
    "open_loggers",
    "register_logger",
]
