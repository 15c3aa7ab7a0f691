"""Importance-sampled test log-likelihoods against closed forms: models with linear Gaussian
encoders and decoders, where log p(x) and log p(x_t | x_S) are Gaussian log-densities."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from dmvae.densities import LAPLACE, NORMAL, Factorised, Mixture
from dmvae.evaluation.loglik import likelihood_maps, log_likelihood
from dmvae.likelihoods import Likelihood
from dmvae.models.dmvae import DMVAE, DMVAEConfig
from dmvae.models.mopoe import MoPoE, MoPoEConfig
from dmvae.models.mvae import MVAE, MVAEConfig

NAMES = ("a", "b", "c")
SIGMA = 0.5


class Affine(nn.Module):
    """x -> weight @ x + bias, rows [N, d_in] -> [N, d_out]."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class Expert(nn.Module):
    """A Gaussian expert: mean an affine map of x, a fixed log-variance per dimension."""

    def __init__(self, mean: Affine, logvar: torch.Tensor) -> None:
        super().__init__()
        self.mean, self.logvar = mean, nn.Parameter(logvar)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.mean(x)
        return mu, self.logvar.expand_as(mu)


def gaussian_logpdf(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


# ---------------------------------------------------------------- one shared latent (MVAE, MoPoE)
def shared_latent_model(cls, config, shift: float = 0.0):
    """x_m = a_m * z + b_m + N(0, SIGMA^2), z in R^2, with experts N((x_m - b_m) / a_m,
    SIGMA^2 / a_m^2): the exact likelihood factors, so the PoE with the prior expert is the exact
    posterior. `shift` moves the experts' means (an imperfect proposal)."""
    g = torch.Generator().manual_seed(0)
    a = {m: 0.5 + torch.rand(2, generator=g, dtype=torch.float64) for m in NAMES}
    b = {m: torch.randn(2, generator=g, dtype=torch.float64) for m in NAMES}
    enc = {
        m: Expert(
            Affine(torch.diag(1 / a[m]), -b[m] / a[m] + shift),
            torch.log(SIGMA**2 / a[m] ** 2),
        )
        for m in NAMES
    }
    dec = {m: Affine(torch.diag(a[m]), b[m]) for m in NAMES}
    lik = {m: Likelihood("normal", SIGMA) for m in NAMES}
    model = cls(enc, dec, lik, config).double().eval()
    loading = torch.cat([torch.diag(a[m]) for m in NAMES])  # [6, 2]
    mean = torch.cat([b[m] for m in NAMES])
    cov = loading @ loading.T + SIGMA**2 * torch.eye(6, dtype=torch.float64)
    return model, mean, cov


def split(x: torch.Tensor, width: int = 2) -> dict[str, torch.Tensor]:
    return {m: x[:, i * width : (i + 1) * width] for i, m in enumerate(NAMES)}


def marginal(x, mean, cov, keep: list[int]) -> torch.Tensor:
    """log N of the coordinates `keep` of x under N(mean, cov)."""
    idx = torch.tensor(keep)
    return gaussian_logpdf(x[:, idx], mean[idx], cov[idx][:, idx])


def coords(names, width: int = 2) -> list[int]:
    return [NAMES.index(m) * width + j for m in names for j in range(width)]


def data(mean, cov, n: int = 200) -> torch.Tensor:
    torch.manual_seed(1)
    return MultivariateNormal(mean, covariance_matrix=cov).sample((n,))


def estimate(model, x, scored, given=(), k=1, seed=0, width=2):
    parts = split(x, width)
    g = torch.Generator().manual_seed(seed)
    return log_likelihood(model, parts, parts, scored, given, k, g)


def test_joint_is_exact_with_the_exact_posterior_for_any_K():
    """With q(z | X) = p(z | X) every importance weight equals p(X): no variance, no bias."""
    model, mean, cov = shared_latent_model(MVAE, MVAEConfig(latent_dim=2))
    x = data(mean, cov)
    truth = gaussian_logpdf(x, mean, cov)
    for k in (1, 7):
        torch.testing.assert_close(estimate(model, x, NAMES, k=k), truth, rtol=0, atol=1e-9)
    # a subset's marginal: the subset's PoE is its exact posterior too
    truth_ab = marginal(x, mean, cov, coords(("a", "b")))
    torch.testing.assert_close(estimate(model, x, ("a", "b")), truth_ab, rtol=0, atol=1e-9)


def test_conditional_converges_to_the_closed_form_from_below():
    """log p(x_c | x_a, x_b) by posterior-predictive sampling of q(z | x_a, x_b) = p(z | ...):
    a lower bound in expectation (Jensen), exact as K grows."""
    model, mean, cov = shared_latent_model(MVAE, MVAEConfig(latent_dim=2))
    x = data(mean, cov)
    given = ("a", "b")
    truth = marginal(x, mean, cov, coords(NAMES)) - marginal(x, mean, cov, coords(given))
    gaps = {k: float((truth - estimate(model, x, ("c",), given, k)).mean()) for k in (1, 10, 5000)}
    assert gaps[1] > 0.1, gaps  # a lower bound that is loose with one sample
    assert gaps[1] > gaps[10] > gaps[5000] > -0.01, gaps
    assert gaps[5000] < 0.01, gaps


@pytest.mark.parametrize(
    "cls, config",
    [(MVAE, MVAEConfig(latent_dim=2)), (MoPoE, MoPoEConfig(latent_dim=2))],
    ids=["mvae-poe", "mopoe-mixture"],
)
def test_joint_bound_tightens_to_the_closed_form_as_K_grows(cls, config):
    """An imperfect proposal (shifted experts; MoPoE's mixture of subset products): the mean
    estimate stays below log p(X) and approaches it as K grows."""
    model, mean, cov = shared_latent_model(cls, config, shift=0.3)
    x = data(mean, cov)
    truth = gaussian_logpdf(x, mean, cov)
    gaps = {k: float((truth - estimate(model, x, NAMES, k=k)).mean()) for k in (1, 10, 100, 20000)}
    # measured (mean over 200 tuples): MVAE 1.54, 0.36, -0.004, 0.002; MoPoE 3.1, 0.21, 0.007, 0.000
    assert gaps[1] > gaps[10] > 0.1, gaps
    assert gaps[100] > -0.03, gaps  # the mean of 200 noisy estimates may pass the truth a little
    assert abs(gaps[20000]) < 0.02, gaps


# ------------------------------------------------------------ shared plus private latents (DMVAE)
def style_model():
    """x_m = u_m c + v_m s_m + b_m + N(0, SIGMA^2 I), x_m in R^2, c and s_m in R: DMVAE with
    linear experts over [s_m, c] (projections of x_m with unit variance, far from the
    posterior) and decoders
    taking [s_m, c]."""
    g = torch.Generator().manual_seed(2)
    u = {m: torch.randn(2, generator=g, dtype=torch.float64) for m in NAMES}
    v = {m: torch.randn(2, generator=g, dtype=torch.float64) for m in NAMES}
    b = {m: torch.randn(2, generator=g, dtype=torch.float64) for m in NAMES}
    enc, dec = {}, {}
    for m in NAMES:
        proj = torch.stack([v[m] / v[m].dot(v[m]), u[m] / u[m].dot(u[m])])  # [2, 2]: s, c
        enc[m] = Expert(Affine(proj, -proj @ b[m]), torch.zeros(2, dtype=torch.float64))
        dec[m] = Affine(torch.stack([v[m], u[m]], dim=1), b[m])  # [s, c] -> x
    lik = {m: Likelihood("normal", SIGMA) for m in NAMES}
    config = DMVAEConfig(style_dim=1, content_dim=1, init="pytorch", disc_width=4)
    model = DMVAE(enc, dec, lik, config).double().eval()
    loading = torch.zeros(6, 4, dtype=torch.float64)  # latents (c, s_a, s_b, s_c)
    for i, m in enumerate(NAMES):
        loading[2 * i : 2 * i + 2, 0] = u[m]
        loading[2 * i : 2 * i + 2, 1 + i] = v[m]
    mean = torch.cat([b[m] for m in NAMES])
    cov = loading @ loading.T + SIGMA**2 * torch.eye(6, dtype=torch.float64)
    return model, mean, cov, u, v, b


def test_style_model_joint_converges_to_the_closed_form():
    """DMVAE's proposal q(c | X) prod_m q(s_m | x_m) is not the posterior; with the styles'
    prior-over-posterior weights the estimate still tends to log p(X) from below."""
    model, mean, cov, *_ = style_model()
    x = data(mean, cov, n=100)
    truth = gaussian_logpdf(x, mean, cov)
    gaps = {k: float((truth - estimate(model, x, NAMES, k=k)).mean()) for k in (1, 10, 50000)}
    # measured over three seeds: 14-17, 1.7-2.2 and -0.007..0.011 nats
    assert gaps[1] > gaps[10] > 1.0, gaps
    assert abs(gaps[50000]) < 0.03, gaps


def test_style_model_conditional_marginalises_the_target_style():
    """log p(x_t | x_S) with c ~ q(c | x_S): the target's style is drawn from q(s_t | x_t) and
    weighted by p(s_t) / q(s_t | x_t), so the estimate tends to log of the integral of
    q(c | x_S) N(x_t; u_t c + b_t, v_t v_t' + SIGMA^2 I), a Gaussian in closed form."""
    model, mean, cov, u, v, b = style_model()
    x = data(mean, cov, n=100)
    parts = split(x)
    given, t = ("a", "b"), "c"
    with torch.no_grad():
        mu_c, logvar_c = model.encode(parts, given)  # the content PoE, [N, 1]
    pred_mean = mu_c * u[t] + b[t]  # [N, 2]
    pred_cov = (
        torch.exp(logvar_c)[:, :, None] * torch.outer(u[t], u[t])
        + torch.outer(v[t], v[t])
        + SIGMA**2 * torch.eye(2, dtype=torch.float64)
    )
    truth = MultivariateNormal(pred_mean, covariance_matrix=pred_cov).log_prob(parts[t])
    gap = float((truth - estimate(model, x, (t,), given, k=50000)).mean())
    assert abs(gap) < 0.02, gap


# ------------------------------------------------------------------------- densities, maps
def test_mixture_log_prob_is_the_mean_of_its_component_densities():
    g = torch.Generator().manual_seed(0)
    loc, scale = torch.randn(3, 4, 2, generator=g), torch.rand(3, 4, 2, generator=g) + 0.2
    z = torch.randn(5, 4, 2, generator=g)
    for family in (LAPLACE, NORMAL):
        mix = Mixture(family, loc, scale)
        dens = torch.stack(
            [Factorised(family, loc[c], scale[c]).log_prob(z).exp() for c in range(3)]
        )
        torch.testing.assert_close(mix.log_prob(z), torch.log(dens.mean(0)))


def test_mixture_samples_each_component_equally_often():
    """Samples of a mixture of far-apart unit components land near each location a third of
    the time."""
    loc = torch.tensor([[[-20.0]], [[0.0]], [[20.0]]])  # [C=3, B=1, D=1]
    mix = Mixture(NORMAL, loc, torch.ones_like(loc))
    z = mix.sample(30000, torch.Generator().manual_seed(0))[:, 0, 0]
    shares = torch.stack([(z - c).abs() < 5 for c in (-20.0, 0.0, 20.0)]).float().mean(1)
    torch.testing.assert_close(shares, torch.full((3,), 1 / 3), atol=0.01, rtol=0)


def test_normal_likelihood_is_the_gaussian_log_density():
    x, loc = torch.randn(4, 3, 2), torch.randn(7, 4, 3, 2)
    lik = Likelihood("normal", 0.3, weight=2.0)
    expected = torch.distributions.Normal(loc, 0.3).log_prob(x).sum((-1, -2))
    torch.testing.assert_close(lik.log_density(x, loc), expected)
    torch.testing.assert_close(lik.log_prob(x, loc), 2 * expected)
    assert math.isclose(
        float(Likelihood("laplace", 1.0).log_density(x[:1], x[:1])), -6 * math.log(2), rel_tol=1e-6
    )


def test_the_metric_scores_the_joint_and_each_modality_given_the_others():
    maps = likelihood_maps(NAMES)
    assert maps["joint"] == ((), NAMES)
    assert maps["b+c->a"] == (("b", "c"), ("a",))
    assert len(maps) == 1 + len(NAMES)
    assert list(likelihood_maps(("x",))) == ["joint"]


@pytest.mark.parametrize("name", ["dmvae", "mvae", "mmvae", "mopoe", "mmvaeplus"])
def test_every_model_estimates_finite_log_likelihoods_that_tighten_with_K(name):
    """The library's five models on tiny MLPs: joint and conditional estimates are finite per
    row, more samples give a larger mean joint estimate (a tighter bound), seeded."""
    from conftest import mlp_parts, random_batch

    from dmvae.models import MODELS

    spec = MODELS[name]
    extra = {"dmvae": {"init": "pytorch", "style_dim": 2, "content_dim": 3}}
    extra["mmvaeplus"] = {"style_dim": 2, "shared_dim": 3}
    config = spec.config(**extra.get(name, {"latent_dim": 5}))
    model = spec.model(*mlp_parts(5), config=config).eval()
    batch = random_batch(16)
    names = model.modalities

    def mean(scored, given, k, seed=0):
        g = torch.Generator().manual_seed(seed)
        out = log_likelihood(model, batch.inputs, batch.targets, scored, given, k, g)
        assert out.shape == (16,) and torch.isfinite(out).all()
        return float(out.mean())

    assert mean(names, (), 1) < mean(names, (), 300)
    mean(("c",), ("a", "b"), 10)  # untrained decoders barely read z: no gap to compare
    assert mean(names, (), 5, seed=3) == mean(names, (), 5, seed=3)


def test_mixture_moments_are_those_of_many_samples():
    """The mean and variance MMVAE and MMVAE+ embed with, against a Monte Carlo estimate."""
    g = torch.Generator().manual_seed(0)
    loc, scale = torch.randn(3, 2, 4, generator=g), torch.rand(3, 2, 4, generator=g) + 0.3
    for family in (LAPLACE, NORMAL):
        mix = Mixture(family, loc, scale)
        z = mix.sample(200000, torch.Generator().manual_seed(1))
        mean, logvar = mix.moments()
        torch.testing.assert_close(mean, z.mean(0), atol=0.02, rtol=0)
        torch.testing.assert_close(logvar.exp(), z.var(0), atol=0.05, rtol=0.03)
