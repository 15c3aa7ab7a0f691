"""examples/shapes.py end to end on a small budget: your own modalities (a generated image and a
Bernoulli attribute vector) through the Python API and through the command line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from dmvae.cli import main
from dmvae.experiments import EXPERIMENTS

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shapes.py"


@pytest.fixture(scope="module")
def shapes():
    spec = importlib.util.spec_from_file_location("shapes_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    EXPERIMENTS.pop("shapes", None)


def test_the_example_trains_and_evaluates_through_the_python_api(tmp_path, shapes):
    out = tmp_path / "run"
    metrics = shapes.main(["--out", str(out), "--max-steps", "30"])
    assert metrics["experiment"] == "shapes" and "skipped" not in metrics
    assert set(metrics["coherence"]) >= {"image->attrs", "attrs->image", "cross_mean"}
    assert 0 <= metrics["joint_coherence"]["gmm"] <= 1
    assert metrics["latent"]["attrs"] > 0.9  # the shape is written in the attributes
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == "shapes" and config["model"]["name"] == "dmvae"
    files = {p.name for p in (out / "eval").iterdir()}
    assert {"conditional_attrs_to_image.png", "unconditional_gmm.png", "metrics.md"} <= files


def test_the_example_runs_from_the_command_line(tmp_path, shapes, monkeypatch, capsys):
    monkeypatch.chdir(EXAMPLE.parents[1])
    entry = tmp_path / "entry"
    args = ["train", "--experiment", "examples/shapes.py:EXPERIMENT", "--model", "mvae"]
    args += ["--max-steps", "20", "--batch-size", "128", "--no-progress", "--out", str(entry)]
    assert main(args) == 0, capsys.readouterr().err
    assert main(["evaluate", str(entry), "--fid", "none", "--no-progress"]) == 0
    metrics = json.loads((entry / "eval" / "metrics.json").read_text())
    assert metrics["experiment"] == "examples/shapes.py:EXPERIMENT" and "coherence" in metrics

    shapes.main(["--write-folder", str(tmp_path / "data")])
    folder = tmp_path / "folder"
    args = ["train", "--experiment", "folder", "--set", f"data.path={tmp_path / 'data'}"]
    args += ["--set", 'data.likelihoods={"attrs": "bernoulli"}', "--max-steps", "20"]
    args += ["--batch-size", "128", "--no-progress", "--out", str(folder)]
    classifiers = {
        "image": "examples/shapes.py:image_classifier",
        "attrs": "examples/shapes.py:READER",
    }
    args += ["--set", f"data.classifiers={json.dumps(classifiers)}"]
    assert main(args) == 0, capsys.readouterr().err
    assert main(["evaluate", str(folder), "--fid", "classifier", "--no-progress"]) == 0
    metrics = json.loads((folder / "eval" / "metrics.json").read_text())
    assert "skipped" not in metrics and "image->attrs" in metrics["coherence"]
    used = metrics["provenance"]["coherence"]["classifiers"]
    assert used["attrs"]["accuracy_here"] == 1.0 and used["image"]["accuracy_here"] > 0.9
    assert metrics["latent"]["attrs"] > 0.9


def test_the_incomplete_data_example_trains_and_imputes_the_missing_modality(tmp_path):
    """examples/incomplete.py on a small budget: 40 % of the training samples lack their tag;
    tags imputed from PNG files by `dmvae generate` name the class far above chance (20 %),
    and `model.impute` gives the same numbers."""
    path = EXAMPLE.parent / "incomplete.py"
    spec = importlib.util.spec_from_file_location("incomplete_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--out", str(tmp_path), "--epochs", "10", "--train-size", "2000"]
    scores = module.main(args)
    assert scores["python_matches_cli"] == 1.0
    assert scores["imputed_tag_accuracy"] > 0.6, scores
    assert len(list((tmp_path / "no-tag").glob("*.png"))) == 200


def run_example(name: str, argv: list[str]):
    """`main(argv)` of examples/<name>.py, imported as the script runs it."""
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLE.parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_the_quickstart_and_use_trained_tutorials_run(
    tmp_path, mnist_root, quick_classifiers, capsys
):
    """The two tutorials in a row: train and evaluate paired MNIST from Python, then load the
    run and impute, sample and encode with it."""
    run = tmp_path / "quickstart"
    argv = ["--out", str(run), "--max-steps", "20", "--data-root", str(mnist_root)]
    metrics = run_example("quickstart", [*argv, "--num-samples", "200", "--max-test", "300"])
    assert 0 <= metrics["coherence"]["cross_mean"] <= 1 and "gmm" in metrics["joint_coherence"]
    assert "cross coherence" in capsys.readouterr().out
    out = run_example("use_trained", [str(run)])
    assert out["m1"].shape == (32, 1, 28, 28) and out["joint/m0"].shape == (16, 1, 28, 28)
    assert out["shared"].shape[0] == 8 and set(out) >= {"style/m0", "style/m1"}
    assert {p.name for p in (run / "examples").iterdir()} == {"m0_to_m1.png", "joint.png"}
