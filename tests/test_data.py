"""Data layer: real MNIST, synthetic MNIST/SVHN files in the official formats, pairing rules,
the index cache, the batch iterator and the data CLI."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import torch
from conftest import fake_svhn

from dmvae.cli import main
from dmvae.data import datasets, pairing
from dmvae.data.batch import MultimodalData, make_batch
from dmvae.data.sources import load_mnist, load_svhn, resolve_data_root
from dmvae.errors import DataError

SVHN_TRAIN_COUNTS = [4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659]
SVHN_TEST_COUNTS = [1744, 5099, 4149, 2882, 2523, 2384, 1977, 2019, 1660, 1595]


def write_idx(path, array: np.ndarray, magic: int) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for d in array.shape:
            f.write(struct.pack(">I", d))
        f.write(array.astype(np.uint8).tobytes())


def fake_mnist(root, n_train=60000, n_test=10000, seed=0):
    """MNIST IDX files with the official sizes (torchvision checks nothing else)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = (labels[:, None, None] * 25 + rng.integers(0, 5, (n, 28, 28))).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 2049)
    return root


def test_real_mnist_shapes_and_labels(real_mnist):
    train_x, train_y, test_x, test_y = real_mnist
    assert train_x.shape == (60000, 1, 28, 28) and train_x.dtype == torch.uint8
    assert test_x.shape == (10000, 1, 28, 28) and test_y.shape == (10000,)
    assert set(train_y.unique().tolist()) == set(range(10))
    assert torch.bincount(test_y).tolist()[:3] == [980, 1135, 1032]


def test_paired_mnist_five_modalities_agree_and_pairing_is_seeded(mnist_root):
    train = datasets.load_paired_mnist(mnist_root, "train", 5)
    test = datasets.load_paired_mnist(mnist_root, "test", 5)
    assert (len(train), len(test)) == (60000, 10000)
    for data in (train, test):
        assert datasets.summary(data)["labels_agree"]
        for m in data.modalities:
            assert torch.equal(data.bank_labels[m][data.index[m]], data.labels)
            assert torch.equal(data.index[m].sort().values, torch.arange(len(data)))
    assert not torch.equal(train.index["m0"], train.index["m1"])
    again = datasets.load_paired_mnist(mnist_root, "train", 5, seed=42)
    other = datasets.load_paired_mnist(mnist_root, "train", 5, seed=7)
    assert torch.equal(train.index["m3"], again.index["m3"])
    assert not torch.equal(train.index["m3"], other.index["m3"])


def test_pairing_counts_on_real_class_sizes(real_mnist):
    """The paper's 1,121,360 / 200,000 pairs from MNIST's and SVHN's per-class counts."""
    _, train_y, _, test_y = real_mnist
    svhn_train = torch.cat([torch.full((c,), d) for d, c in enumerate(SVHN_TRAIN_COUNTS)])
    svhn_test = torch.cat([torch.full((c,), d) for d, c in enumerate(SVHN_TEST_COUNTS)])
    im, isv = pairing.pair_mnist_svhn(train_y, svhn_train)
    assert len(im) == len(isv) == 1_121_360
    assert torch.equal(train_y[im], svhn_train[isv])
    im, isv = pairing.pair_mnist_svhn(test_y, svhn_test)
    assert len(im) == 200_000
    assert torch.equal(test_y[im], svhn_test[isv])


def test_pairing_rule_per_class():
    ml = torch.tensor([0, 1, 0, 1, 0, 2])
    sl = torch.tensor([1, 0, 0, 1, 1, 0, 0])
    im, isv = pairing.pair_mnist_svhn(ml, sl, dm=3, max_per_class=2, seed=0)
    # class 0: n = min(3, 4, 2) = 2 -> MNIST {0, 2}, SVHN {1, 2}; class 1: n = 2; class 2: 0.
    assert len(im) == 3 * (2 + 2)
    assert set(im[:6].tolist()) == {0, 2} and set(isv[:6].tolist()) == {1, 2}
    assert torch.equal(ml[im], sl[isv])
    block = im[:2].tolist()
    assert sorted(block) == [0, 2]  # each permutation uses every kept index once


def test_svhn_and_mnist_svhn_from_synthetic_files(tmp_path):
    fake_mnist(tmp_path)
    digits = fake_svhn(tmp_path, "test", [30, 40, 25, 20, 20, 20, 20, 20, 20, 20])
    x, y = load_svhn(tmp_path, "test", verify=False)
    assert x.shape == (len(digits), 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(y, torch.from_numpy(digits))  # label 10 became 0
    assert torch.equal(x[:, 0, 0, 0], (y * 20).to(torch.uint8))
    with pytest.raises(DataError, match="no-verify"):
        load_svhn(tmp_path, "test", verify=True)  # not the official checksum
    data = datasets.load_mnist_svhn(tmp_path, "test", dm=2, max_per_class=25, verify=False)
    mnist_counts = torch.bincount(load_mnist(tmp_path, train=False)[1], minlength=10)
    svhn_counts = torch.bincount(y, minlength=10)
    expected = 2 * sum(
        min(int(a), int(b), 25) for a, b in zip(mnist_counts, svhn_counts, strict=True)
    )
    assert len(data) == expected
    assert datasets.summary(data)["labels_agree"]
    b = data.batch(torch.arange(5))
    assert b.inputs["svhn"].shape == (5, 3, 32, 32) and b.inputs["mnist"].shape == (5, 1, 28, 28)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte") as err:
        load_mnist(tmp_path, train=True)
    assert "--download" in str(err.value)
    with pytest.raises(DataError, match="train_32x32.mat"):
        load_svhn(tmp_path, "train")
    fake_mnist(tmp_path / "bad")
    raw = tmp_path / "bad" / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:1000])
    with pytest.raises(DataError, match="corrupt"):
        load_mnist(tmp_path / "bad", train=False)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_svhn(tmp_path, "test", verify=False)


@pytest.fixture
def offline(monkeypatch):
    """No network: every URL torchvision opens fails as it does without one."""
    import urllib.error
    import urllib.request

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def test_failed_downloads_name_the_urls_and_the_folder_for_the_files(tmp_path, offline, capsys):
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, train=False, download=True)
    message = str(err.value)
    assert message.startswith("could not download the MNIST files from https://")
    assert "Temporary failure in name resolution" in message and "\n" not in message
    assert f"into {raw}," in message and "t10k-images-idx3-ubyte" in message
    assert "delete" not in message
    with pytest.raises(DataError) as err:
        load_svhn(tmp_path, "test", download=True)
    message = str(err.value)
    assert message.startswith("could not download the SVHN file test_32x32.mat from http")
    assert "housenumbers/test_32x32.mat" in message and f"into {tmp_path}," in message
    assert "delete" not in message and not (tmp_path / "test_32x32.mat").exists()

    args = ["data", "prepare", "--dataset", "mnist-svhn", "--data-root", str(tmp_path)]
    assert main([*args, "--download"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dmvae: error: could not download the MNIST")


def test_missing_files_say_where_they_go_and_that_download_fetches_them(tmp_path):
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, train=True)
    message = str(err.value)
    assert message.startswith(f"MNIST files missing in {tmp_path / 'MNIST' / 'raw'}: ")
    assert "train-labels-idx1-ubyte" in message and "pass --download to fetch them" in message
    with pytest.raises(DataError) as err:
        load_svhn(tmp_path, "train")
    message = str(err.value)
    assert message.startswith(f"SVHN file missing: {tmp_path / 'train_32x32.mat'}; ")
    assert f"in {tmp_path}," in message and "pass --download to fetch it" in message


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("DMVAE_DATA", str(tmp_path / "env"))
    assert resolve_data_root("given") == resolve_data_root("given")
    assert str(resolve_data_root(None)) == str(tmp_path / "env")
    monkeypatch.delenv("DMVAE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_root(None) == tmp_path / "xdg" / "dmvae" / "data"


def test_index_cache_hits_and_rebuilds(tmp_path):
    calls = {"n": 0}

    def build():
        calls["n"] += 1
        return {"idx": torch.arange(5) + calls["n"]}

    dirs = [tmp_path / "cache"]
    first = pairing.cached_pairing(dirs, "x", {"seed": 1}, "fp1", build)
    assert pairing.cached_pairing(dirs, "x", {"seed": 1}, "fp1", build)["idx"].equal(first["idx"])
    assert calls["n"] == 1
    with pytest.warns(UserWarning, match="other parameters or data"):
        pairing.cached_pairing(dirs, "x", {"seed": 1}, "fp2", build)
    assert calls["n"] == 2
    path = dirs[0] / pairing.cache_file_name("x", {"seed": 1})
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        pairing.cached_pairing(dirs, "x", {"seed": 1}, "fp2", build)
    assert calls["n"] == 3
    assert pairing.cache_file_name("x", {"seed": 1, "dm": 20}) == "x_dm20_seed1.pt"


def test_read_only_data_root_uses_the_user_cache(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    dirs = datasets.pair_cache_dirs(ro)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairing.cached_pairing(dirs, "y", {}, "fp", lambda: {"i": torch.arange(3)})
    assert not (ro / "dmvae_pairs").exists()
    assert (tmp_path / "xdg" / "dmvae" / "pairs" / "y.pt").exists()


def toy_data(noise=0.0) -> MultimodalData:
    bank = torch.arange(20 * 4, dtype=torch.uint8).view(20, 1, 2, 2)
    index = {"a": torch.arange(10), "b": torch.arange(10, 20)}
    return MultimodalData(
        {"a": bank, "b": bank}, index, torch.arange(10) % 3, noise_std={"a": noise}
    )


def test_batches_gather_by_index_shuffle_by_seed_and_drop_last():
    data = toy_data()
    rows = torch.tensor([3, 0, 7])
    b = data.batch(rows)
    assert torch.equal(b.inputs["b"], data.images["b"][data.index["b"][rows]].float() / 255)
    assert torch.equal(b.labels, data.labels[rows]) and b.mask.all()
    order = lambda seed: torch.cat(  # noqa: E731
        [x.labels for x in data.batches(4, generator=torch.Generator().manual_seed(seed))]
    )
    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))
    assert [len(x) for x in data.batches(4, drop_last=True)] == [4, 4]
    assert [len(x) for x in data.batches(4, shuffle=False)] == [4, 4, 2]
    assert data.num_batches(4) == 3 and data.num_batches(4, drop_last=True) == 2


def test_noise_goes_to_inputs_only():
    data = toy_data(noise=1.0)
    b = data.batch(torch.arange(10), torch.Generator().manual_seed(0))
    assert not torch.equal(b.inputs["a"], b.targets["a"])
    assert torch.equal(b.inputs["b"], b.targets["b"])
    assert b.targets["a"].min() >= 0 and b.targets["a"].max() <= 1
    assert (b.inputs["a"] - b.targets["a"]).std() == pytest.approx(1.0, abs=0.35)


def test_select_keeps_only_the_named_modalities_and_their_noise():
    data = toy_data(noise=1.0)
    only_b = data.select(["b"])
    assert only_b.modalities == ("b",) and only_b.images["b"] is data.images["b"]
    batch = only_b.batch(torch.arange(10))
    assert set(batch.inputs) == {"b"} and torch.equal(batch.labels, data.labels)
    assert torch.equal(batch.inputs["b"], data.batch(torch.arange(10)).inputs["b"])
    assert data.select(["a"]).noise_std == {"a": 1.0}
    with pytest.raises(KeyError, match=r"unknown modalities \['zzz'\]"):
        data.select(["zzz"])


def test_batch_observe_and_make_batch_errors():
    b = toy_data().batch(torch.arange(4))
    assert b.observe(["a"]).mask[:, 1].sum() == 0 and b.observe(["a"]).mask[:, 0].all()
    with pytest.raises(KeyError, match="unknown modalities"):
        b.observe(["zzz"])
    with pytest.raises(ValueError, match="different batch sizes"):
        make_batch({"a": torch.zeros(3, 1), "b": torch.zeros(4, 1)})
    with pytest.raises(ValueError, match="mask has shape"):
        make_batch({"a": torch.zeros(3, 1)}, mask=torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="uint8 images or a floating-point tensor, got torch.int64"):
        MultimodalData({"a": torch.zeros(2, 1).long()}, {"a": torch.arange(2)}, torch.arange(2))
    floats = MultimodalData({"a": torch.full((2, 3), 7.0)}, {"a": torch.arange(2)}, torch.arange(2))
    assert torch.equal(floats.batch(torch.arange(2)).targets["a"], torch.full((2, 3), 7.0))


def test_data_cli_summary(mnist_root, capsys, tmp_path):
    assert (
        main(
            [
                "data",
                "summary",
                "--dataset",
                "paired-mnist",
                "--modalities",
                "5",
                "--data-root",
                str(mnist_root),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "train: 60000 samples" in out and "test: 10000 samples" in out
    assert "labels agree across modalities: yes" in out
    assert main(["data", "prepare", "--dataset", "mnist-svhn", "--data-root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train-images-idx3-ubyte" in err


def test_no_progress_silences_torchvision_download_bars(tmp_path, monkeypatch, capsys):
    """torchvision draws its own bar while downloading; under `--no-progress` it is hidden."""
    import sys

    import torchvision

    from dmvae.data import sources

    class DrawingMNIST(torchvision.datasets.MNIST):
        def __init__(self, root, train, download):
            print("  3%|▎         | 300k/9.91M [00:01<00:30]", file=sys.stderr)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", DrawingMNIST)
    for show in (True, False):
        with sources.download_bars(show), pytest.raises(DataError, match="could not download"):
            sources.load_mnist(tmp_path, train=True, download=True)
        assert ("%|" in capsys.readouterr().err) == show
