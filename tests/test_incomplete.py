"""Incomplete data: per-sample masks through the data API (tensors, a torch Dataset, a data
folder's observed file, the benchmarks' missing_rate), every model training on them without
reading what is missing, and evaluation on the complete samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import bars, write_bars_folder
from torch.utils.data import Dataset

from dmvae import objectives as obj
from dmvae.cli import main
from dmvae.config import RunConfig
from dmvae.data.batch import MultimodalData
from dmvae.errors import ConfigError, DataError
from dmvae.experiments.tensors import default_networks
from dmvae.likelihoods import Likelihood
from dmvae.models import MODELS


def test_a_mask_reaches_the_batches_and_what_is_missing_reads_as_zeros():
    x, y = bars(6, 0)
    has_code = torch.tensor([1, 0, 1, 1, 0, 1], dtype=torch.bool)
    code = x["code"].clone()
    code[1] = float("nan")  # a missing row may hold anything
    data = MultimodalData.from_tensors(
        {"image": x["image"], "code": code}, y, observed={"code": has_code}
    )
    batch = data.batch(torch.arange(6))
    assert torch.equal(batch.mask[:, 1], has_code) and batch.mask[:, 0].all()
    assert torch.isfinite(batch.inputs["code"]).all()
    assert (batch.inputs["code"][~has_code] == 0).all()
    assert torch.equal(batch.targets["code"][has_code], x["code"][has_code])
    assert data.missing_fraction() == {"image": 0.0, "code": pytest.approx(2 / 6)}

    complete = data.complete_rows()
    assert len(complete) == 4 and complete.complete and torch.equal(complete.labels, y[has_code])
    codes = data.select(["code"])  # only the samples that have a code
    assert len(codes) == 4 and codes.observed.all()
    images, labels = data.labelled_images("code")
    assert len(images) == 4 and torch.equal(labels, y[has_code])
    moved = data.subset(torch.tensor([1, 2])).to("cpu")
    assert moved.observed.tolist() == [[True, False], [True, True]]


def test_masks_that_cannot_be_used_are_refused():
    x, y = bars(4, 0)
    with pytest.raises(ValueError, match=r"bool tensor of shape \(4,\)"):
        MultimodalData.from_tensors(x, y, observed={"code": torch.ones(4)})
    with pytest.raises(ValueError, match="unknown modalities"):
        MultimodalData.from_tensors(x, y, observed={"text": torch.ones(4, dtype=torch.bool)})
    none = torch.tensor([True, False, True, True])
    with pytest.raises(ValueError, match="no modality at all.*row 1"):
        MultimodalData.from_tensors(x, y, observed={"code": none, "image": none})
    code = x["code"].clone()
    code[2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN in 1 rows it is observed in"):
        MultimodalData.from_tensors({"image": x["image"], "code": code}, y)


def test_dropping_modalities_is_seeded_keeps_one_per_sample_and_matches_its_rate():
    n, rate = 30000, 0.5
    data = MultimodalData.from_tensors({m: torch.zeros(n, 1) for m in ("a", "b", "c")})
    dropped = data.drop_modalities(rate, seed=3)
    assert torch.equal(dropped.observed, data.drop_modalities(rate, seed=3).observed)
    assert not torch.equal(dropped.observed, data.drop_modalities(rate, seed=4).observed)
    assert dropped.observed.any(1).all()
    # each is dropped with the rate, less the one kept when all three were drawn: p - p^3 / 3
    for fraction in dropped.missing_fraction().values():
        assert fraction == pytest.approx(rate - rate**3 / 3, abs=0.01)
    one = data.drop_modalities({"a": 0.8}, seed=0).missing_fraction()
    assert one["a"] == pytest.approx(0.8, abs=0.01) and one["b"] == one["c"] == 0.0
    again = dropped.drop_modalities(0.5, seed=5)  # drops among what is left, keeps one
    assert (again.observed <= dropped.observed).all() and again.observed.any(1).all()
    assert data.drop_modalities(0.0).complete
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        data.drop_modalities(1.0)
    with pytest.raises(KeyError, match="unknown modalities"):
        data.drop_modalities({"z": 0.5})


def test_a_benchmarks_missing_rate_drops_from_the_training_split_only(mnist_root):
    def config(**data):
        settings = {"data.root": str(mnist_root), "data.modalities": 3}
        settings.update({f"data.{k}": v for k, v in data.items()})
        return RunConfig.preset("paired-mnist", "dmvae", settings)

    train = config(missing_rate=0.5).build_data("train")
    assert config(missing_rate=0.5).build_data("test").complete
    assert all(0.44 < f < 0.47 for f in train.missing_fraction().values())
    other = config(missing_rate=0.5, missing_seed=1).build_data("train")
    assert not torch.equal(train.observed, other.observed)
    with pytest.raises(ConfigError, match="missing_rate must lie in"):
        config(missing_rate=1.0)


def toy_model(name: str, data: MultimodalData):
    spec = MODELS[name]
    model_config = spec.config()
    likelihoods = {m: Likelihood("laplace", 0.75) for m in data.modalities}
    encoders, decoders = default_networks(data, likelihoods, model_config.latent_dim)
    return spec.model(encoders, decoders, likelihoods, model_config)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_on_incomplete_data_without_reading_what_is_missing(name):
    """The loss is finite, and no gradient reaches the inputs or targets of a missing modality
    (its values could be anything): each model leaves it out of every term."""
    torch.manual_seed(0)
    x, y = bars(16, 0)
    observed = {"code": torch.arange(16) % 3 != 0, "image": torch.arange(16) % 3 != 1}
    data = MultimodalData.from_tensors(x, y, observed=observed)
    model = toy_model(name, data)
    batch = data.batch(torch.arange(16))
    for m in data.modalities:
        batch.inputs[m] = batch.inputs[m].clone().requires_grad_()
        batch.targets[m] = batch.targets[m].clone().requires_grad_()
    terms = model.loss(batch)
    assert torch.isfinite(terms["loss"]), terms
    terms["loss"].backward()
    for m in data.modalities:
        has = observed[m]
        for tensor in (batch.inputs[m], batch.targets[m]):
            grad = tensor.grad.flatten(1)
            assert (grad[~has] == 0).all(), (m, "a missing modality got a gradient")
        assert batch.inputs[m].grad.flatten(1)[has].abs().sum() > 0, m


def brute_force_info_nce(z_a, z_b, valid, temperature):
    """Each valid pair's two views pick their partner among every other view that exists."""
    z = F.normalize(torch.cat([z_a, z_b]), dim=-1)
    n = len(z_a)
    exists = torch.cat([torch.ones(n, dtype=torch.bool), valid])
    losses = []
    for i in valid.nonzero()[:, 0].tolist():
        for row, partner in ((i, n + i), (n + i, i)):
            others = [j for j in range(2 * n) if j != row and exists[j]]
            logits = torch.stack([z[row] @ z[j] / temperature for j in others])
            losses.append(-(logits[others.index(partner)] - torch.logsumexp(logits, 0)))
    return torch.stack(losses).mean()


def test_info_nce_leaves_out_the_pairs_without_subset_content():
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    valid = torch.tensor([True, False, True, True, False, True])
    got = obj.info_nce(z_a, z_b, temperature=0.5, valid=valid)
    assert got == pytest.approx(float(brute_force_info_nce(z_a, z_b, valid, 0.5)), rel=1e-5)
    everything = torch.ones(6, dtype=torch.bool)
    assert obj.info_nce(z_a, z_b, 0.5, valid=everything) == pytest.approx(
        float(obj.info_nce(z_a, z_b, 0.5)), rel=1e-6
    )


class MultiVaeStyle(Dataset):
    """Items as MultiVae's datasets return them: data, labels and per-modality masks."""

    def __init__(self, n: int) -> None:
        self.x, self.y = bars(n, 0)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        data = {m: v[i] for m, v in self.x.items()}
        masks = {"image": torch.tensor(True), "code": torch.tensor(i % 2 == 0)}
        return {"data": data, "labels": self.y[i], "masks": masks}


class Plain(Dataset):
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def test_a_torch_dataset_of_dicts_becomes_data_once():
    data = MultimodalData.from_dataset(MultiVaeStyle(10), progress=False)
    x, y = bars(10, 0)
    assert data.modalities == ("image", "code") and torch.equal(data.labels, y)
    assert torch.equal(data.images["image"], x["image"]) and data.labelled
    assert data.observed[:, 1].tolist() == [i % 2 == 0 for i in range(10)]

    items = [{"a": torch.full((2,), float(i)), "label": i % 3} for i in range(5)]
    plain = MultimodalData.from_dataset(Plain(items), progress=False)
    assert plain.complete and plain.labels.tolist() == [0, 1, 2, 0, 1]
    pairs = MultimodalData.from_dataset(Plain([({"a": torch.ones(2)}, 1)] * 3), progress=False)
    assert pairs.labels.tolist() == [1, 1, 1]
    unlabelled = MultimodalData.from_dataset(Plain([{"a": torch.ones(2)}] * 3), progress=False)
    assert not unlabelled.labelled
    only = MultimodalData.from_dataset(MultiVaeStyle(4), ["code"], progress=False)
    assert only.modalities == ("code",)


def test_a_dataset_that_does_not_fit_is_refused_before_it_is_read():
    with pytest.raises(DataError, match=r"needs 0.00 GiB .*Subset"):
        MultimodalData.from_dataset(MultiVaeStyle(10), max_bytes=100, progress=False)
    with pytest.raises(DataError, match="empty"):
        MultimodalData.from_dataset(Plain([]), progress=False)
    with pytest.raises(DataError, match="item 1: modality 'a' has shape"):
        MultimodalData.from_dataset(Plain([{"a": torch.ones(2)}, {"a": torch.ones(3)}]))
    with pytest.raises(DataError, match="return a dict of modality tensors"):
        MultimodalData.from_dataset(Plain([torch.ones(2)]), progress=False)
    with pytest.raises(DataError, match=r"\['text'\] are not in the dataset's first item"):
        MultimodalData.from_dataset(MultiVaeStyle(2), ["text"], progress=False)


def write_incomplete_folder(root, test_complete: bool = True):
    """Bars as a data folder whose train split lacks the code of every other sample."""
    write_bars_folder(root, (512, 128))
    for split, n in (("train", 512), ("test", 128)):
        if split == "train" or not test_complete:
            np.savez(root / split / "observed.npz", code=np.arange(n) % 2 == 0)
    return root


def test_a_folder_with_an_observed_file_trains_and_is_evaluated_on_complete_samples(
    tmp_path, capsys
):
    data = write_incomplete_folder(tmp_path / "data")
    summary = ["data", "summary", "--experiment", "folder", "--set", f"data.path={data}"]
    assert main([*summary, "--split", "train"]) == 0
    assert "missing     code:50.0% image:0.0% (256 complete samples)" in capsys.readouterr().out
    out = tmp_path / "run"
    args = ["train", "--experiment", "folder", "--model", "dmvae", "--out", str(out)]
    args += ["--set", f"data.path={data}", "--max-steps", "20", "--batch-size", "64"]
    assert main([*args, "--no-progress", "--device", "cpu"]) == 0, capsys.readouterr().err
    evaluate = ["evaluate", str(out), "--metrics", "latent", "--fid", "none", "--no-progress"]
    assert main([*evaluate, "--device", "cpu"]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert all(0 <= v <= 1 for v in metrics["latent"].values() if isinstance(v, float))


def test_a_test_split_without_one_complete_sample_stops_before_training(tmp_path, capsys):
    data = write_incomplete_folder(tmp_path / "data", test_complete=False)
    np.savez(data / "test" / "observed.npz", code=np.zeros(128, dtype=bool))
    out = tmp_path / "run"
    args = ["train", "--experiment", "folder", "--model", "mvae", "--out", str(out)]
    assert main([*args, "--set", f"data.path={data}", "--max-steps", "2"]) != 0
    assert "no sample has every modality" in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_modality_named_in_an_unusable_observed_file_is_named(tmp_path, capsys):
    data = write_incomplete_folder(tmp_path / "data")
    np.savez(data / "train" / "observed.npz", code=np.ones(3, dtype=bool))
    summary = ["data", "summary", "--experiment", "folder", "--set", f"data.path={data}"]
    assert main(summary) != 0
    err = capsys.readouterr().err
    assert "observed['code'] must be a bool tensor of shape (512,)" in err
    assert err.count("\n") == 1  # one line
