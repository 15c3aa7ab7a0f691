"""dmvae: disentangling multimodal VAEs, their baselines, benchmark data and evaluation.

The public API, imported on first use (so that `import dmvae` stays cheap):
`RunConfig` (a typed run), `train`, `load_run`, `evaluate_run`, the registries
(`register_model`, `register_experiment`, `register_metric` with its `Metric` record, and
`list_models` / `list_experiments` of what is registered) and
`TensorExperiment` / `MultimodalData` for your own modalities.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "RunConfig": "dmvae.config",
    "TrainSettings": "dmvae.config",
    "train": "dmvae.training",
    "load_run": "dmvae.training",
    "TrainStep": "dmvae.training",
    "evaluate_run": "dmvae.evaluation.suite",
    "register_metric": "dmvae.evaluation.registry",
    "Metric": "dmvae.evaluation.metric",
    "register_model": "dmvae.models",
    "list_models": "dmvae.models",
    "ModelSpec": "dmvae.models",
    "Preset": "dmvae.models",
    "register_experiment": "dmvae.experiments",
    "list_experiments": "dmvae.experiments",
    "Experiment": "dmvae.experiments",
    "TensorExperiment": "dmvae.experiments",
    "MultimodalData": "dmvae.data",
    "Likelihood": "dmvae.likelihoods",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'dmvae' has no attribute {name!r}")
