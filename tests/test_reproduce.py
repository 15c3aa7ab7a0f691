"""`dmvae reproduce`: grids run end to end on tiny budgets, resume, and report honestly."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from conftest import fake_svhn

from dmvae import classifiers as clf
from dmvae import reproduce as rp
from dmvae.cli import main
from dmvae.errors import ConfigError
from dmvae.markdown import table

TINY = ["--set", "max_steps=2", "--set", "batch_size=32", "--max-test", "200"]
TINY += ["--loglik-samples", "4"]  # K: the estimator, not its cost, is what these runs test


def test_grid_order_budget_and_overrides(tmp_path):
    cells = rp.grid("paired-mnist", ["dmvae", "mvae"], [2, 3], [0, 1])
    assert len(cells) == 8 and [c.seed for c in cells[:4]] == [0] * 4
    assert rp.grid("mnist-svhn", ["mvae"], [2, 3, 4], [0]) == [rp.Cell("mnist-svhn", "mvae", 2, 0)]
    cell = rp.Cell("paired-mnist", "mmvae", 4, 3)
    paper = rp.cell_config(cell, "paper", tmp_path)
    quick = rp.cell_config(cell, "quick", tmp_path, {"lr": 0.5})
    assert paper.train.epochs == 30 and paper.model_config.K == 30
    assert quick.model_config.K == rp.QUICK[("paired-mnist", "mmvae")]["model.K"]
    assert quick.train.lr == 0.5 and quick.data.modalities == 4 and quick.train.seed == 3
    assert quick.train.out == str(tmp_path / "M4" / "mmvae" / "seed3")
    svhn = rp.cell_config(rp.Cell("mnist-svhn", "mvae", 2, 0), "quick", tmp_path)
    assert svhn.train.epochs == 3 and not hasattr(svhn.data, "modalities")
    with pytest.raises(ConfigError, match="has no reproduction report"):
        rp.grid("folder", ["mvae"], [2], [0])
    with pytest.raises(ConfigError, match="unknown budget"):
        rp.cell_config(cell, "tiny", tmp_path)


def test_markdown_table_layout():
    lines = table(["M", "DMVAE"], [["2", "64.8"], ["3", "–"]])
    assert lines == ["| M | DMVAE |", "|---|---|", "| 2 | 64.8 |", "| 3 | – |"]
    assert table(["estimate"], [["log p(a | b)"]])[2] == "| log p(a \\| b) |"  # one cell


def test_claims_are_checked_against_the_numbers():
    series = {
        "dmvae": {
            2: {"coherence": [0.5, 0.6], "fid": [3.0]},
            5: {"coherence": [0.9], "fid": [2.0]},
        },
        "mmvae": {2: {"coherence": [0.7], "fid": [1.0]}, 5: {"coherence": [0.7], "fid": [9.0]}},
    }
    claims = "\n".join(rp.paired_mnist_claims(series))
    assert "DMVAE leave-one-out coherence 55.0 → 90.0 from M=2 to M=5: rises" in claims
    assert "MMVAE leave-one-out coherence 70.0 → 70.0 from M=2 to M=5: stays flat" in claims
    assert "M=2: MMVAE, M=5: DMVAE" in claims


@pytest.mark.slow
def test_paired_mnist_grid_runs_resumes_and_extends(tmp_path, mnist_root, quick_classifiers):
    out = tmp_path / "grid"
    args = ["reproduce", "paired-mnist", "--modalities", "2", "3", "--num-samples", "200"]
    args += TINY + ["--data-root", str(mnist_root), "--no-progress", "--out", str(out)]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    assert (out / "figure3.png").stat().st_size > 1000
    for model in rp.MODELS_ORDER:
        for m in (2, 3):
            metrics = json.loads((out / f"M{m}" / model / "seed0/eval/metrics.json").read_text())
            assert 0.0 <= metrics["coherence"]["leave_one_out_mean"] <= 1.0
            assert metrics["fid"]["class_conditional_leave_one_out_mean"] > 0
            assert metrics["budget"] == "quick"
    assert "| 3 |" in report and "Lowest class-specific" in report
    assert "Linear probes of the digit" in report and "DMVAE style" in report
    dmvae = json.loads((out / "M2/dmvae/seed0/eval/metrics.json").read_text())
    assert set(dmvae["latent"]) == {"m0", "m1", "all"} and set(dmvae["latent_style"]) == {
        "m0",
        "m1",
    }

    done = out / "M2" / "dmvae" / "seed0" / "eval" / "metrics.json"
    assert dmvae["provenance"]["loglik"]["settings"]["loglik_samples"] == 4
    assert math.isfinite(dmvae["loglik"]["leave_one_out_mean"]) and "Test log-likelihoods" in report
    # A cell scored before a metric joined the layout computes that metric alone.
    del dmvae["loglik"], dmvae["provenance"]["loglik"]
    done.write_text(json.dumps(dmvae))
    assert main(args) == 0
    again = json.loads(done.read_text())
    assert again["provenance"]["coherence"] == dmvae["provenance"]["coherence"]
    assert again["provenance"]["loglik"]["after"] == [] and "joint" in again["loglik"]
    assert again["train_seconds"] == dmvae["train_seconds"]
    stamp = done.stat().st_mtime_ns
    extra = ["--models", "mvae", "--modalities", "2", "--seeds", "0", "1"]
    assert main(args + extra) == 0
    assert done.stat().st_mtime_ns == stamp  # complete cells are skipped
    assert (out / "M2" / "mvae" / "seed1" / "eval" / "metrics.json").exists()
    assert "(n=2)" in (out / "report.md").read_text()
    # Cells run by several commands (e.g. parallel processes): the report names them all.
    (out / "commands.txt").write_text("dmvae reproduce A\ndmvae reproduce B\ndmvae reproduce A\n")
    assert main(["reproduce", "paired-mnist", "--report-only", "--out", str(out)]) == 0
    header = (out / "report.md").read_text().split("## ")[0]
    assert "Commands (in order):\n- `dmvae reproduce A`\n- `dmvae reproduce B`\n" in header

    with pytest.raises(ConfigError, match="other settings"):
        rp.run_cell(rp.Cell("paired-mnist", "mvae", 2, 0), "paper", out)


@pytest.mark.slow
def test_reproduce_runs_the_successor_models(tmp_path, mnist_root, quick_classifiers):
    out = tmp_path / "grid"
    args = ["reproduce", "paired-mnist", "--models", "mopoe", "mmvaeplus", "--modalities", "3"]
    args += ["--num-samples", "200", *TINY, "--data-root", str(mnist_root), "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    for model in ("mopoe", "mmvaeplus"):
        metrics = json.loads((out / "M3" / model / "seed0/eval/metrics.json").read_text())
        assert 0.0 <= metrics["coherence"]["leave_one_out_mean"] <= 1.0
        assert metrics["fid"]["class_conditional_leave_one_out_mean"] > 0
    assert set(metrics["latent_style"]) == {"m0", "m1", "m2"}  # MMVAE+ has style to probe
    report = (out / "report.md").read_text()
    assert "| M | MoPoE | MMVAE+ |" in report
    assert "| MoPoE | 3 | 0 |" in report and "MMVAE+ style" in report


@pytest.mark.slow
def test_jobs_run_cells_at_once_and_a_failing_cell_lets_the_others_finish(
    tmp_path, mnist_root, quick_classifiers, capsys
):
    """Two cells in two processes; the MVAE cell fails (a DMVAE-only setting), the DMVAE cell
    finishes, is reported, and the command exits 1 naming the failed cell and why."""
    out = tmp_path / "grid"
    args = ["reproduce", "paired-mnist", "--models", "dmvae", "mvae", "--modalities", "2"]
    args += ["--jobs", "2", "--set", "model.disc_width=125", "--num-samples", "200", *TINY]
    args += ["--data-root", str(mnist_root), "--no-progress", "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 cell(s) failed" in err[0]
    assert "mvae M=2 seed=0: ConfigError" in err[0] and "disc_width" in err[0]
    assert (out / "M2/dmvae/seed0/eval/metrics.json").exists()
    assert not (out / "M2/mvae/seed0/eval/metrics.json").exists()
    assert "| DMVAE | 2 | 0 |" in (out / "report.md").read_text()


def test_parallel_cells_share_the_cpu_and_spread_over_gpus(monkeypatch):
    import torch

    from dmvae.reproduce.runner import cell_device

    assert cell_device("cpu", 3) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [cell_device("auto", i) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert cell_device("cpu", 1) == "cpu"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert cell_device("cuda", 1) == "cuda"
    with pytest.raises(ConfigError, match="jobs"):
        rp.reproduce("paired-mnist", "unused", jobs=0)


@pytest.mark.slow
def test_mnist_svhn_reproduction_end_to_end_on_synthetic_svhn(
    tmp_path, mnist_root, quick_classifiers
):
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(mnist_root / "MNIST", root / "MNIST")
    fake_svhn(root, "train", [30] * 10, seed=1)
    digits = fake_svhn(root, "test", [20] * 10, seed=2)
    images = (
        torch.from_numpy(digits * 20).to(torch.uint8)[:, None, None, None].expand(-1, 3, 32, 32)
    )
    svhn = clf.train_classifier("svhn", images, torch.from_numpy(digits), epochs=1, progress=False)
    key = clf.kind_key("svhn", root, verify=False)  # synthetic files: no MD5 check
    clf.save_classifier(svhn, clf.classifier_dirs(root), key, {})

    out = tmp_path / "svhn-grid"
    args = ["reproduce", "mnist-svhn", "--num-samples", "100", "--data-root", str(root)]
    args += TINY + ["--set", "data.verify=false", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    for title in rp.MNIST_SVHN_TABLES:
        assert title in report
    assert "| latent acc. x1 |" in report and "95.0" in report and "125.3" in report
    metrics = json.loads((out / "M2" / "dmvae" / "seed0" / "eval" / "metrics.json").read_text())
    assert set(metrics["latent"]) == {"mnist", "svhn", "all"}
    assert set(metrics["joint_coherence"]) == {"prior", "gmm"}
    assert "unconditional_gmm/svhn" in metrics["fid"]
    assert set(metrics["loglik"]["conditional"]) == {"svhn->mnist", "mnist->svhn"}
    assert "| log p(x1 \\| x2) |" in report and "| log p(x1, x2) |" in report
