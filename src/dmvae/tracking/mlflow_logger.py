"""The "mlflow" logger (`pip install "dmvae[mlflow]"`): one MLflow run per run directory, in the
tracking store MLflow is configured with (MLFLOW_TRACKING_URI) and the experiment
MLFLOW_EXPERIMENT_NAME (default "dmvae"). Its id is kept in RUN_DIR/trackers.json, so that a
resumed training and the run's evaluations log into the same MLflow run."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from dmvae.errors import ConfigError
from dmvae.tracking.registry import (
    Logger,
    LogSite,
    recorded_run,
    register_logger,
    remember,
)

log = logging.getLogger(__name__)

# MLflow accepts letters, digits and "_-. /:" in metric and parameter names.
UNSAFE = re.compile(r"[^\w\-. /:]")


def import_mlflow() -> Any:
    """The mlflow package, or a ConfigError that says how to install it."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError(
            'the mlflow logger needs MLflow: pip install "dmvae[mlflow]" (or drop mlflow from '
            "train.loggers / --log-to)"
        ) from None
    return mlflow


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """config.json as MLflow parameters: "train.lr" -> "0.001"."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[UNSAFE.sub("_", f"{prefix}{key}")] = str(value)
    return out


class MLflowLogger(Logger):
    def __init__(self, site: LogSite) -> None:
        mlflow = import_mlflow()
        from mlflow.tracking import MlflowClient

        known = recorded_run(site, "mlflow", "MLflow")
        self.new = not known  # MLflow's parameters are set once, by the start that made the run
        if known:
            self.client = MlflowClient(known["tracking_uri"])
            self.run_id = known["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            uri = mlflow.get_tracking_uri()
            if uri.startswith("sqlite:") and importlib.util.find_spec("sqlalchemy") is None:
                raise ConfigError(
                    f"MLflow's default store {uri} needs the full mlflow package: set "
                    "MLFLOW_TRACKING_URI to your tracking server (or to file:./mlruns with "
                    "MLFLOW_ALLOW_FILE_STORE=true), or pip install mlflow"
                )
            self.client = MlflowClient(uri)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "dmvae")
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = (
                experiment.experiment_id if experiment else self.client.create_experiment(name)
            )
            run = self.client.create_run(
                experiment_id,
                run_name=site.run_dir.name,
                tags={"dmvae.run_dir": str(site.run_dir.resolve())},
            )
            self.run_id = run.info.run_id
            remember(site.run_dir, "mlflow", {"run_id": self.run_id, "tracking_uri": uri})
            log.info("logging to MLflow run %s at %s", self.run_id, uri)

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(UNSAFE.sub("_", k), float(v), now, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def log_text(self, step: int, key: str, text: str) -> None:
        self.client.set_tag(self.run_id, f"{key}.step_{step}", text)

    def log_config(self, config: Mapping[str, Any]) -> None:
        if not self.new:
            return
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(config).items()]
        for start in range(0, len(params), 100):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


register_logger("mlflow", MLflowLogger, check=import_mlflow)
