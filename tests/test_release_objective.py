"""DMVAE's loss against the authors' released formula, computed independently on fixed batches.

The release (imantdaunhawer/DMVAE, training.py) sums, per modality, the mean log-likelihood over
the rows whose subset A holds the modality and the mean over the rows whose complement B holds
it, divides the style KL by the batch size, and adds gamma * InfoNCE and delta_m * TC. The
presets keep the released beta, gamma and delta, so our loss must equal that formula exactly.
Randomness is pinned: posterior samples are replaced by their means and the subsets are fixed.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dmvae import objectives as obj
from dmvae.config import RunConfig
from dmvae.data.batch import make_batch

SHAPES = {"mnist": (1, 28, 28), "svhn": (3, 32, 32)}


def preset_model(experiment: str, modalities: int = 3, **model_config):
    settings = {f"model.{k}": v for k, v in model_config.items()}
    if experiment == "paired-mnist":
        settings["data.modalities"] = modalities
    config = RunConfig.preset(experiment, "dmvae", settings)
    torch.manual_seed(0)
    return config.build_model()


def fixed_batch(names, n: int):
    g = torch.Generator().manual_seed(3)
    images = {m: torch.rand(n, *SHAPES.get(m, (1, 28, 28)), generator=g) for m in names}
    return make_batch(images, torch.randint(0, 10, (n,), generator=g))


def fixed_partition(num_modalities: int, n: int) -> torch.Tensor:
    """Unbalanced subsets A: modality k is in A for about (k + 1) / (M + 1) of the rows, with
    every row holding at least one modality (the release drops rows with an empty A from
    InfoNCE; with none, both conventions give the same value)."""
    g = torch.Generator().manual_seed(5)
    probs = torch.tensor([(k + 1) / (num_modalities + 1) for k in range(num_modalities)])
    a = torch.rand(num_modalities, n, generator=g) < probs[:, None]
    a[0, ~a.any(0)] = True
    return a


def release_poe_mean(mu: torch.Tensor, logvar: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """utils.poe of the release: precision-weighted mean, dropped experts get precision ~0."""
    precision = torch.where(keep[..., None], 1.0 / (logvar.exp() + 1e-8), 1e-12)
    mu = torch.where(keep[..., None], mu, 0.0)
    return (mu * precision).sum(0) / precision.sum(0)


def release_infomax(h1: torch.Tensor, h2: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """utils.compute_infomax with the self-similarity diagonal removed (the release's
    `~eye(...)` inverts bits instead of masking: docs/protocol.md, "Differences", row 5)."""
    n = h1.shape[0]
    z1, z2 = F.normalize(h1, dim=-1), F.normalize(h2, dim=-1)
    z = torch.cat([z1, z2])
    sims = z @ z.T
    off_diagonal = sims[~torch.eye(2 * n, dtype=torch.bool)].view(2 * n, 2 * n - 1)
    numerator = 2 * (z1 * z2).sum() / tau
    return (torch.logsumexp(off_diagonal / tau, dim=-1).sum() - numerator) / (2 * n)


def release_loss(model, batch, in_a, contrast, kl_weight):
    """The released training.py loss, with posterior samples replaced by their means."""
    names, s_dim = model.modalities, model.style_dim
    outs = {m: model.encoders[m](batch.inputs[m]) for m in names}
    style = {m: (outs[m][0][:, :s_dim], outs[m][1][:, :s_dim]) for m in names}
    c_mu = torch.stack([outs[m][0][:, s_dim:] for m in names])
    c_logvar = torch.stack([outs[m][1][:, s_dim:] for m in names])
    poe_a = release_poe_mean(c_mu, c_logvar, in_a)
    poe_b = release_poe_mean(c_mu, c_logvar, ~in_a)
    poe_full = release_poe_mean(c_mu, c_logvar, torch.ones_like(in_a))
    n = batch.labels.shape[0]
    total = torch.zeros(())
    for k, m in enumerate(names):
        lik = model.likelihoods[m]
        s_mu, s_logvar = style[m]
        loglik = 0.0
        for rows, content in ((in_a[k], poe_a), (~in_a[k], poe_b)):
            loc = model.decoders[m](torch.cat([s_mu[rows], content[rows]], -1))
            logp = -(loc - batch.targets[m][rows]).abs() / lik.scale - math.log(2 * lik.scale)
            loglik = loglik + logp.sum() / (rows.sum() + 1e-8)
        total = total - loglik * lik.weight
        kld = -0.5 * (1 + s_logvar - s_mu.pow(2) - s_logvar.exp()).sum() / n
        total = total + kl_weight * model.beta[m] * kld
        rows = in_a[k]
        if rows.sum() > 1:
            scores = model.discriminators[m](s_mu[rows], poe_a[rows])
            lsm = F.log_softmax(scores, dim=1)
            total = total + model.delta[m] * (lsm[:, 0] - lsm[:, 1]).mean()
    subset = release_poe_mean(c_mu[contrast], c_logvar[contrast], torch.ones_like(in_a[contrast]))
    return total + model.config.gamma * release_infomax(poe_full, subset)


@pytest.mark.parametrize(
    "experiment, modalities", [("paired-mnist", 3), ("paired-mnist", 5), ("mnist-svhn", 2)]
)
def test_preset_loss_equals_the_released_formula(experiment, modalities, monkeypatch):
    model = preset_model(experiment, modalities).eval()  # eval: discriminators are not stepped
    names = model.modalities
    n = 24
    batch = fixed_batch(names, n)
    in_a = fixed_partition(len(names), n)
    contrast = torch.tensor([k % 2 == 0 for k in range(len(names))])
    monkeypatch.setattr(obj, "reparameterize", lambda mu, logvar, generator=None: mu)
    monkeypatch.setattr(model, "draw_partition", lambda shape, device: in_a)
    monkeypatch.setattr(model, "draw_contrast_subset", lambda m, device: contrast)
    with torch.no_grad():
        ours = model.loss(batch, kl_weight=0.3)["loss"]
        release = release_loss(model, batch, in_a, contrast, kl_weight=0.3)
    assert ours.item() == pytest.approx(release.item(), rel=1e-5)


def test_release_coefficients_are_the_released_scripts():
    paired = RunConfig.preset("paired-mnist", "dmvae")
    t = paired.train
    assert (t.lr, t.batch_size, t.epochs, t.anneal_epochs) == (
        1e-3,
        1024,
        300,
        50,
    )
    assert {k: getattr(paired.model_config, k) for k in ("beta", "gamma", "delta")} == {
        "beta": 10.0,
        "gamma": 100.0,
        "delta": 100.0,
    }
    svhn = RunConfig.preset("mnist-svhn", "dmvae")
    assert svhn.model_config.beta == {"mnist": 100.0, "svhn": 50.0}
    assert svhn.model_config.delta == {"mnist": 500.0, "svhn": 100.0}
    assert (svhn.model_config.gamma, svhn.train.lr) == (1000.0, 1e-3)


def test_release_reconstruction_is_about_twice_a_per_sample_mean():
    nll = torch.rand(4000) + 1.0
    in_a = torch.rand(4000) < 0.5
    release = obj.subset_mean_nll(nll, in_a, ~in_a)
    assert release.item() == pytest.approx(2 * nll.mean().item(), rel=0.02)
    # Rows of the smaller part weigh more: 1 row in A counts as much as 3,999 in B.
    one = torch.zeros(4000, dtype=torch.bool)
    one[0] = True
    assert obj.subset_mean_nll(nll, one, ~one) == pytest.approx(nll[0] + nll[1:].mean())
    assert obj.subset_mean_nll(nll, one, torch.zeros_like(one)) == pytest.approx(nll[0].item())


def test_per_sample_reconstruction_is_half_the_release_one_on_balanced_subsets(monkeypatch):
    """With |A| = |B| for every modality, mean(A) + mean(B) is exactly twice the mean."""
    models = {
        norm: preset_model("paired-mnist", 3, reconstruction=norm).eval()
        for norm in ("release", "per_sample")
    }
    batch = fixed_batch(models["release"].modalities, 16)
    in_a = torch.stack(
        [torch.randperm(16, generator=torch.Generator().manual_seed(k)) < 8 for k in range(3)]
    )
    monkeypatch.setattr(obj, "reparameterize", lambda mu, logvar, generator=None: mu)
    terms = {}
    for norm, model in models.items():
        monkeypatch.setattr(model, "draw_partition", lambda shape, device: in_a)
        with torch.no_grad():
            terms[norm] = model.loss(batch)
    for m in ("m0", "m1", "m2"):
        assert terms["release"][f"rec/{m}"].item() == pytest.approx(
            2 * terms["per_sample"][f"rec/{m}"].item(), rel=1e-6
        )
        assert terms["release"][f"kl/{m}"] == terms["per_sample"][f"kl/{m}"]


def test_release_init_draws_weights_from_n0_005_and_zero_biases():
    model = preset_model("mnist-svhn")
    layers = [
        layer
        for net in (model.encoders, model.decoders, model.discriminators)
        for layer in net.modules()
        if isinstance(layer, torch.nn.Linear | torch.nn.Conv2d)
    ]
    weights = torch.cat([layer.weight.flatten() for layer in layers])
    assert weights.std().item() == pytest.approx(0.05, rel=0.02)
    assert abs(weights.mean().item()) < 1e-3
    assert all(not layer.bias.any() for layer in layers)
    # ConvTranspose2d keeps PyTorch's default, as in the release: non-zero biases.
    transposed = [
        m for m in model.decoders["svhn"].modules() if isinstance(m, torch.nn.ConvTranspose2d)
    ]
    assert transposed and all(m.bias.any() for m in transposed)


def test_pytorch_init_keeps_the_networks_own_initialisation():
    model = preset_model("paired-mnist", 2, init="pytorch")
    first = model.encoders["m0"].trunk[1]  # Linear(784, 512): PyTorch draws U(+-1/sqrt(784))
    assert first.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 784), rel=0.02)
    assert first.bias.any()
    with pytest.raises(ValueError, match="choose from"):
        preset_model("paired-mnist", 2, init="xavier")
