"""What every metric of the evaluation suite reads: the trained run, its data, the digit
classifiers and the one generator they all draw from, loaded once by `build_context`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from dmvae.data.batch import MultimodalData
from dmvae.data.sources import resolve_data_root
from dmvae.evaluation.classifiers import load_classifier
from dmvae.evaluation.density import GMMSampler
from dmvae.models.base import MultimodalVAE

if TYPE_CHECKING:
    from dmvae.evaluation.suite import EvalSettings


def default_style(model: MultimodalVAE) -> str:
    """DMVAE draws style from its prior; the baselines sample their posterior (paper, Fig. 2)."""
    return "prior" if model.has_style else "posterior"


@dataclass
class EvalContext:
    """One evaluation's shared state. Metrics draw from `generator` in registry order, so the
    numbers depend on which metrics ran before; `gmm` holds the ex-post GMM once fitted or
    loaded, and `timings` the seconds each step took."""

    run_dir: Path
    model: MultimodalVAE
    config: dict
    train: MultimodalData
    test: MultimodalData
    classifiers: dict[str, nn.Module]
    kinds: dict[str, str]
    generator: torch.Generator
    out_dir: Path
    settings: EvalSettings
    device: torch.device
    data_root: Path
    style: str
    gmm: GMMSampler | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def gmm_path(self) -> Path:
        return self.out_dir / "gmm.npz"

    def saved_gmm(self) -> GMMSampler | None:
        """The GMM fitted in this evaluation, else the one an earlier evaluation saved, else
        None: FIDs and grids reuse a GMM but never fit one."""
        if self.gmm is None and self.gmm_path.exists():
            self.gmm = GMMSampler.load(self.gmm_path).to(self.device)
        return self.gmm


def build_context(
    run_dir: str | Path, settings: EvalSettings, device: torch.device | str = "cpu"
) -> EvalContext:
    """Load the run, its train and (subsampled) test data and the classifiers of its
    modalities. The only place that asks `dmvae.experiments` and `dmvae.training` about a run,
    so that how runs are looked up can change here alone."""
    from dmvae.experiments import build_data, classifier_kinds
    from dmvae.training import load_run

    start = time.perf_counter()
    run_dir = Path(run_dir)
    model, config = load_run(run_dir, device)
    if settings.data_root:
        config["data"]["root"] = settings.data_root
    device = next(model.parameters()).device
    root = resolve_data_root(config["data"].get("root"))
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    test = build_data(config, "test", device).random_subset(settings.max_test, settings.seed)
    train = build_data(config, "train", device)
    kinds = classifier_kinds(config)
    loaded = {
        k: load_classifier(k, root, device, train_if_missing=True) for k in set(kinds.values())
    }
    return EvalContext(
        run_dir=run_dir,
        model=model,
        config=config,
        train=train,
        test=test,
        classifiers={m: loaded[k] for m, k in kinds.items()},
        kinds=kinds,
        generator=torch.Generator(device=device).manual_seed(settings.seed),
        out_dir=out_dir,
        settings=settings,
        device=device,
        data_root=root,
        style=settings.style or default_style(model),
        timings={"load": round(time.perf_counter() - start, 2)},
    )
