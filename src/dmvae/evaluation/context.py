"""What every metric of the evaluation suite reads: the trained run, its data, its experiment's
classifiers and the one generator they all draw from, loaded once by `build_context`."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dmvae.checkpoints import read_metadata
from dmvae.classifiers import accuracy, describe
from dmvae.config import RunConfig
from dmvae.data.batch import MultimodalData
from dmvae.data.sources import user_cache_dir
from dmvae.evaluation.density import GMMSampler
from dmvae.evaluation.report import run_table_of
from dmvae.evaluation.settings import EvalSettings
from dmvae.experiments import get_experiment
from dmvae.models.base import MultimodalVAE
from dmvae.training import CHECKPOINT, load_run


def default_style(model: MultimodalVAE) -> str:
    """DMVAE draws style from its prior; the baselines sample their posterior (paper, Fig. 2)."""
    return "prior" if model.has_style else "posterior"


@dataclass
class EvalContext:
    """One evaluation's shared state. Metrics draw from `generator` in registry order, so the
    numbers depend on which metrics ran before; `step` is the checkpoint's training step (the
    provenance of every result), `gmm` holds the ex-post GMM once fitted or loaded,
    `timings` the seconds each step took, `while_training` whether the run's training was
    still running (`--allow-running`), and `notes` what a metric records in its provenance
    about its own results (probes that did not converge)."""

    run_dir: Path
    model: MultimodalVAE
    config: RunConfig
    train: MultimodalData
    test: MultimodalData
    classifiers: dict[str, nn.Module]
    kinds: dict[str, str]
    generator: torch.Generator
    out_dir: Path
    settings: EvalSettings
    device: torch.device
    cache_root: Path
    style: str
    run_table: Callable[[dict], list[str]]
    step: int | None = None
    gmm: GMMSampler | None = None
    timings: dict[str, float] = field(default_factory=dict)
    while_training: bool = False
    notes: dict[str, dict] = field(default_factory=dict)

    @property
    def gmm_path(self) -> Path:
        return self.out_dir / "gmm.npz"

    @functools.cached_property
    def classifier_info(self) -> dict[str, dict]:
        """Per modality, which classifier scores it (`classifiers.describe`: kind, source,
        accuracy when it was trained, weights digest) and its accuracy on the test split's
        images, the provenance of every coherence and classifier-feature distance."""
        source = f"given by experiment {self.config.experiment!r}"
        info = {m: describe(classifier, source) for m, classifier in self.classifiers.items()}
        if self.test.labelled:  # on the split's distinct images, not its pairs
            for m, classifier in self.classifiers.items():
                info[m]["accuracy_here"] = accuracy(classifier, *self.test.labelled_images(m))
        return info

    def saved_gmm(self) -> GMMSampler | None:
        """The GMM fitted in this evaluation, else the one an earlier evaluation saved, else
        None: FIDs and grids reuse a GMM but never fit one."""
        if self.gmm is None and self.gmm_path.exists():
            self.gmm = GMMSampler.load(self.gmm_path).to(self.device)
        return self.gmm


def build_context(
    run_dir: str | Path, settings: EvalSettings, device: torch.device | str = "cpu"
) -> EvalContext:
    """Load the run (with the settings' experiment and data overrides), its train and
    (subsampled) test data and the classifiers its experiment has (none for data without them:
    the metrics that need them are then skipped)."""
    start = time.perf_counter()
    run_dir = Path(run_dir)
    model, config = load_run(
        run_dir, device, settings.experiment, settings.data, settings.data_root
    )
    step = int(read_metadata(run_dir / CHECKPOINT)["info"]["step"])
    device = next(model.parameters()).device
    experiment = get_experiment(config.experiment)
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Metrics compare every modality of a sample: incomplete data are scored on complete rows.
    test = config.build_data("test", device).complete_rows()
    test = test.random_subset(settings.max_test, settings.seed)
    return EvalContext(
        run_dir=run_dir,
        model=model,
        config=config,
        train=config.build_data("train", device).complete_rows(),
        test=test,
        classifiers=experiment.classifiers(config.data, device, progress=settings.progress),
        kinds=experiment.classifier_kinds(config.data),
        generator=torch.Generator(device=device).manual_seed(settings.seed),
        out_dir=out_dir,
        settings=settings,
        device=device,
        cache_root=experiment.data_root(config.data) or user_cache_dir(),
        style=settings.style or default_style(model),
        run_table=run_table_of(config.experiment),
        step=step,
        timings={"load": round(time.perf_counter() - start, 2)},
    )
