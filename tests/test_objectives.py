"""The objectives against direct computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Laplace, Normal, kl_divergence

from dmvae import objectives as obj


def test_poe_equals_normalised_product_of_densities():
    mu = torch.tensor([[[0.5]], [[-1.0]], [[2.0]]], dtype=torch.float64)
    logvar = torch.tensor([[[0.3]], [[-0.5]], [[1.2]]], dtype=torch.float64)
    grid = torch.linspace(-10, 10, 200001, dtype=torch.float64)
    log_density = sum(
        Normal(mu[e, 0, 0], (0.5 * logvar[e, 0, 0]).exp()).log_prob(grid) for e in range(3)
    )
    density = (log_density - log_density.max()).exp()
    density = density / torch.trapezoid(density, grid)
    mean = torch.trapezoid(grid * density, grid)
    var = torch.trapezoid((grid - mean) ** 2 * density, grid)
    poe_mu, poe_logvar = obj.product_of_experts(mu, logvar)
    assert poe_mu.item() == pytest.approx(mean.item(), abs=1e-6)
    assert poe_logvar.exp().item() == pytest.approx(var.item(), rel=1e-6)


def test_poe_mask_drops_experts_and_prior_expert_is_standard_normal():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    mask = torch.tensor([[True, False, True, True], [True, True, False, True], [False] * 4])
    m, lv = obj.product_of_experts(mu, logvar, mask)
    for b in range(4):
        keep = mask[:, b]
        if keep.any():
            ref = obj.product_of_experts(mu[keep, b : b + 1], logvar[keep, b : b + 1])
            assert torch.allclose(m[b], ref[0][0], atol=1e-6)
            assert torch.allclose(lv[b], ref[1][0], atol=1e-6)
    with_prior = obj.product_of_experts(mu, logvar, prior_expert=True)
    explicit = obj.product_of_experts(
        torch.cat([mu, torch.zeros(1, 4, 5)]), torch.cat([logvar, torch.zeros(1, 4, 5)])
    )
    assert torch.allclose(with_prior[0], explicit[0], atol=1e-6)
    empty = obj.product_of_experts(mu, logvar, torch.zeros(3, 4, dtype=torch.bool))
    assert torch.equal(empty[0], torch.zeros(4, 5)) and torch.equal(empty[1], torch.zeros(4, 5))


def test_poe_gradient_skips_masked_experts():
    mu = torch.randn(2, 3, 4, requires_grad=True)
    logvar = torch.randn(2, 3, 4, requires_grad=True)
    mask = torch.tensor([[True, True, True], [False, True, False]])
    out_mu, out_lv = obj.product_of_experts(mu, logvar, mask)
    (out_mu.sum() + out_lv.sum()).backward()
    assert torch.count_nonzero(mu.grad[1, 0]) == 0 and torch.count_nonzero(mu.grad[1, 1]) > 0
    assert torch.isfinite(logvar.grad).all()


def test_poe_is_stable_for_extreme_log_variances():
    mu = torch.tensor([[[1.0, -3.0]], [[2.0, 0.5]], [[-1.0, 4.0]]])
    logvar = torch.tensor([[[-100.0, 100.0]], [[100.0, -95.0]], [[0.0, 90.0]]])
    poe_mu, poe_logvar = obj.product_of_experts(mu, logvar)
    prec = (-logvar.double()).exp()
    ref_mu = (prec * mu.double()).sum(0) / prec.sum(0)
    assert torch.isfinite(poe_mu).all() and torch.isfinite(poe_logvar).all()
    assert torch.allclose(poe_mu.double(), ref_mu, atol=1e-5)
    assert torch.allclose(poe_logvar.double(), -prec.sum(0).log(), atol=1e-4)


def test_kl_and_log_densities_match_torch_distributions():
    torch.manual_seed(1)
    mu, logvar, x = torch.randn(6, 3), torch.randn(6, 3), torch.randn(6, 3)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(obj.kl_normal_standard(mu, logvar), ref, atol=1e-5)
    normal = Normal(mu, (0.5 * logvar).exp()).log_prob(x)
    assert torch.allclose(obj.gaussian_log_prob(x, mu, logvar), normal, atol=1e-5)
    assert torch.allclose(obj.laplace_log_prob(x, mu, 0.75), Laplace(mu, 0.75).log_prob(x))
    p, xb = torch.rand(6, 3), torch.randint(0, 2, (6, 3)).float()
    assert torch.allclose(obj.bernoulli_log_prob(xb, p), Bernoulli(p).log_prob(xb), atol=1e-5)


def test_bernoulli_log_prob_is_finite_at_saturated_probabilities():
    probs, x = torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 1.0, 0.0])
    lp = obj.bernoulli_log_prob(x, probs)
    assert torch.isfinite(lp).all()
    assert lp[:2].abs().max() < 1e-5 and (lp[2:] < -10).all()
    scale = torch.tensor([0.5, 2.0])
    loc, xs = torch.zeros(2), torch.tensor([1.0, -1.0])
    assert torch.allclose(obj.laplace_log_prob(xs, loc, scale), Laplace(loc, scale).log_prob(xs))


def test_sum_except_batch_keeps_the_leading_dimensions():
    t = torch.arange(24.0).view(2, 3, 4)
    assert torch.equal(obj.sum_except_batch(t), t.sum(dim=(1, 2)))
    assert torch.equal(obj.sum_except_batch(t, batch_dims=2), t.sum(-1))


def test_reparameterize_is_seeded_unbiased_and_differentiable():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    first = obj.reparameterize(
        mu.expand(100000, 2), logvar.expand(100000, 2), torch.Generator().manual_seed(0)
    )
    again = obj.reparameterize(
        mu.expand(100000, 2), logvar.expand(100000, 2), torch.Generator().manual_seed(0)
    )
    assert torch.equal(first, again)
    assert torch.allclose(first.mean(0), mu.detach(), atol=0.02)
    assert torch.allclose(first.var(0), logvar.detach().exp(), rtol=0.02)
    first.sum().backward()
    eps = (first.detach() - mu.detach()) / (0.5 * logvar.detach()).exp()
    assert torch.allclose(mu.grad, torch.full((2,), 100000.0))
    expected = (0.5 * (0.5 * logvar.detach()).exp() * eps).sum(0)
    assert torch.allclose(logvar.grad, expected, rtol=1e-4, atol=1e-2)


def test_permute_batch_shuffles_whole_rows_reproducibly():
    x = torch.arange(64.0).view(32, 2)
    g = torch.Generator().manual_seed(0)
    first, second = obj.permute_batch(x, g), obj.permute_batch(x, g)
    assert torch.equal(first[:, 1] - first[:, 0], torch.ones(32))  # rows stay intact
    assert torch.equal(first[:, 0].sort().values, x[:, 0])
    assert not torch.equal(first, x) and not torch.equal(first, second)
    assert torch.equal(first, obj.permute_batch(x, torch.Generator().manual_seed(0)))


def test_laplace_rsample_has_the_right_moments():
    torch.manual_seed(0)
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])
    z = obj.laplace_rsample(loc, scale, 200000)
    assert torch.allclose(z.mean(0), loc, atol=0.02)
    assert torch.allclose(z.var(0), 2 * scale**2, rtol=0.03)


def test_info_nce_matches_a_direct_computation():
    torch.manual_seed(2)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    z = torch.nn.functional.normalize(torch.cat([a, b]), dim=-1)
    n, total = 5, 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        sims = [math.exp(float(z[i] @ z[j]) / 0.5) for j in range(2 * n) if j != i]
        total += -math.log(math.exp(float(z[i] @ z[partner]) / 0.5) / sum(sims))
    assert obj.info_nce(a, b, temperature=0.5).item() == pytest.approx(total / (2 * n), rel=1e-5)


def test_info_nce_bound_approaches_log_batch_when_aligned_and_zero_when_random():
    n = 64
    aligned = torch.eye(n)
    loss = obj.info_nce(aligned, aligned.clone(), temperature=0.05)
    assert obj.info_nce_bound(loss, n) == pytest.approx(math.log(2 * n - 1), abs=1e-3)
    torch.manual_seed(3)
    losses = [obj.info_nce(torch.randn(n, 16), torch.randn(n, 16)).item() for _ in range(20)]
    assert abs(obj.info_nce_bound(sum(losses) / 20, n)) < 0.05


def train_discriminator(s: torch.Tensor, c: torch.Tensor, steps: int = 300) -> float:
    torch.manual_seed(0)
    disc = nn.Sequential(
        nn.Linear(4, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 2)
    )
    opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(s), (256,))
        joint = torch.cat([s[idx], c[idx]], 1)
        perm = torch.cat([obj.permute_batch(s[idx]), c[idx]], 1)
        loss = obj.tc_discriminator_loss(disc(joint), disc(perm))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return obj.tc_estimate(disc(torch.cat([s, c], 1))).item()


@pytest.mark.slow
def test_tc_estimate_near_zero_when_independent_positive_when_dependent():
    g = torch.Generator().manual_seed(4)
    c = torch.randn(4096, 2, generator=g)
    independent = torch.randn(4096, 2, generator=g)
    dependent = c + 0.1 * torch.randn(4096, 2, generator=g)
    assert abs(train_discriminator(independent, c)) < 0.1
    assert train_discriminator(dependent, c) > 0.5


def dreg_log_weights(z, x, dec_w, q_mu, q_logvar):
    """log p(x|z) + log p(z) - log q(z|x) of a linear-Gaussian toy model, [E, K, B]."""
    log_px = -0.5 * (x - (z * dec_w).sum(-1)) ** 2
    log_pz = obj.gaussian_log_prob(z, torch.zeros(()), torch.zeros(())).sum(-1)
    return log_px + log_pz - obj.gaussian_log_prob(z, q_mu, q_logvar).sum(-1)


def test_dreg_gradients_follow_the_dreg_formula():
    torch.manual_seed(5)
    e, k, b, d = 2, 4, 3, 2
    enc_mu = torch.randn(b, d, requires_grad=True)
    enc_logvar = (0.3 * torch.randn(b, d)).requires_grad_(True)
    dec_w = torch.randn(d, requires_grad=True)
    x, eps = torch.randn(b), torch.randn(e, k, b, d)

    z = enc_mu + (0.5 * enc_logvar).exp() * eps
    lw = dreg_log_weights(z, x, dec_w, enc_mu.detach(), enc_logvar.detach())
    obj.dreg_looser(lw, z).sum().backward()

    # By hand, with z as a leaf: w~ = softmax_K(lw); the encoder gets
    # sum_{e,k} w~^2 dlw/dz dz/dphi and the decoder sum_{e,k,b} w~ dlw/dtheta.
    z_leaf = z.detach().requires_grad_(True)
    theta = dec_w.detach().clone().requires_grad_(True)
    lw_ref = dreg_log_weights(z_leaf, x, theta, enc_mu.detach(), enc_logvar.detach())
    w = torch.softmax(lw_ref.detach(), dim=1)
    (dlw_dz,) = torch.autograd.grad(lw_ref.sum(), [z_leaf], retain_graph=True)
    weighted = w.unsqueeze(-1) ** 2 * dlw_dz
    dz_dlogvar = 0.5 * (0.5 * enc_logvar.detach()).exp() * eps
    assert torch.allclose(enc_mu.grad, weighted.sum(dim=(0, 1)), atol=1e-5)
    assert torch.allclose(enc_logvar.grad, (weighted * dz_dlogvar).sum(dim=(0, 1)), atol=1e-5)
    expected_theta = torch.zeros(d)
    for idx in torch.cartesian_prod(torch.arange(e), torch.arange(k), torch.arange(b)):
        i, j, n = idx.tolist()
        (g,) = torch.autograd.grad(lw_ref[i, j, n], theta, retain_graph=True)
        expected_theta += w[i, j, n] * g
    assert torch.allclose(dec_w.grad, expected_theta, atol=1e-5)
    assert torch.count_nonzero(enc_mu.grad) > 0 and torch.count_nonzero(enc_logvar.grad) > 0


def test_dreg_surrogate_value_is_the_bound_plus_the_weight_entropy_gap():
    torch.manual_seed(7)
    lw = 3 * torch.randn(3, 5, 4)
    w = torch.softmax(lw, dim=1)
    entropy = -(w * w.log()).sum(1)
    surrogate = obj.dreg_looser(lw, torch.randn(3, 5, 4, 2))
    expected = obj.iwae_looser(lw) + math.log(5) - entropy
    assert surrogate.shape == (3, 4)
    assert torch.allclose(surrogate, expected, atol=1e-5)
    assert (surrogate >= obj.iwae_looser(lw) - 1e-6).all()


def test_iwae_looser_value_and_anneal_weight():
    lw = torch.log(torch.tensor([[[1.0], [3.0]], [[2.0], [2.0]]]))  # [E=2, K=2, B=1]
    expected = (math.log(2.0) + math.log(2.0)) / 2
    assert obj.iwae_looser(lw).mean(0).item() == pytest.approx(expected)
    assert obj.kl_anneal_weight(0, 10) == 0 and obj.kl_anneal_weight(5, 10) == 0.5
    assert obj.kl_anneal_weight(50, 10) == 1.0 and obj.kl_anneal_weight(3, 0) == 1.0


def test_fused_l1_distance_matches_autograd_of_the_plain_expression():
    torch.manual_seed(6)
    loc = torch.randn(2, 3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: obj.l1_distance(a, b, 2), (loc, x))
    plain = (loc - x).abs().flatten(3).sum(-1)
    assert torch.allclose(obj.l1_distance(loc, x, 2), plain)
