"""What keeps a training step from waiting on a GPU, tested without one.

Every model's step runs on torch's "meta" device, whose tensors have shapes but no values: a
step that reads a value back to decide something (`.item()`, `bool(t)`, boolean-mask indexing,
`nonzero`) fails there, as it would stall a GPU. A function mode also flags host data copied onto
the device with a waiting copy. The rest checks that the sync-free forms compute what the former
ones did: DMVAE's TC terms on all rows with weights against the selected rows, the deferred NaN
check, and the fused Adam update against the loop torch runs on the CPU.
"""

from __future__ import annotations

import copy

import pytest
import torch
from test_dmvae import tiny_batch, tiny_model
from torch.overrides import TorchFunctionMode

from dmvae import objectives as obj
from dmvae.checkpoints import read_checkpoint
from dmvae.config import RunConfig
from dmvae.data.batch import MultimodalData, make_batch
from dmvae.devices import adam
from dmvae.errors import TrainingDiverged
from dmvae.models import dmvae as dmvae_module
from dmvae.training import CHECKPOINT, TrainStep, train
from dmvae.training.step import NonFiniteLoss

META = torch.device("meta")
MODELS = ["dmvae", "mvae", "mmvae", "mopoe", "mmvaeplus"]


class WaitingCopies(TorchFunctionMode):
    """Records host data copied onto the meta device by a copy that waits (on a GPU, a
    `.to(device)` without non_blocking=True, or a tensor made from Python data there)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name == "to" and not kwargs.get("non_blocking"):
            targets = [a for a in args[1:] if isinstance(a, (str, torch.device))]
            targets += [kwargs["device"]] if "device" in kwargs else []
            if args[0].device.type == "cpu" and any(torch.device(t) == META for t in targets):
                self.found.append(name)
        if (
            func in (torch.tensor, torch.as_tensor)
            and torch.device(kwargs.get("device") or "cpu") == META
        ):
            self.found.append(name)
        return func(*args, **kwargs)


def meta_trainer(name: str, experiment: str = "paired-mnist", modalities: int = 3):
    overrides = {"train.batch_size": 16}
    if experiment == "paired-mnist":
        overrides["data.modalities"] = modalities
    if name in ("mmvae", "mmvaeplus"):
        overrides["model.K"] = 2
    config = RunConfig.preset(experiment, name, overrides)
    torch.manual_seed(0)
    model = config.build_model().to(META).train()
    return model, TrainStep(model, lr=1e-3)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("experiment", "modalities"), [("paired-mnist", 3), ("mnist-svhn", 2)])
def test_every_model_trains_on_values_it_never_reads(name, experiment, modalities):
    model, step = meta_trainer(name, experiment, modalities)
    shapes = {"svhn": (3, 32, 32)}
    banks = {
        m: torch.zeros(40, *shapes.get(m, (1, 28, 28)), dtype=torch.uint8) for m in model.modalities
    }
    data = MultimodalData(
        banks,
        {m: torch.arange(40) for m in model.modalities},
        torch.zeros(40, dtype=torch.long),
        noise_std={model.modalities[0]: 0.5},
    ).to(META)
    batches = [data.batch(torch.randperm(40, device=META)[:16]) for _ in range(3)]
    step(batches[0], 0.5)  # the first step may copy constants once (MoPoE's subset table)
    with WaitingCopies() as copies:
        for batch in batches[1:]:
            terms = step(batch, 0.5)
        data.batch(torch.randperm(40, device=META)[:16])
    assert copies.found == []
    assert terms["loss"].device == META and terms["loss"].shape == ()
    assert all(p.grad is None or p.grad.device == META for p in model.parameters())


def test_the_meta_device_does_catch_a_step_that_reads_a_value():
    model, step = meta_trainer("mvae")
    batch = make_batch({m: torch.rand(16, 1, 28, 28) for m in model.modalities}).to(META)
    real_loss = type(model).loss

    def reading_loss(self, *args, **kwargs):
        terms = real_loss(self, *args, **kwargs)
        if terms["loss"] > 0:  # a decision on a value: a GPU would stall here
            pass
        return terms

    model.loss = reading_loss.__get__(model)
    with pytest.raises(Exception, match="meta"):
        step(batch, 1.0)


def test_the_copy_probe_flags_a_waiting_copy_and_passes_a_non_blocking_one():
    with WaitingCopies() as copies:
        torch.ones(3).to(META, non_blocking=True)
        torch.ones(3, device=META).to(META)
    assert copies.found == []
    with WaitingCopies() as copies:
        torch.ones(3).to(META)
        torch.tensor([1.0, 2.0], device=META)
    assert copies.found == ["to", "tensor"]


# ------------------------------------------------------------------ DMVAE's TC terms on all rows


def test_permutation_within_shuffles_the_selected_rows_uniformly_and_fixes_the_others():
    rows = torch.tensor([1, 0, 1, 1, 0, 1, 0], dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(2400):
        perm = obj.permutation_within(rows, g)
        assert sorted(perm.tolist()) == list(range(7))
        assert torch.equal(perm[~rows], torch.arange(7)[~rows])
        assert rows[perm].tolist() == rows.tolist()  # selected rows map onto selected rows
        key = tuple(perm[rows].tolist())
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 24  # all 4! orders of the four selected rows
    expected = 2400 / 24
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 49.7  # chi-square, 23 degrees of freedom, p = 0.001


def test_weighted_tc_terms_equal_the_terms_of_the_selected_rows():
    g = torch.Generator().manual_seed(0)
    joint, permuted = torch.randn(10, 2, generator=g), torch.randn(10, 2, generator=g)
    rows = torch.rand(10, generator=g) < 0.5
    assert obj.tc_estimate(joint, rows) == pytest.approx(float(obj.tc_estimate(joint[rows])))
    loss = obj.tc_discriminator_loss(joint, permuted, rows)
    assert loss == pytest.approx(float(obj.tc_discriminator_loss(joint[rows], permuted[rows])))


def _reverse_selected(monkeypatch):
    """Both forms shuffle subset A's rows the same way: in reverse order."""
    monkeypatch.setattr(obj, "permute_batch", lambda x, generator=None: x.flip(0))

    def reversed_within(rows, generator=None):
        perm = torch.arange(rows.shape[0])
        chosen = rows.nonzero().squeeze(1)
        perm[chosen] = chosen.flip(0)
        return perm

    monkeypatch.setattr(obj, "permutation_within", reversed_within)


def test_dmvae_step_on_all_rows_with_weights_equals_the_step_on_the_selected_rows(monkeypatch):
    """The GPU form of the TC terms (every row, others weighted 0) gives the same loss terms,
    the same gradients of the main objective and the same discriminator gradients as the CPU
    form (subset A's rows only)."""
    _reverse_selected(monkeypatch)
    results = {}
    for select in (True, False):
        monkeypatch.setattr(dmvae_module, "select_rows", lambda device, s=select: s)
        model = tiny_model()
        step = TrainStep(model, lr=1e-3)
        disc_grads, real_update = [], step.update_auxiliary

        def update(name, loss, model=model, disc_grads=disc_grads, real_update=real_update):
            params = list(model.discriminators.parameters())
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            disc_grads += [g for g in grads if g is not None]
            real_update(name, loss)

        step.update_auxiliary = update
        torch.manual_seed(5)
        terms = {k: float(v.detach()) for k, v in step(tiny_batch(), 0.7).items()}
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        results[select] = (terms, grads, disc_grads)
    (terms_a, grads_a, disc_a), (terms_b, grads_b, disc_b) = results[True], results[False]
    assert terms_a.keys() == terms_b.keys()
    for k in terms_a:
        assert terms_b[k] == pytest.approx(terms_a[k], rel=1e-5, abs=1e-6), k
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 0
    for k in grads_a:
        assert torch.allclose(grads_a[k], grads_b[k], rtol=1e-4, atol=1e-7), k
    assert len(disc_a) == len(disc_b) > 0
    for a, b in zip(disc_a, disc_b, strict=True):  # gradients of about 1e-5 to 1e-2
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-8)


# ------------------------------------------------------------------ the deferred NaN check


def test_a_nan_is_kept_on_the_device_until_the_check_names_its_step():
    model = tiny_model()
    step = TrainStep(model, lr=1e-3)
    real_loss = type(model).loss
    calls = {"n": 0}

    def loss(self, *args, **kwargs):
        calls["n"] += 1
        terms = real_loss(self, *args, **kwargs)
        if calls["n"] in (3, 5):
            terms["loss"] = terms["loss"] * float("inf")
        return terms

    model.loss = loss.__get__(model)
    for _ in range(2):
        step(tiny_batch(), 1.0)
    step.check()  # finite so far
    for _ in range(4):
        step(tiny_batch(), 1.0)  # steps 3 and 5 are not finite: nothing is raised in the step
    with pytest.raises(NonFiniteLoss) as err:
        step.check()
    assert err.value.call == 3


def _nan_at(monkeypatch, bad_call: int):
    from dmvae.models.mvae import MVAE

    real_loss, calls = MVAE.loss, {"n": 0}

    def nan_loss(self, *args, **kwargs):
        calls["n"] += 1
        terms = real_loss(self, *args, **kwargs)
        if calls["n"] == bad_call:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(MVAE, "loss", nan_loss)


def _config(tmp_path, mnist_root, **train):
    settings = dict(out=str(tmp_path / "run"), batch_size=32, device="cpu", progress=False, **train)
    settings.update({"data.root": str(mnist_root), "data.modalities": 2})
    return RunConfig.preset("paired-mnist", "mvae", settings)


def test_a_nan_between_checks_stops_before_the_next_checkpoint(tmp_path, mnist_root, monkeypatch):
    """NaN in step 7; checkpoints every 3 steps, records every 5: the record at step 5 and
    the checkpoint at step 6 are written, the check before the record of step 10 stops the
    run, naming step 7 and the checkpoint of step 6."""
    _nan_at(monkeypatch, 7)
    cfg = _config(tmp_path, mnist_root, max_steps=12, checkpoint_every=3, log_every=5)
    with pytest.raises(TrainingDiverged, match=r"at step 7; .*checkpoint \(step 6\) is kept"):
        train(cfg)
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == 1 and "NaN" not in log[0]
    # the checkpoint at step 9 would have held NaN weights: the check before it stopped the run
    assert read_checkpoint(tmp_path / "run" / CHECKPOINT)[1]["info"]["step"] == 6


def test_a_nan_in_the_last_steps_never_reaches_the_final_checkpoint(
    tmp_path, mnist_root, monkeypatch
):
    _nan_at(monkeypatch, 5)
    cfg = _config(tmp_path, mnist_root, max_steps=6, checkpoint_every=4, log_every=100)
    with pytest.raises(TrainingDiverged, match=r"at step 5; "):
        train(cfg)
    assert read_checkpoint(tmp_path / "run" / CHECKPOINT)[1]["info"]["step"] == 4


# ------------------------------------------------------------------ fused Adam


@pytest.mark.parametrize("amsgrad", [False, True])
def test_fused_adam_makes_the_update_of_the_per_tensor_loop(amsgrad):
    """CUDA runs step a fused Adam; torch's CPU kernel of it must match the loop CPU runs use."""
    model = tiny_model()
    twin = copy.deepcopy(model)
    loop = torch.optim.Adam(model.main_parameters(), lr=1e-3, amsgrad=amsgrad)
    fused = torch.optim.Adam(twin.main_parameters(), lr=1e-3, amsgrad=amsgrad, fused=True)
    for seed in range(20):
        for m, opt in ((model, loop), (twin, fused)):
            opt.zero_grad()
            torch.manual_seed(seed)
            m.loss(tiny_batch(seed=seed))["loss"].backward()
            opt.step()
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), k


def test_adam_is_fused_on_cuda_only_and_a_checkpoint_keeps_the_live_choice(tmp_path):
    from dmvae.checkpoints import load_optimizer, save_checkpoint

    model = tiny_model()
    assert adam(model.main_parameters(), lr=1e-3).param_groups[0]["fused"] is None
    fused = torch.optim.Adam(model.main_parameters(), lr=1e-3, fused=True)
    model.loss(tiny_batch())["loss"].backward()
    fused.step()
    save_checkpoint(tmp_path / "c.safetensors", model, {"main": fused}, {}, {"step": 1})
    tensors, meta = read_checkpoint(tmp_path / "c.safetensors")
    live = adam(model.main_parameters(), lr=1e-3)
    load_optimizer(live, "main", tensors, meta)
    assert live.param_groups[0]["fused"] is None  # how to compute stays the machine's choice
    assert live.state_dict()["state"][0]["step"] == 1  # what was learnt comes from the file
