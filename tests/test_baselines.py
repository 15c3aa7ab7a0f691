"""MVAE and MMVAE: objectives against hand computations, masks, generation and errors."""

from __future__ import annotations

import pytest
import torch
from conftest import mlp_parts, random_batch

from dmvae import objectives as obj
from dmvae.data.batch import make_batch
from dmvae.models.mmvae import MMVAE, MMVAEConfig, laplace_scale
from dmvae.models.mvae import MVAE, MVAEConfig

NAMES = ("a", "b", "c")


def test_mvae_two_modalities_is_joint_plus_unimodal_elbos():
    model = MVAE(*mlp_parts(4, ("a", "b")), MVAEConfig(latent_dim=4))
    x = random_batch(8, ("a", "b"))
    assert model.training_subsets().tolist() == [
        [True, True],
        [True, False],
        [False, True],
    ]
    torch.manual_seed(3)
    terms = model.loss(x)
    # Recompute the joint ELBO by hand with the same noise.
    torch.manual_seed(3)
    mu, logvar = (
        torch.stack([model.encoders[m](x.inputs[m])[0] for m in "ab"]),
        torch.stack([model.encoders[m](x.inputs[m])[1] for m in "ab"]),
    )
    jm, jl = obj.product_of_experts(mu, logvar, prior_expert=True)
    assert torch.allclose(model.encode(x.inputs)[0], jm, atol=1e-6)
    eps_all = torch.randn(3 * 8, 4)[:8]
    z = jm + (0.5 * jl).exp() * eps_all
    rec = sum(model.likelihoods[m].log_prob(x.targets[m], model.decoders[m](z)) for m in "ab")
    elbo = rec - obj.kl_normal_standard(jm, jl)
    assert terms["elbo/joint"].item() == pytest.approx(-elbo.mean().item(), rel=1e-5)
    total = terms["elbo/joint"] + terms["elbo/a"] + terms["elbo/b"]
    assert terms["loss"].item() == pytest.approx(total.item(), rel=1e-5)


def test_mvae_random_subsets_for_more_than_two_modalities():
    model = MVAE(*mlp_parts(4), MVAEConfig(latent_dim=4, num_random_subsets=3))
    subsets = model.training_subsets()
    assert subsets.shape == (1 + 3 + 3, 3) and subsets.any(1).all()
    assert "elbo/random" in model.loss(random_batch(8))


@pytest.mark.parametrize("m", [3, 4, 5])
def test_mvae_random_subsets_are_uniform_over_proper_multimodal_subsets(m):
    """The reference code (and MultiVae) draw among subsets of 2..M-1 modalities: never a
    singleton or the full set, which the unimodal and joint ELBOs already cover."""
    names = tuple("abcde"[:m])
    model = MVAE(*mlp_parts(4, names), MVAEConfig(latent_dim=4, num_random_subsets=1))
    torch.manual_seed(0)
    draws = 600 * m
    counts: dict[tuple[bool, ...], int] = {}
    for _ in range(draws):
        rows = model.training_subsets()
        assert rows.shape == (2 + m, m)
        key = tuple(rows[-1].tolist())
        counts[key] = counts.get(key, 0) + 1
    sizes = {sum(k) for k in counts}
    assert sizes == set(range(2, m))
    expected = {3: 3, 4: 10, 5: 25}[m]  # C(M, 2) + ... + C(M, M - 1)
    assert len(counts) == expected
    # Uniform: chi-square against equal counts, 0.1 % critical value of its dof.
    mean = draws / expected
    chi2 = sum((c - mean) ** 2 / mean for c in counts.values())
    assert chi2 < {3: 13.8, 4: 27.9, 5: 51.2}[m]


@pytest.mark.parametrize("cls", ["mvae", "mmvae"])
def test_missing_modality_gets_no_gradient(cls):
    model = (
        MVAE(*mlp_parts(4), MVAEConfig(latent_dim=4))
        if cls == "mvae"
        else MMVAE(*mlp_parts(4), MMVAEConfig(latent_dim=4, K=3))
    )
    x = random_batch(8)
    x.mask[:, 2] = False
    model.loss(x)["loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.encoders["c"].parameters())
    assert all(p.grad is None or not p.grad.any() for p in model.decoders["c"].parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.encoders["a"].parameters())


def test_mmvae_bound_matches_a_hand_computation_for_one_sample_per_expert():
    model = MMVAE(*mlp_parts(3, ("a", "b")), MMVAEConfig(latent_dim=3, K=1, estimator="iwae"))
    x = random_batch(4, ("a", "b"))
    torch.manual_seed(7)
    terms = model.loss(x)
    torch.manual_seed(7)
    locs, scales = [], []
    for m in "ab":
        loc, raw = model.encoders[m](x.inputs[m])
        locs.append(loc)
        scales.append(laplace_scale(raw))
    z = obj.laplace_rsample(torch.stack(locs), torch.stack(scales), 1)[0]  # [E, B, D]
    total = 0.0
    for e in range(2):
        log_q = torch.stack(
            [obj.laplace_log_prob(z[e], locs[j], scales[j]).sum(-1) for j in range(2)]
        )
        log_mix = torch.logsumexp(log_q, 0) - torch.log(torch.tensor(2.0))
        prior = obj.laplace_log_prob(z[e], torch.zeros(3), model.prior_scale()).sum(-1)
        lik = sum(
            model.likelihoods[m].log_prob(x.targets[m], model.decoders[m](z[e])) for m in "ab"
        )
        total = total + (lik + prior - log_mix)
    assert terms["bound"].item() == pytest.approx((total / 2).mean().item(), rel=1e-5)


def test_mmvae_dreg_reaches_encoders_decoders_and_prior():
    model = MMVAE(*mlp_parts(4), MMVAEConfig(latent_dim=4, K=5))
    model.loss(random_batch(8))["loss"].backward()
    for m in NAMES:
        assert any(p.grad is not None and p.grad.any() for p in model.encoders[m].parameters())
        assert any(p.grad is not None and p.grad.any() for p in model.decoders[m].parameters())
    assert model.prior_raw_scale.grad is not None and model.prior_raw_scale.grad.any()


@pytest.mark.parametrize("cls", ["mvae", "mmvae"])
def test_generation_shapes_and_errors(cls):
    model = (
        MVAE(*mlp_parts(4), MVAEConfig(latent_dim=4))
        if cls == "mvae"
        else MMVAE(*mlp_parts(4), MMVAEConfig(latent_dim=4, K=2))
    ).eval()
    x = random_batch(3).inputs
    with torch.no_grad():
        out = model.conditional_generate(x, ["c"], ["a", "b"], n_per_input=4)
        assert out["c"].shape == (12, 1, 6, 6)
        assert model.generate(5)["b"].shape == (5, 1, 6, 6)
        means = model.conditional_generate(x, ["c"], ["a"], n_per_input=2, style="prior")["c"]
        assert torch.allclose(means[0], means[1])  # the mean is repeated per input
        assert model.embed(x, ["a"]).shape == (3, 4)
    with pytest.raises(ValueError, match="empty"):
        model.encode(x, [])
    with pytest.raises(KeyError, match="unknown"):
        model.encode(x, ["z"])
    with pytest.raises(ValueError, match="'a'"):
        model.encode({"a": torch.rand(3, 1, 7, 7)}, ["a"])
    with pytest.raises(ValueError, match="likelihoods"):
        enc, dec, lik = mlp_parts(4)
        type(model)(enc, dec, {"a": lik["a"]})


def test_mvae_loss_in_float64_without_changing_the_default_dtype():
    assert torch.get_default_dtype() == torch.float32
    model = MVAE(*mlp_parts(4), MVAEConfig(latent_dim=4)).double()
    x = make_batch({m: v.double() for m, v in random_batch(8).inputs.items()})
    terms = model.loss(x)
    assert terms["loss"].dtype == torch.float64 and torch.isfinite(terms["loss"])
    terms["loss"].backward()
