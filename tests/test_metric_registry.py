"""A metric of your own, registered beside the paper's: the suite schedules it, merges its
entries into eval/metrics.json with their provenance, marks them stale at another checkpoint
and lists it in metrics.md like the built-in metrics; `--metrics` offers it."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dmvae.errors import ConfigError
from dmvae.evaluation import suite
from dmvae.evaluation.context import EvalContext
from dmvae.evaluation.metric import Metric, Needs
from dmvae.evaluation.registry import METRICS, register_metric, unregister_metric
from dmvae.evaluation.report import summary_table


def spread(ctx: EvalContext) -> dict:
    """A toy metric whose number depends on the setting `num_samples`."""
    return {"spread": {"value": ctx.settings.num_samples / 2}}


@pytest.fixture
def own_metric():
    metric = register_metric(
        Metric("spread", spread, entries=("spread",), settings=("num_samples",))
    )
    try:
        yield metric
    finally:
        unregister_metric("spread")
    assert "spread" not in METRICS


def toy_context(run_dir: Path, settings, device="cpu", step: int = 3) -> EvalContext:
    """A context without a trained run: two non-image, unlabelled modalities, no classifiers."""
    out_dir = Path(run_dir) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    return EvalContext(
        run_dir=Path(run_dir),
        model=SimpleNamespace(modalities=("a", "b"), has_style=False),
        config=SimpleNamespace(model="mine", experiment="toy", train=SimpleNamespace(loggers=())),
        train=None,
        test=SimpleNamespace(labelled=False, is_image=lambda m: False),
        classifiers={},
        kinds={},
        generator=torch.Generator().manual_seed(settings.seed),
        out_dir=out_dir,
        settings=settings,
        device=torch.device(device),
        cache_root=Path(run_dir),
        style="posterior",
        run_table=summary_table,
        step=step,
        timings={"load": 0.0},
    )


def test_a_registered_metric_is_computed_merged_marked_stale_and_reported(
    tmp_path, monkeypatch, own_metric
):
    from dmvae.cli import main

    monkeypatch.setattr(suite, "build_context", toy_context)
    path = tmp_path / "eval" / "metrics.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"budget": "quick", "mine": [1]}))  # keys of other tools stay
    result = suite.evaluate_run(tmp_path, metrics=["spread"], num_samples=100, progress=False)
    assert result["spread"] == {"value": 50.0} and result["budget"] == "quick"
    assert json.loads(path.read_text()) == result and list(result["seconds"]) == ["load", "spread"]
    record = result["provenance"]["spread"]
    assert record["settings"] == {"num_samples": 100} and record["step"] == 3
    assert "stale" not in record and "classifiers" not in record

    # The paper's metrics that need what these data lack are skipped; spread is kept.
    result = suite.evaluate_run(tmp_path, metrics=["coherence", "latent"], progress=False)
    assert result["spread"] == {"value": 50.0}
    assert set(result["skipped"]) == {"coherence", "latent"}
    assert "the data have no labels" in result["skipped"]["latent"]

    # Trained further: the kept result is stale until it is computed again.
    monkeypatch.setattr(suite, "build_context", lambda *a, **k: toy_context(*a, **k, step=9))
    result = suite.evaluate_run(tmp_path, metrics=["latent"], progress=False)
    assert result["provenance"]["spread"]["stale"] is True and result["spread"]["value"] == 50
    md = (tmp_path / "eval" / "metrics.md").read_text()
    assert "**Stale:** the results of spread come from another checkpoint" in md
    assert "| spread (stale) |" in md

    # The command line offers it; a new setting it depends on is recorded, the mark cleared.
    args = ["evaluate", str(tmp_path), "--metrics", "spread", "--num-samples", "300"]
    assert main([*args, "--no-progress", "--device", "cpu"]) == 0
    result = json.loads(path.read_text())
    assert result["spread"] == {"value": 150.0}
    record = result["provenance"]["spread"]
    assert record["settings"] == {"num_samples": 300} and "stale" not in record
    md = (tmp_path / "eval" / "metrics.md").read_text()
    assert "Stale" not in md and "| spread |" in md


def test_a_metric_needs_what_it_declares_and_owns_its_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "build_context", toy_context)
    register_metric(Metric("styled", spread, entries=("spread",), needs=Needs(style=True)))
    try:
        result = suite.evaluate_run(tmp_path, metrics=["styled"], progress=False)
        assert result["skipped"] == {"styled": "the model has no modality-specific latents"}
        with pytest.raises(ConfigError, match="registered already"):
            register_metric(Metric("styled", spread))
        with pytest.raises(ConfigError, match=r"entries owned by others: \{'spread': 'styled'"):
            register_metric(Metric("other", spread, entries=("spread",)))
        with pytest.raises(ConfigError, match=r"entries owned by others: \{'step'"):
            register_metric(Metric("other", spread, entries=("step",)))
        with pytest.raises(ConfigError, match="unknown setting of metric 'other' 'n'"):
            register_metric(Metric("other", spread, settings=("n",)))
    finally:
        unregister_metric("styled")
    with pytest.raises(ConfigError, match="unknown metric 'styled'"):
        suite.evaluate_run(tmp_path, metrics=["styled"])


def test_outdated_names_the_metrics_an_evaluation_must_compute(tmp_path, monkeypatch, own_metric):
    """What reproduce recomputes in a scored cell: a metric without results, with stale ones,
    or with results of another seed or setting; a resolved setting left None matches."""
    from dmvae.evaluation.metrics_file import outdated
    from dmvae.evaluation.settings import EvalSettings

    monkeypatch.setattr(suite, "build_context", toy_context)
    settings = EvalSettings(metrics=["spread", "coherence"], num_samples=100, progress=False)
    assert outdated({}, settings) == ["coherence", "spread"]
    done = suite.evaluate_run(tmp_path, settings=settings)  # coherence: skipped, no classifier
    assert outdated(done, settings) == ["coherence"]
    assert outdated(done, EvalSettings(metrics=["spread"], num_samples=100)) == []
    assert outdated(done, EvalSettings(metrics=["spread"], num_samples=200)) == ["spread"]
    assert outdated(done, EvalSettings(metrics=["spread"], num_samples=100, seed=1)) == ["spread"]
    done["provenance"]["spread"]["stale"] = True
    assert outdated(done, EvalSettings(metrics=["spread"], num_samples=100)) == ["spread"]
    # `style` resolves per model: None asks for the model's default, whatever it resolved to
    record = {"step": 3, "seed": 0, "settings": {"style": "prior", "max_test": None}}
    old = {"provenance": {"grids": record}}
    assert outdated(old, EvalSettings(metrics=["grids"])) == []
    assert outdated(old, EvalSettings(metrics=["grids"], style="posterior")) == ["grids"]
    assert outdated(old, EvalSettings(metrics=["grids"], max_test=50)) == ["grids"]
