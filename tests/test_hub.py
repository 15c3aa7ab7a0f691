"""Sharing runs through the Hugging Face Hub, without a network: `huggingface_hub`'s three calls
(create_repo, upload_folder, snapshot_download) are pointed at a local folder that keeps every
commit, with the library's own pattern matching, so the round trip is the real one."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dmvae import hub, remote
from dmvae.cli import main
from dmvae.errors import CheckpointError, ConfigError
from dmvae.evaluation.suite import evaluate_run
from dmvae.training import CHECKPOINT, load_run
from dmvae.training.rundir import RunLocked

huggingface_hub = pytest.importorskip("huggingface_hub", reason="needs dmvae[hub]")
filter_repo_objects = pytest.importorskip("huggingface_hub.utils").filter_repo_objects
hub_errors = pytest.importorskip("huggingface_hub.errors")


class FakeHub:
    """Model repositories as folders: root/REPO/OID/ holds each commit's files, root/REPO/main
    the newest commit's id; downloads go to a cache folder per commit, as the real cache."""

    def __init__(self, root: Path) -> None:
        self.root, self.commits, self.downloads = root, 0, []

    def files(self, folder: Path) -> list[str]:
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())

    def head(self, repo_id: str) -> Path:
        repo = self.root / repo_id
        return repo / (repo / "main").read_text()

    def create_repo(self, repo_id: str, *, private=None, exist_ok=False, **_) -> None:
        (self.root / repo_id).mkdir(parents=True, exist_ok=exist_ok)

    def upload_folder(self, *, repo_id, folder_path, allow_patterns, delete_patterns, **_):
        repo = self.root / repo_id
        self.commits += 1
        oid = f"{self.commits:040x}"
        new = repo / oid
        if (repo / "main").exists():
            old = self.head(repo_id)
            deleted = set(filter_repo_objects(self.files(old), allow_patterns=delete_patterns))
            for name in set(self.files(old)) - deleted:
                (new / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(old / name, new / name)
        for name in filter_repo_objects(
            self.files(Path(folder_path)), allow_patterns=allow_patterns
        ):
            (new / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(folder_path) / name, new / name)
        (repo / "main").write_text(oid)
        return SimpleNamespace(oid=oid)

    def snapshot_download(self, repo_id: str, *, revision=None, allow_patterns=None, **_) -> str:
        repo = self.root / repo_id
        if not (repo / "main").exists():
            raise hub_errors.LocalEntryNotFoundError(f"cannot reach the Hub for {repo_id}")
        source = repo / (revision or (repo / "main").read_text())
        names = list(filter_repo_objects(self.files(source), allow_patterns=allow_patterns))
        self.downloads.append(names)
        cache = self.root.parent / "hf-cache" / repo_id / source.name
        for name in names:
            (cache / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / name, cache / name)
        return str(cache)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> FakeHub:
    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake.create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake.upload_folder)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake.snapshot_download)
    return fake


@pytest.fixture
def trained(tmp_path, mnist_root) -> Path:
    """A paired-MNIST DMVAE trained for 4 steps."""
    from dmvae.config import RunConfig
    from dmvae.training import train

    out = tmp_path / "author" / "run"
    settings = {"out": str(out), "batch_size": 64, "max_steps": 4, "device": "cpu"}
    config = RunConfig.preset("paired-mnist", "dmvae", {"data.root": str(mnist_root)})
    train(config.override({**settings, "progress": False}))
    return out


@pytest.fixture
def evaluated(trained, quick_classifiers, small_train) -> Path:
    """`trained`, evaluated by its author: the ex-post GMM (on 1000 training tuples) and the
    sample grids."""
    evaluate_run(trained, metrics=["gmm", "grids"], max_test=64, progress=False)
    return trained


def generations(model) -> dict[str, torch.Tensor]:
    given = {"m0": torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))}
    return model.conditional_generate(
        given, ["m1"], n_per_input=2, generator=torch.Generator().manual_seed(3)
    )


def test_a_pushed_run_loads_with_identical_weights_and_generations(
    evaluated, fake_hub, tmp_path, capsys
):
    trained = evaluated
    ref = hub.push_run(trained, "alice/tiny-dmvae")
    assert ref == f"hf://alice/tiny-dmvae@{1:040x}"
    shared, config = load_run("hf://alice/tiny-dmvae")
    mine, my_config = load_run(trained)
    assert config == my_config
    theirs, ours = shared.state_dict(), mine.state_dict()
    assert theirs.keys() == ours.keys()
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)
    a, b = generations(shared), generations(mine)
    assert torch.equal(a["m1"], b["m1"])
    # exactly the run's data files travel: no log, no TensorBoard, no grids
    assert fake_hub.files(fake_hub.head("alice/tiny-dmvae")) == sorted(remote.RUN_FILES)
    assert set(remote.RUN_FILES) <= {"README.md", "config.json", CHECKPOINT} | {
        f"eval/{p.name}" for p in (trained / "eval").iterdir()
    }  # the names are the run directory's
    card = (fake_hub.head("alice/tiny-dmvae") / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: dmvae\ntags:\n- dmvae\n")
    assert "- paired-mnist\n---\n\n# DMVAE on paired-mnist\n" in card
    assert "modalities m0, m1, checkpoint at training step 4" in card
    assert "| model.gamma | `" in card and "| train.max_steps | `4` |" in card
    assert 'dmvae.load_run("hf://alice/tiny-dmvae")' in card
    assert "dmvae evaluate hf://alice/tiny-dmvae --out runs/tiny-dmvae" in card
    metrics_md = (trained / "eval" / "metrics.md").read_text().splitlines()
    assert "### DMVAE on paired-mnist" in card and all(line in card for line in metrics_md[1:])
    assert "Daunhawer" in card and "GCPR 2020" in card
    # the same from the command line, pinned to the upload
    assert main(["hub", "push", str(trained), "alice/tiny-dmvae", "--message", "again"]) == 0
    assert f"this very upload is hf://alice/tiny-dmvae@{2:040x}" in capsys.readouterr().out
    pinned, _ = load_run(ref)
    assert torch.equal(generations(pinned)["m1"], b["m1"])
    # the inference commands take a shared run, its saved GMM included
    for run in (trained, "hf://alice/tiny-dmvae"):
        out = tmp_path / Path(str(run)).name
        cmd = ["sample", str(run), "--num", "4", "--from", "gmm", "--device", "cpu", "--seed", "1"]
        assert main([*cmd, "--out", str(out)]) == 0
    assert (tmp_path / "tiny-dmvae" / "m1.npy").read_bytes() == (
        tmp_path / "run" / "m1.npy"
    ).read_bytes()


def test_evaluate_a_shared_run_into_a_local_folder(evaluated, fake_hub, tmp_path, capsys):
    trained = evaluated
    hub.push_run(trained, "alice/tiny-dmvae")
    ref = "hf://alice/tiny-dmvae"
    assert main(["evaluate", ref, "--metrics", "grids"]) == 2
    assert "pass --out DIR" in capsys.readouterr().err
    args = ["--metrics", "grids", "--max-test", "64", "--device", "cpu", "--no-progress"]
    local = tmp_path / "local"
    assert main(["evaluate", ref, "--out", str(local), *args]) == 0
    assert f"written to {local / 'eval'}" in capsys.readouterr().out
    # the author's GMM came along and is sampled from; the Hub's files are not written to
    assert (local / "eval" / "unconditional_gmm.png").is_file()
    assert sorted(p.name for p in (local / "eval").iterdir()) == sorted(
        p.name for p in (trained / "eval").iterdir()
    )
    assert fake_hub.files(fake_hub.head("alice/tiny-dmvae")) == sorted(remote.RUN_FILES)
    cached = fake_hub.root.parent / "hf-cache"
    assert not [p for p in cached.rglob("*") if p.suffix == ".png" or p.name.startswith(".")]
    assert main(["evaluate", ref, "--out", str(local), *args]) == 0  # the same run: reused
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    assert main(["evaluate", ref, "--out", str(other), *args]) == 2
    assert "already holds another run" in capsys.readouterr().err
    assert main(["evaluate", str(trained), "--out", str(other), *args]) == 2
    assert "--out is for shared runs" in capsys.readouterr().err
    assert main(["hub", "pull", ref, "--out", str(tmp_path / "pulled")]) == 0
    assert (tmp_path / "pulled" / CHECKPOINT).read_bytes() == (trained / CHECKPOINT).read_bytes()


def test_a_shared_config_that_names_code_is_refused_without_importing_it(
    trained, fake_hub, tmp_path, monkeypatch
):
    hub.push_run(trained, "mallory/tiny")
    marker = tmp_path / "imported"
    module = tmp_path / "payload.py"
    module.write_text(f"open({str(marker)!r}, 'w').close()\nexp = None\n")
    monkeypatch.chdir(tmp_path)
    config = fake_hub.head("mallory/tiny") / "config.json"
    saved = json.loads(config.read_text())
    config.write_text(json.dumps({**saved, "experiment": "payload.py:exp"}))
    with pytest.raises(ConfigError, match="names code to import .*experiment='payload.py:exp'"):
        load_run("hf://mallory/tiny")
    assert main(["hub", "pull", "hf://mallory/tiny", "--out", str(tmp_path / "copy")]) == 2
    assert not marker.exists() and not (tmp_path / "copy").exists()
    model, loaded = load_run("hf://mallory/tiny", experiment="paired-mnist")  # the user's choice
    assert loaded.experiment == "paired-mnist" and not marker.exists()
    hub.pull_run("hf://mallory/tiny", tmp_path / "copy", experiment="paired-mnist")
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["experiment"] == (
        "paired-mnist"
    )  # the copy names what the user chose, so evaluating it later imports nothing either
    data = {**saved["data"], "classifiers": {"m0": "payload:exp"}}
    config.write_text(json.dumps({**saved, "data": data}))
    with pytest.raises(ConfigError, match=r"\(data\.classifiers\.m0='payload:exp'\)"):
        load_run("hf://mallory/tiny", experiment="paired-mnist")
    assert not marker.exists()


def test_push_refuses_a_run_still_training_or_without_a_checkpoint(trained, fake_hub, tmp_path):
    lock = trained / ".lock"
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": 0, "command": "train"}
    lock.write_text(json.dumps(record))
    try:
        with pytest.raises(RunLocked, match="being written by another process"):
            hub.push_run(trained, "alice/busy")
    finally:
        lock.unlink()
    assert not (fake_hub.root / "alice" / "busy").exists()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(trained / "config.json", fresh / "config.json")
    with pytest.raises(CheckpointError, match="no checkpoint yet; push it once training"):
        hub.push_run(fresh, "alice/fresh")
    with pytest.raises(ConfigError, match="not a Hub run reference"):
        hub.push_run(trained, "alice/two/slashes")


def test_hub_errors_and_a_missing_extra_are_one_line_with_the_fix(fake_hub, monkeypatch, capsys):
    assert main(["evaluate", "hf://nobody/nothing", "--out", "x"]) == 1
    assert "cannot be reached and the run is not in the local cache" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"copy hf://alice/tiny into a folder of yours first"):
        evaluate_run("hf://alice/tiny", progress=False)
    with pytest.raises(ConfigError, match="write hf://user/name or hf://user/name@revision"):
        load_run("hf://alice/tiny@")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(remote.HubError, match=r'pip install "dmvae\[hub\]"'):
        load_run("hf://alice/tiny")
    assert main(["hub", "pull", "hf://alice/tiny", "--out", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "dmvae[hub]"' in err
