"""DMVAE: loss terms, where gradients may and may not flow, discriminator steps, generation."""

from __future__ import annotations

import pytest
import torch

from dmvae import nets
from dmvae.data.batch import make_batch
from dmvae.likelihoods import Likelihood
from dmvae.models.dmvae import DMVAE, DMVAEConfig

NAMES = ("m0", "m1", "m2")
S, C = 4, 3


def tiny_model(disc_width: int = 32, **overrides) -> DMVAE:
    torch.manual_seed(0)
    cfg = DMVAEConfig(
        style_dim=S,
        content_dim=C,
        beta=2.0,
        gamma=5.0,
        delta=3.0,
        disc_width=disc_width,
        **overrides,
    )
    encoders = {m: nets.MLPEncoder((1, 8, 8), (16,), S + C) for m in NAMES}
    decoders = {m: nets.MLPDecoder(S + C, (16,), (1, 8, 8), sigmoid=True) for m in NAMES}
    likelihoods = {m: Likelihood("laplace", 0.75) for m in NAMES}
    return DMVAE(encoders, decoders, likelihoods, cfg)


def tiny_batch(n: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    protos = torch.rand(4, 1, 8, 8, generator=g)
    images = {
        m: (protos[labels] + 0.1 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 1) for m in NAMES
    }
    return make_batch(images, labels)


def head_rows(model: DMVAE, m: str, part: str) -> torch.Tensor:
    """Gradient rows of the style or content head of encoder m (mean and log-variance)."""
    grad = model.encoders[m].heads.weight.grad
    latent = S + C
    sl = slice(0, S) if part == "style" else slice(S, latent)
    shift = slice(sl.start + latent, sl.stop + latent)
    return torch.cat([grad[sl], grad[shift]])


def grads_of(model: DMVAE, term: torch.Tensor) -> None:
    for p in model.parameters():
        p.grad = None
    term.backward(retain_graph=True)


def test_loss_terms_are_named_and_finite():
    model = tiny_model()
    terms = model.loss(tiny_batch())
    for m in NAMES:
        for kind in ("rec", "kl", "tc", "disc"):
            assert f"{kind}/{m}" in terms
    assert "shared" in terms and "loss" in terms
    assert all(torch.isfinite(v) for v in terms.values())


def test_content_gets_no_gradient_from_reconstruction_kl_or_tc():
    model = tiny_model()
    terms = model.loss(tiny_batch())
    for name in ("rec/m0", "kl/m1", "tc/m2"):
        grads_of(model, terms[name])
        m = name.split("/")[1]
        assert torch.count_nonzero(head_rows(model, m, "content")) == 0, name
        assert torch.count_nonzero(head_rows(model, m, "style")) > 0, name


def test_shared_term_trains_content_only():
    model = tiny_model()
    terms = model.loss(tiny_batch())
    grads_of(model, terms["shared"])
    for m in NAMES:
        assert torch.count_nonzero(head_rows(model, m, "content")) > 0
        assert torch.count_nonzero(head_rows(model, m, "style")) == 0
        assert all(p.grad is None for p in model.decoders[m].parameters())


def test_tc_term_leaves_discriminators_and_decoders_alone():
    model = tiny_model()
    terms = model.loss(tiny_batch())
    grads_of(model, terms["tc/m0"])
    assert all(p.grad is None for p in model.discriminators.parameters())
    assert all(p.grad is None for p in model.decoders.parameters())


def test_loss_changes_no_weight_and_hands_each_discriminator_loss_to_the_trainer():
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    model.loss(tiny_batch())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    handed = []

    def update(name, loss):
        grads_of(model, loss)
        touched = {
            m
            for m, d in model.discriminators.items()
            if any(p.grad is not None for p in d.parameters())
        }
        others = [p for n, p in model.named_parameters() if not n.startswith("discriminators.")]
        handed.append((name, touched, all(p.grad is None for p in others)))

    terms = model.loss(tiny_batch(), update_auxiliary=update)
    # one update per modality, in order, each reaching its own D_m and nothing else
    assert handed == [("discriminators", {m}, True) for m in NAMES]
    assert all(torch.isfinite(terms[f"disc/{m}"]) for m in NAMES)
    assert model.main_parameters() and not (
        {id(p) for p in model.main_parameters()}
        & {id(p) for p in model.discriminators.parameters()}
    )


def test_train_step_steps_the_discriminators_before_their_tc_estimate(monkeypatch):
    """The release's order: D_m takes its step, then TC is estimated with the updated D_m."""
    from dmvae import objectives
    from dmvae.training import TrainStep

    model = tiny_model()
    step = TrainStep(model, lr=1e-3)
    events = []
    real_update, real_estimate = step.update_auxiliary, objectives.tc_estimate
    snapshot = lambda: [p.detach().clone() for p in model.discriminators.parameters()]  # noqa: E731

    def update(name, loss):
        real_update(name, loss)
        events.append(("step", snapshot()))

    def estimate(logits, weight=None):
        events.append(("tc", snapshot()))
        return real_estimate(logits, weight)

    monkeypatch.setattr(step, "update_auxiliary", update)
    monkeypatch.setattr(objectives, "tc_estimate", estimate)
    before = snapshot()
    step(tiny_batch(), 1.0)
    assert [kind for kind, _ in events] == ["step", "tc"] * len(NAMES)
    for k in range(0, len(events), 2):  # each estimate sees the weights its step left
        assert all(torch.equal(a, b) for a, b in zip(events[k][1], events[k + 1][1], strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(before, snapshot(), strict=True))


def test_missing_modality_contributes_nothing():
    model = tiny_model()
    batch = tiny_batch()
    batch.mask[:, 1] = False
    terms = model.loss(batch)
    assert terms["rec/m1"] == 0 and terms["kl/m1"] == 0
    grads_of(model, terms["loss"] - model.config.gamma * terms["shared"])
    encoder = model.encoders["m1"]
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in encoder.parameters())


def test_training_reduces_the_loss():
    model = tiny_model()
    batch = tiny_batch(64)
    opt = torch.optim.Adam(model.main_parameters(), lr=5e-3)
    torch.manual_seed(5)
    first = model.loss(batch)
    for _ in range(80):
        terms = model.loss(batch)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    torch.manual_seed(5)
    last = model.loss(batch)
    assert last["loss"] < 0.9 * first["loss"]
    assert last["rec/m0"] < first["rec/m0"] - 3.0


def test_generation_shapes_and_input_major_rows():
    model = tiny_model().eval()
    x = tiny_batch(2).inputs
    same = {m: torch.cat([x[m][:1], x[m][:1]]) for m in NAMES}
    styles = {"m2": torch.randn(3, S)}
    with torch.no_grad():
        out = model.conditional_generate(same, ["m2"], ["m0", "m1"], n_per_input=3, styles=styles)
        y = out["m2"]
        assert y.shape == (6, 1, 8, 8)
        assert torch.allclose(y[:3], y[3:])
        assert not torch.allclose(y[0], y[1])
        samples = model.generate(5)
        assert set(samples) == set(NAMES) and samples["m0"].shape == (5, 1, 8, 8)
        assert model.embed(x, ["m0"]).shape == (2, C)
        assert model.embed(x, None, with_style=True).shape == (2, C + 3 * S)


def test_conditional_generation_depends_on_inputs_only_through_content():
    model = tiny_model().eval()
    x = tiny_batch(4).inputs
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    with torch.no_grad():
        a = model.conditional_generate(x, ["m1"], ["m0"], generator=g1)["m1"]
        x2 = dict(x, m1=torch.rand_like(x["m1"]))
        b = model.conditional_generate(x2, ["m1"], ["m0"], generator=g2)["m1"]
    assert torch.allclose(a, b)


def test_bad_inputs_give_clear_errors():
    model = tiny_model()
    x = tiny_batch(4).inputs
    with pytest.raises(ValueError, match="empty"):
        model.encode(x, [])
    with pytest.raises(KeyError, match="unknown modalities"):
        model.encode(x, ["audio"])
    with pytest.raises(ValueError, match="m0"):
        model.encode({"m0": torch.rand(4, 1, 9, 9)}, ["m0"])
    with pytest.raises(ValueError, match="beta"):
        DMVAE(
            model.encoders,
            model.decoders,
            model.likelihoods,
            DMVAEConfig(style_dim=S, content_dim=C, beta={"m0": 1.0}),
        )


def test_collapse_warnings_name_each_kind_of_collapse():
    model = tiny_model()
    healthy = {f"kl/{m}": 5.0 for m in NAMES} | {"content_effect": 0.4}
    assert model.collapse_warnings(healthy) == {}
    no_style = healthy | {f"kl/{m}": 0.001 for m in NAMES}
    assert set(model.collapse_warnings(no_style)) == {"style_kl"}
    one_style_left = no_style | {"kl/m1": 3.0}
    assert model.collapse_warnings(one_style_left) == {}
    ignored = healthy | {"content_effect": 0.01, "shared": 6.2, "shared_chance": 6.24}
    reasons = model.collapse_warnings(ignored)
    assert set(reasons) == {"content_ignored"} and "6.24" in reasons["content_ignored"]


def test_content_effect_is_zero_for_decoders_that_ignore_content():
    model = tiny_model()
    batch = tiny_batch()
    for m in NAMES:  # distinct contents that the decoders lean on
        model.encoders[m].heads.weight.data[S : S + C] *= 100.0
        model.decoders[m].net[0].weight.data[:, S:] *= 100.0
    assert model.diagnostics(batch)["content_effect"] > 0.1
    for m in NAMES:  # and decoders that ignore it
        model.decoders[m].net[0].weight.data[:, S:] = 0.0
    figures = model.diagnostics(batch)
    assert figures["content_effect"] == 0.0 and figures["content_norm"] > 0
