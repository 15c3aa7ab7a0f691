"""The "wandb" logger (`pip install "dmvae[wandb]"`): one Weights & Biases run per run directory,
in the project WANDB_PROJECT (default "dmvae"), online or offline as wandb is configured
(WANDB_MODE=offline needs no account; `wandb sync` uploads later). Its files go to WANDB_DIR,
else into the run directory (RUN_DIR/wandb/). The run's id is kept in RUN_DIR/trackers.json,
so that a resumed training and the run's evaluations continue the same wandb run.

Values are logged against a "step" metric of their own (the training step), not wandb's
internal step counter, which a resumed run or a later evaluation could not log behind."""

from __future__ import annotations

import logging
import os
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


def import_wandb() -> Any:
    """The wandb package, or a ConfigError that says how to install it."""
    try:
        import wandb
    except ImportError:
        raise ConfigError(
            'the wandb logger needs Weights & Biases: pip install "dmvae[wandb]" (or drop '
            "wandb from train.loggers / --log-to)"
        ) from None
    return wandb


class WandbLogger(Logger):
    def __init__(self, site: LogSite) -> None:
        wandb = import_wandb()
        known = recorded_run(site, "wandb", "wandb")
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "dmvae",
            name=site.run_dir.name,
            id=known["id"] if known else None,
            resume="allow" if known else None,
            dir=os.environ.get("WANDB_DIR") or str(site.run_dir),
            job_type=site.stage,
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")
        if not known:
            remember(site.run_dir, "wandb", {"id": self.run.id, "project": self.run.project})
            log.info("logging to wandb run %s (project %s)", self.run.id, self.run.project)

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        self.run.log({**values, "step": step})

    def log_text(self, step: int, key: str, text: str) -> None:
        self.run.log({key: text, "step": step})

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.run.config.update(dict(config), allow_val_change=True)

    def close(self) -> None:
        self.run.finish()


register_logger("wandb", WandbLogger, check=import_wandb)
