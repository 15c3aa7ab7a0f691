"""The built-in loggers, which write into the run directory: "jsonl" (log.jsonl, one record per
logged step, and eval/log.jsonl, one record per evaluation) and "tensorboard" (tb/)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dmvae.tracking.registry import Logger, LogSite, register_logger


class JSONLLogger(Logger):
    """One JSON object per logged step: {"step": ..., **values}, and the notes given for that
    step as lists under their key ("warnings": [...]). Training writes RUN_DIR/log.jsonl (a
    resumed run appends), evaluations append to RUN_DIR/eval/log.jsonl, a history that
    eval/metrics.json (the latest numbers of each metric) does not keep."""

    def __init__(self, site: LogSite) -> None:
        if site.stage == "train":
            path, mode = site.run_dir / "log.jsonl", "a" if site.resume else "w"
        else:
            path, mode = site.run_dir / "eval" / "log.jsonl", "a"
            path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, mode)  # noqa: SIM115 - open for the whole run
        self.notes: dict[str, list[str]] = {}

    def log_text(self, step: int, key: str, text: str) -> None:
        self.notes.setdefault(key, []).append(text)

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        self.file.write(json.dumps({"step": step, **values, **self.notes}) + "\n")
        self.file.flush()
        self.notes = {}

    def close(self) -> None:
        self.file.close()


class TensorBoardLogger(Logger):
    """Scalars, notes and the config (as text) in RUN_DIR/tb/; an evaluation adds its metrics
    there under "eval/" at the checkpoint's step."""

    def __init__(self, site: LogSite) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(site.run_dir / "tb"))

    def log_metrics(self, step: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def log_text(self, step: int, key: str, text: str) -> None:
        self.writer.add_text(key, text, step)

    def log_config(self, config: Mapping[str, Any]) -> None:
        self.writer.add_text("config", f"```\n{json.dumps(config, indent=2)}\n```", 0)

    def close(self) -> None:
        self.writer.close()


register_logger("jsonl", JSONLLogger)
register_logger("tensorboard", TensorBoardLogger)
