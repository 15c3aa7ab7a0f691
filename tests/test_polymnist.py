"""PolyMNIST: the reader's layout checks and cache, the generator's procedure, the CLI, training,
evaluation and the per-modality classifiers, all on tiny folders generated from the real MNIST."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dmvae import classifiers as clf
from dmvae.cli import main
from dmvae.data import polymnist
from dmvae.data.make_polymnist import add_background, assign, make_polymnist
from dmvae.errors import DataError

FLAT = (40, 90, 140, 190, 230)  # one flat grey background per modality: digits stand out


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory, mnist_root) -> Path:
    """60 train / 100 test samples (enough for per-digit statistics) x 5 modalities on flat
    backgrounds."""
    root = tmp_path_factory.mktemp("polymnist")
    flat = [torch.full((3, 40, 50), v, dtype=torch.uint8) for v in FLAT]
    make_polymnist(root, mnist_root=mnist_root, backgrounds=flat, train_size=60, test_size=100)
    return root


@pytest.fixture
def copy_root(tiny_root, tmp_path) -> Path:
    """A private copy that a test may break."""
    shutil.copytree(
        tiny_root / "MMNIST", tmp_path / "MMNIST", ignore=shutil.ignore_patterns("*.safetensors")
    )
    return tmp_path


def test_reader_pairs_same_label_mnist_digits(tiny_root, real_mnist):
    data = polymnist.load_polymnist(tiny_root, "train")
    assert data.modalities == ("m0", "m1", "m2", "m3", "m4") and len(data) == 60
    masks = np.packbits((real_mnist[0][:, 0] > 128).flatten(1).numpy(), axis=1)
    labels_of: dict[bytes, set[int]] = {}
    for mask, label in zip(masks, real_mnist[1].tolist(), strict=True):
        labels_of.setdefault(mask.tobytes(), set()).add(label)
    for k, m in enumerate(data.modalities):
        images = data.images[m]
        assert images.shape == (60, 3, 28, 28) and images.dtype == torch.uint8
        assert set(images.unique().tolist()) == {FLAT[k], 255 - FLAT[k]}
        digits = np.packbits((images[:, 0] != FLAT[k]).flatten(1).numpy(), axis=1)
        for digit, label in zip(digits, data.labels.tolist(), strict=True):
            assert label in labels_of.get(digit.tobytes(), set())  # an MNIST digit of the label
    assert len(polymnist.load_polymnist(tiny_root, "test", 2)) == 100


def write_layout(root: Path, modalities: dict[str, list[str]], size: int = 28) -> None:
    """A hand-made train split: the named PNG files in each modality folder."""
    for m, names in modalities.items():
        folder = root / "MMNIST" / "train" / m
        folder.mkdir(parents=True)
        for name in names:
            Image.new("RGB", (size, size), (9, 9, 9)).save(folder / name)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "PolyMNIST not found: .*MMNIST/train does not exist; download PolyMNIST.zip"),
        (
            {"m0": ["0.1.png"], "m1": ["0.1.png"]},
            "has m0, m1 but 3 modalities need m0..m2: the modality folder m2 is missing",
        ),
        (
            {"m0": ["0.1.png", "1.1.png"], "m1": ["0.1.png"], "m2": ["0.1.png"]},
            r"different numbers of images \(m0: 2, m1: 1, m2: 1\)",
        ),
        (
            {"m0": ["0.1.png"], "m1": ["a.png"], "m2": ["0.1.png"]},
            r"m1 holds 1 PNG file\(s\) not named INDEX.LABEL.png \(e.g. a.png\)",
        ),
        (
            {
                "m0": ["0.1.png", "0.2.png"],
                "m1": ["0.1.png", "0.2.png"],
                "m2": ["0.1.png", "0.3.png"],
            },
            "label mismatch across modalities at sample 1: m0/0.2.png but m2/0.3.png",
        ),
        (
            {"m0": ["0.1.png"], "m1": ["1.1.png"], "m2": ["0.1.png"]},
            "different file names across modalities at sample 0: m0/0.1.png but m1/1.1.png",
        ),
    ],
)
def test_broken_layouts_name_the_problem_and_the_fix(tmp_path, layout, message):
    write_layout(tmp_path, layout)
    with pytest.raises(DataError, match=message):
        polymnist.load_polymnist(tmp_path, "train", 3)


def test_wrong_image_size_names_the_file(tmp_path):
    write_layout(tmp_path, {"m0": ["0.1.png"], "m1": ["0.1.png"]}, size=32)
    with pytest.raises(DataError, match=r"m0/0.1.png is 32x32 pixels, PolyMNIST images are 28x28"):
        polymnist.load_polymnist(tmp_path, "train", 2)


def test_download_explains_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match="cannot be downloaded automatically.*make-polymnist"):
        polymnist.load_polymnist(tmp_path, "train", download=True)


def test_cache_is_used_and_rebuilt_when_the_file_list_changes(copy_root, monkeypatch):
    import os

    previous = os.umask(0o022)
    try:
        first = polymnist.load_polymnist(copy_root, "train")
    finally:
        os.umask(previous)
    cache = copy_root / "MMNIST" / "train" / polymnist.CACHE_NAME
    assert cache.stat().st_mode & 0o777 == 0o644  # a shared data folder serves everyone
    calls = []
    decode = polymnist.decode
    monkeypatch.setattr(polymnist, "decode", lambda *a: calls.append(1) or decode(*a))
    again = polymnist.load_polymnist(copy_root, "train")
    assert calls == [] and torch.equal(again.images["m3"], first.images["m3"])
    victim = sorted((copy_root / "MMNIST" / "train" / "m0").iterdir())[0].name
    for k in range(5):
        (copy_root / "MMNIST" / "train" / f"m{k}" / victim).unlink()
    rebuilt = polymnist.load_polymnist(copy_root, "train")
    assert len(calls) == 5 and len(rebuilt) == 59


def test_add_background_crops_and_inverts_the_digit_pixels():
    background = torch.arange(3 * 40 * 60).reshape(3, 40, 60).remainder(251).to(torch.uint8)
    digits = torch.zeros(4, 28, 28, dtype=torch.uint8)
    digits[:, 5:9, 10:20] = 200
    digits[:, 20, 3] = 128  # not above the threshold: stays background
    out = add_background(digits, background, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    xs, ys = rng.integers(0, 60 - 28, 4), rng.integers(0, 40 - 28, 4)
    for i in range(4):
        crop = background[:, ys[i] : ys[i] + 28, xs[i] : xs[i] + 28]
        expected = crop.clone()
        expected[:, 5:9, 10:20] = 255 - crop[:, 5:9, 10:20]
        assert torch.equal(out[i], expected)


def test_assign_permutes_each_digit_per_modality():
    labels = torch.tensor([0, 1, 0, 2, 0, 1])
    perms = dict(assign(labels, 3, torch.Generator().manual_seed(0)))
    for row in perms[0]:
        assert sorted(row.tolist()) == [0, 2, 4]
    assert perms[2].tolist() == [[3], [3], [3]] and perms[9].shape == (3, 0)


def test_make_polymnist_cli_writes_the_official_layout(mnist_root, tmp_path, capsys):
    args = ["data", "make-polymnist", "--data-root", str(mnist_root), "--out", str(tmp_path)]
    args += ["--train-size", "40", "--test-size", "20", "--modalities", "3", "--seed", "3"]
    assert main(args) == 0
    assert "40 train and 20 test samples x 3 modalities" in capsys.readouterr().out
    train = tmp_path / "MMNIST" / "train"
    assert sorted(p.name for p in train.iterdir()) == ["m0", "m1", "m2"]
    names = {p.name for p in (train / "m0").iterdir()}
    assert len(names) == 40 and names == {p.name for p in (train / "m2").iterdir()}
    assert "0.0.png" in names or "0.1.png" in names
    with Image.open(train / "m1" / sorted(names)[0]) as img:
        assert img.size == (28, 28) and img.mode == "RGB"
    assert main(args) == 1  # never replaces an existing folder
    assert "exists; remove it" in capsys.readouterr().err
    summary = ["data", "summary", "--experiment", "polymnist", "--modalities", "3"]
    assert main([*summary, "--data-root", str(tmp_path)]) == 0
    # PolyMNIST's rows share their label by construction: nothing to check (`from_tensors`)
    assert "labels agree across modalities: not checkable" in capsys.readouterr().out


def test_classifiers_per_modality_are_keyed_by_the_data(copy_root, capsys):
    args = ["classifiers", "train", "--dataset", "polymnist", "--data-root", str(copy_root)]
    assert main([*args, "--epochs", "1", "--no-progress", "--device", "cpu"]) == 0
    kinds = clf.polymnist_kinds(copy_root)
    assert len(kinds) == 5 and len(set(kinds)) == 5
    for kind in kinds:
        key = clf.kind_key(kind, copy_root)
        assert clf.find_classifier(clf.classifier_dirs(copy_root), key) is not None
    model = clf.load_classifier(kinds[2], copy_root)
    assert clf.classifier_features(model, torch.zeros(2, 3, 28, 28)).shape == (2, 128)
    image = sorted((copy_root / "MMNIST" / "test" / "m2").iterdir())[0]
    Image.new("RGB", (28, 28), (1, 2, 3)).save(image)  # other images: another classifier
    changed = clf.polymnist_kinds(copy_root)
    assert changed[2] != kinds[2] and changed[:2] == kinds[:2]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dmvae", "mopoe", "mmvaeplus"])
def test_train_and_evaluate_on_a_tiny_folder(tiny_root, tmp_path, model):
    run = tmp_path / "run"
    args = ["train", "--experiment", "polymnist", "--model", model, "--data-root", str(tiny_root)]
    args += ["--max-steps", "3", "--batch-size", "20", "--no-progress", "--device", "cpu"]
    assert main([*args, "--out", str(run)]) == 0
    evaluate = ["evaluate", str(run), "--metrics", "coherence", "latent", "fid", "grids"]
    evaluate += ["--fid", "classifier", "--num-samples", "40"]
    assert main([*evaluate, "--batch-size", "30", "--no-progress", "--device", "cpu"]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert "m0+m1+m2+m3->m4" in metrics["coherence"] and "m0->m1" in metrics["coherence"]
    assert 0 <= metrics["coherence"]["leave_one_out_mean"] <= 1
    assert set(metrics["latent"]) >= {"all", "m0"}
    assert metrics["fid"]["features"] == "classifier"
    assert metrics["fid"]["class_conditional_leave_one_out_mean"] >= 0
    assert "coherence from 4 (%)" in (run / "eval" / "metrics.md").read_text()
    assert (run / "eval" / "conditional_m0_to_m1.png").exists()


def test_quick_cells_and_the_report_layout(tmp_path):
    from dmvae.reproduce.cells import Cell, cell_config, evaluation_settings, grid
    from dmvae.reproduce.polymnist import polymnist_report

    cells = grid("polymnist", ["dmvae", "mvae"], [2, 3], [0])
    assert {c.modalities for c in cells} == {5}
    config = cell_config(cells[0], "quick", tmp_path)
    assert config.data.train_size == 10000 and config.data.modalities == 5
    assert config.train.likelihood_scale == 0.1  # DMVAE keeps the scale its weights were tuned for
    settings = evaluation_settings("polymnist", "quick")
    assert settings["all_subsets"] is True and settings["max_test"] == 2000
    coherence = {"m0->m1": 0.2, "m2->m1": 0.4, "m0+m1->m2": 0.6, "leave_one_out_mean": 0.9}
    metrics = {"coherence": coherence, "latent": {"all": 0.8, "m0": 0.5, "m1": 0.7}}
    metrics["fid"] = {"features": "classifier", "class_conditional_leave_one_out_mean": 3.0}
    metrics["loglik"] = {"joint": -1234.56, "leave_one_out_mean": -300.0}
    assert settings["loglik_test"] == 100 and "loglik" in settings["metrics"]
    report = polymnist_report({Cell("polymnist", "mvae", 5, 0): metrics}, "# header")
    row = next(line for line in report.splitlines() if line.startswith("| MVAE"))
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "MVAE",
        "90.0",
        "30.0",
        "60.0",
        "–",
        "–",
        "80.0",
        "60.0",
        "3.0",
        "-1234.6",
        "-300.0",
    ]
