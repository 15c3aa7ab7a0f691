"""MMVAE+: the bound against a brute-force loop, DReG's gradients against IWAE's (exactly where
they must agree, in expectation elsewhere), where gradients may flow, missing modalities,
generation, a short real-data run and the CLI end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import random_batch
from torch.distributions import Laplace

from dmvae import nets
from dmvae import objectives as obj
from dmvae.data.batch import make_batch
from dmvae.likelihoods import Likelihood
from dmvae.models.mmvaeplus import MMVAEPlus, MMVAEPlusConfig

NAMES = ("a", "b", "c")
STYLE, SHARED = 2, 3


def tiny(names=NAMES, side=4, hidden=(8,), sigmoid=True, **cfg) -> MMVAEPlus:
    torch.manual_seed(0)
    d = STYLE + SHARED
    enc = {m: nets.MLPEncoder((1, side, side), hidden, d) for m in names}
    dec = {m: nets.MLPDecoder(d, hidden, (1, side, side), sigmoid) for m in names}
    config = MMVAEPlusConfig(**{"shared_dim": SHARED, "style_dim": STYLE, **cfg})
    return MMVAEPlus(enc, dec, {m: Likelihood("laplace", 0.75) for m in names}, config)


def record_samples(model: MMVAEPlus) -> list[torch.Tensor]:
    """Every sample the model draws, in order: first u [K, E, B, D], then one auxiliary-prior
    draw [E * K * B, style_dim] per target modality."""
    drawn, rsample = [], model.family.rsample

    def recording(*args, **kwargs):
        out = rsample(*args, **kwargs)
        drawn.append(out.detach())
        return out

    model.family.rsample = recording
    return drawn


def brute_force_bound(model: MMVAEPlus, x, drawn, beta: float) -> float:
    """The stratified bound by explicit loops with torch.distributions."""
    names, mask = model.modalities, x.mask  # mask [B, M]
    u = drawn[0].transpose(0, 1)  # [E, K, B, D]
    e_count, k_count, b_count, _ = u.shape
    aux = {m: drawn[1 + j].view(e_count, k_count, b_count, STYLE) for j, m in enumerate(names)}
    posts = {}
    for m in names:
        loc, raw = model.encoders[m](x.inputs[m])
        # Official: one head per latent, each scale a softmax over its own dimensions.
        w_scale = F.softmax(raw[:, :STYLE], -1) * STYLE + 1e-6
        z_scale = F.softmax(raw[:, STYLE:], -1) * SHARED + 1e-6
        posts[m] = Laplace(loc, torch.cat([w_scale, z_scale], -1))
    prior = Laplace(torch.zeros(STYLE + SHARED), torch.ones(STYLE + SHARED))
    total = 0.0
    for b in range(b_count):
        seen = [j for j in range(len(names)) if mask[b, j]]
        per_expert = []
        for e in seen:
            lws = []
            for k in range(k_count):
                w, z = u[e, k, b, :STYLE], u[e, k, b, STYLE:]
                q_z = [
                    Laplace(posts[names[j]].loc[b, STYLE:], posts[names[j]].scale[b, STYLE:])
                    .log_prob(z)
                    .sum()
                    for j in seen
                ]
                log_mix = torch.logsumexp(torch.stack(q_z), 0) - math.log(len(seen))
                qe = posts[names[e]]
                log_qw = Laplace(qe.loc[b, :STYLE], qe.scale[b, :STYLE]).log_prob(w).sum()
                lik = 0.0
                for n in seen:
                    w_n = w if n == e else aux[names[n]][e, k, b]
                    mean = model.decoders[names[n]](torch.cat([w_n, z])[None])[0]
                    lik = lik + Laplace(mean, 0.75).log_prob(x.targets[names[n]][b]).sum()
                kl_like = prior.log_prob(u[e, k, b]).sum() - log_mix - log_qw
                lws.append(lik + beta * kl_like)
            per_expert.append(torch.logsumexp(torch.stack(lws), 0) - math.log(k_count))
        total += float(torch.stack(per_expert).mean())
    return total / b_count


@pytest.mark.parametrize("masked", [False, True])
def test_bound_matches_a_brute_force_loop(masked):
    model = tiny(K=3, estimator="iwae", beta=2.5)
    x = random_batch(4, side=4)
    if masked:
        x.mask[0, 1] = False
        x.mask[2, 0] = x.mask[2, 2] = False
    drawn = record_samples(model)
    with torch.no_grad():
        terms = model.loss(x)
        reference = brute_force_bound(model, x, drawn, beta=2.5)
    assert terms["bound"].item() == pytest.approx(reference, rel=1e-5)
    assert -terms["loss"].item() == pytest.approx(reference, rel=1e-5)


def encoder_grads(model: MMVAEPlus, x, estimator: str, seed: int = 3, kl_weight=1.0) -> dict:
    model.config = MMVAEPlusConfig(**{**model.config.__dict__, "estimator": estimator})
    model.zero_grad()
    torch.manual_seed(seed)
    model.loss(x, kl_weight=kl_weight)["loss"].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_dreg_matches_iwae_on_decoders_and_auxiliary_priors_and_everywhere_at_beta_zero():
    """Same noise: the surrogate's weights w~ give the IWAE gradient wherever log q does not
    depend on the parameter; at beta = 0 (no log q in log w) DReG is IWAE everywhere."""
    model, x = tiny(K=4, beta=2.5), random_batch(5, side=4)
    dreg, iwae = encoder_grads(model, x, "dreg"), encoder_grads(model, x, "iwae")
    for name, g in iwae.items():
        if name.startswith(("decoders.", "aux_raw_scale.")):
            assert torch.allclose(dreg[name], g, atol=1e-6, rtol=1e-4), name
    enc = [n for n in iwae if n.startswith("encoders.")]
    assert any(not torch.allclose(dreg[n], iwae[n], atol=1e-5) for n in enc)
    dreg, iwae = encoder_grads(model, x, "dreg", 4, 0.0), encoder_grads(model, x, "iwae", 4, 0.0)
    assert all(torch.allclose(dreg[n], iwae[n], atol=1e-6, rtol=1e-4) for n in iwae)


def test_at_k1_dreg_drops_exactly_the_score_function_term():
    """K = 1: IWAE's encoder gradient is the path term minus beta times the score
    d/dphi [log q_mix(z) + log q(w)] at fixed samples; DReG keeps the path term alone, so
    their difference is the score term, computed here with the samples detached."""
    beta = 2.5
    model, x = tiny(K=1, beta=beta), random_batch(5, side=4)
    x.mask[1, 2] = False
    drawn = record_samples(model)
    dreg = encoder_grads(model, x, "dreg")
    iwae = encoder_grads(model, x, "iwae")
    u = drawn[0].transpose(0, 1)  # the same samples in both calls (same seed)
    assert torch.equal(drawn[0], drawn[len(drawn) // 2])
    model.zero_grad()
    loc, scale = model._posteriors(x.inputs, NAMES)
    observed = x.mask.T
    weight = observed.float() / observed.sum(0)
    kl_like = model.kl_like_terms(u, loc, scale, observed).masked_fill(~observed[:, None], 0)
    score_loss = -(beta * kl_like.mean(1) * weight).sum(0).mean()
    score_loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("encoders."):
            assert torch.allclose(iwae[name] - dreg[name], p.grad, atol=1e-5, rtol=1e-4), name


def mc_encoder_gradient(estimator, beta, names, k=4, chunks=20, n=2000):
    """Mean and standard error of the encoders' gradient over chunks x n rows of 4 inputs."""
    model = tiny(names, side=2, hidden=(), sigmoid=False, K=k, estimator=estimator, beta=beta)
    g = torch.Generator().manual_seed(5)
    x = make_batch({m: torch.rand(4, 1, 2, 2, generator=g).repeat(n // 4, 1, 1, 1) for m in names})
    torch.manual_seed(1)
    draws = []
    for _ in range(chunks):
        model.zero_grad()
        model.loss(x)["loss"].backward()
        draws.append(torch.cat([p.grad.flatten() for p in model.encoders.parameters()]))
    draws = torch.stack(draws)
    return draws.mean(0), draws.std(0) / math.sqrt(chunks)


def z_scores(a, b):
    return ((a[0] - b[0]) / (a[1].pow(2) + b[1].pow(2)).sqrt()).abs()


@pytest.mark.parametrize(
    ("beta", "names", "k"), [(1.0, ("a",), 4), (2.5, ("a",), 4), (2.5, ("a", "b"), 1)]
)
def test_dreg_is_an_unbiased_lower_variance_estimate_of_the_iwae_gradient(beta, names, k):
    """Monte Carlo over 40 000 rows: the DReG and IWAE encoder gradients agree in expectation
    (one posterior at any beta, thanks to the (1 - beta) w~ + beta w~^2 weight; the mixture at
    K = 1) and DReG's spread is smaller."""
    iwae = mc_encoder_gradient("iwae", beta, names, k)
    dreg = mc_encoder_gradient("dreg", beta, names, k)
    assert z_scores(dreg, iwae).max() < 4.5
    assert (dreg[1] / iwae[1]).median() < 0.9


def test_tuckers_weight_alone_is_biased_when_beta_is_not_one(monkeypatch):
    """The w~^2 hook without the beta correction misses the IWAE gradient by many errors."""
    plain = obj.dreg_looser
    monkeypatch.setattr(obj, "dreg_looser", lambda lw, z, beta=1.0: plain(lw, z))
    iwae = mc_encoder_gradient("iwae", 2.5, ("a",))
    dreg = mc_encoder_gradient("dreg", 2.5, ("a",))
    assert z_scores(dreg, iwae).max() > 10


def test_auxiliary_samples_carry_no_gradient_to_encoders():
    """Cross-reconstructions decode (w_n ~ r_n, z_m): their w reaches r_n's scale only, their
    z reaches expert m's encoder only."""
    model, x = tiny(K=2), random_batch(5, side=4)
    seen = {}
    model.decoders["b"].register_forward_hook(lambda mod, args, out: seen.update(z=args[0]))
    model.loss(x)
    latent = seen["z"].view(3, 2, 5, STYLE + SHARED)  # [E, K, B, D] decoded for target b
    enc = {m: list(model.encoders[m].parameters()) for m in NAMES}

    def reaches(t, params):
        grads = torch.autograd.grad(t.sum(), params, retain_graph=True, allow_unused=True)
        return any(g is not None and g.any() for g in grads)

    cross_w, cross_z = latent[0, ..., :STYLE], latent[0, ..., STYLE:]  # from expert a
    assert not any(reaches(cross_w, enc[m]) for m in NAMES)
    assert reaches(cross_w, [model.aux_raw_scale["b"]])
    assert reaches(cross_z, enc["a"]) and not reaches(cross_z, enc["b"] + enc["c"])
    assert reaches(latent[1, ..., :STYLE], enc["b"])  # own reconstruction: b's w posterior


def test_dreg_log_q_sees_detached_posterior_parameters(monkeypatch):
    """With the samples held fixed, DReG's log weights reach no encoder: d log w / d phi is all
    path term, (d log w / d u) * d u / d phi."""
    model, x = tiny(K=3, estimator="dreg"), random_batch(5, side=4)
    seen = {}

    def spy(lw, u, beta=1.0):  # records, and leaves u without DReG's hook
        seen.update(lw=lw, u=u)
        return obj.iwae_looser(lw)

    monkeypatch.setattr(obj, "dreg_looser", spy)
    model.loss(x)
    params = list(model.encoders.parameters())
    lw, u = seen["lw"].sum(), seen["u"]
    (d_u,) = torch.autograd.grad(lw, [u], retain_graph=True)
    total = torch.autograd.grad(lw, params, retain_graph=True)
    path = torch.autograd.grad((d_u * u).sum(), params)
    assert all(torch.allclose(t, p, atol=1e-5, rtol=1e-4) for t, p in zip(total, path, strict=True))


@pytest.mark.parametrize("estimator", ["dreg", "iwae", "elbo"])
def test_missing_modality_gets_no_gradient_and_the_loss_stays_finite(estimator):
    model, x = tiny(K=3, estimator=estimator), random_batch(5, side=4)
    x.mask[:, 2] = False
    x.mask[0, 1] = False
    terms = model.loss(x)
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    for part in (model.encoders["c"], model.decoders["c"]):
        assert all(p.grad is None or not p.grad.any() for p in part.parameters())
    assert model.aux_raw_scale["c"].grad is None or not model.aux_raw_scale["c"].grad.any()
    assert any(p.grad is not None and p.grad.any() for p in model.encoders["a"].parameters())


def test_generation_shapes_styles_and_embeddings():
    model = tiny().eval()
    x = random_batch(3, side=4).inputs
    with torch.no_grad():
        out = model.conditional_generate(x, ["c", "a"], ["a", "b"], n_per_input=4)
        assert out["c"].shape == out["a"].shape == (12, 1, 4, 4)
        assert model.generate(5)["b"].shape == (5, 1, 4, 4)
        assert model.prior_sampler()(7).shape == (7, SHARED)
        fixed = torch.zeros(2, STYLE)
        assert model.conditional_generate(x, ["a"], ["a"], 2, styles={"a": fixed})["a"].shape == (
            6,
            1,
            4,
            4,
        )

        def draw(style):
            g = torch.Generator().manual_seed(0)
            return model.conditional_generate(x, ["a"], ["a"], 2, style=style, generator=g)["a"]

        prior, posterior = draw("prior"), draw("posterior")
        assert torch.equal(draw("prior"), prior)  # seeded
        assert not torch.allclose(prior, posterior)
        assert set(model.reconstruct(x, ["a"])) == set(NAMES)
        assert model.embed(x, ["a", "b"]).shape == (3, SHARED)
        with_style = model.embed(x, ["a", "b"], with_style=True)
        assert with_style.shape == (3, SHARED + 2 * STYLE)
        assert torch.allclose(with_style[:, :SHARED], model.encode(x, ["a", "b"])[0])
        loc_b = model.encoders["b"](x["b"])[0][:, :STYLE]
        assert torch.allclose(with_style[:, SHARED + STYLE :], loc_b)
        assert model.ex_post_embeddings(x).shape == (9, SHARED)
    enc = {m: nets.MLPEncoder((1, 4, 4), (8,), 4) for m in NAMES}
    dec = {m: nets.MLPDecoder(4, (8,), (1, 4, 4), True) for m in NAMES}
    narrow = MMVAEPlus(enc, dec, {m: Likelihood("laplace", 0.75) for m in NAMES}, tiny().config)
    with pytest.raises(ValueError, match="style_dim \\+ shared_dim = 5"):
        narrow.embed(x, ["a"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"K": 0}, "K must be at least 1"),
        ({"style_dim": 0}, "style_dim must be at least 1"),
        ({"estimator": "x"}, "estimator='x' is unknown"),
        ({"distribution": "cauchy"}, "distribution='cauchy' is unknown"),
        ({"beta": -1.0}, "beta must be >= 0"),
    ],
)
def test_config_errors_name_the_setting(setting, message):
    with pytest.raises(ValueError, match=message):
        MMVAEPlusConfig(**setting)


def test_normal_family_trains_and_presets_hold_the_official_polymnist_settings():
    model, x = tiny(K=2, distribution="normal", estimator="dreg"), random_batch(5, side=4)
    model.loss(x)["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.encoders.parameters())
    from dmvae.models import get_model

    poly = get_model("mmvaeplus").preset("polymnist")
    assert dict(poly.model) == dict(shared_dim=32, style_dim=32, K=1, estimator="iwae", beta=2.5)
    assert poly.train["batch_size"] == 32 and poly.train["epochs"] == 150


@pytest.mark.slow
def test_learns_a_linear_readable_digit_on_real_paired_mnist(tmp_path, mnist_root):
    """The paired-MNIST preset (beta 1) for 900 steps (about 100 s on 2 CPU cores): measured
    probe 0.49 (chance 0.10); at 300 steps, or at beta 2.5 up to 700 steps, the model still sits
    on the mean-image plateau (docs/protocol.md, "MMVAE+")."""
    from dmvae.config import RunConfig
    from dmvae.evaluation.latent import embeddings, linear_probe_accuracy
    from dmvae.training import train

    settings = {"out": str(tmp_path / "run"), "max_steps": 900, "device": "cpu"}
    settings.update({"progress": False, "data.root": str(mnist_root), "log_every": 50})
    config = RunConfig.preset("paired-mnist", "mmvaeplus", settings)
    model = train(config).eval()
    names = tuple(model.modalities)
    train_set = config.build_data("train").random_subset(2000, 0)
    test = config.build_data("test").random_subset(1000, 0)
    probe = linear_probe_accuracy(
        *embeddings(model, train_set, names), *embeddings(model, test, names)
    )
    assert probe > 0.35, probe  # chance: 10 %
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    assert log[-1]["bound"] > log[0]["bound"]


def test_cli_trains_and_evaluates(tmp_path, mnist_root, quick_classifiers, monkeypatch, capsys):
    from dmvae.cli import main
    from dmvae.evaluation import context, suite

    def small(run_dir, settings, device="cpu"):
        ctx = context.build_context(run_dir, settings, device)
        ctx.train = ctx.train.random_subset(500, seed=1)
        return ctx

    monkeypatch.setattr(suite, "build_context", small)
    out = tmp_path / "run"
    args = ["train", "--model", "mmvaeplus", "--experiment", "paired-mnist", "--max-steps", "3"]
    args += ["--batch-size", "32", "--device", "cpu", "--data-root", str(mnist_root)]
    assert main([*args, "--no-progress", "--out", str(out), "--set", "model.K=2"]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["name"] == "mmvaeplus"
    metrics = ["coherence", "latent", "gmm", "joint", "grids"]
    evaluate = ["evaluate", str(out), "--metrics", *metrics, "--max-test", "100"]
    evaluate += ["--num-samples", "100", "--fid", "none", "--device", "cpu", "--no-progress"]
    assert main(evaluate) == 0
    result = json.loads((out / "eval" / "metrics.json").read_text())
    assert {"coherence", "latent", "latent_style", "joint_coherence"} <= set(result)
    assert (out / "eval" / "conditional_m0_to_m1.png").exists()


def test_a_learned_prior_takes_one_softmax_over_w_and_z():
    """The official `pu_params`: one softmax over the concatenated (w, z) raw scales, times D,
    not one per part (which would keep the w scales' sum at style_dim)."""
    model = tiny(learn_prior=True)
    assert model.prior_raw_scale.requires_grad
    with torch.no_grad():
        model.prior_raw_scale.copy_(torch.linspace(-2.0, 1.0, model.prior_raw_scale.numel()))
    raw = model.prior_raw_scale.detach()
    scale = model.prior_scale()
    assert torch.allclose(scale, F.softmax(raw, -1) * raw.numel())
    s = model.style_dim
    assert scale[:s].sum().item() < 0.5 * s  # the low raw values are w's
    assert scale.sum().item() == pytest.approx(raw.numel(), rel=1e-5)
    model.loss(random_batch(5, side=4))["loss"].backward()
    assert model.prior_raw_scale.grad is not None and model.prior_raw_scale.grad.abs().sum() > 0
