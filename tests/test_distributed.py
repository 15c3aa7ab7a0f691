"""Data-parallel training with torch.distributed (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dmvae import checkpoints as ckpt
from dmvae.config import RunConfig
from dmvae.distributed import gather_batch
from dmvae.objectives import info_nce
from dmvae.training import CHECKPOINT, train

pytestmark = pytest.mark.slow

# 2 ranks x 32 rows against 1 process x 64 rows, after three Adam steps: float32 sums in another
# order. Adam normalises each gradient entry, so an entry whose gradient is ~0 can move by up to
# lr in either direction; measured here, 3 in 3.2 million entries differ by more than 1e-5.
# Allowed: at most 1e-4 of the entries beyond 1e-6, and none beyond one step (lr).
CLOSE, SHARE_ALLOWED = 1e-6, 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    """What torchrun would give rank `rank` of `world`, on one CPU thread."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def _worker(rank, world, port, run, out, deterministic, resume_to):
    _join(rank, world, port)
    if deterministic:  # posterior means instead of samples: the objective has no randomness
        from dmvae import objectives

        objectives.reparameterize = lambda mu, logvar: mu
    config = RunConfig.from_dict(run)
    model = train(config)
    if resume_to:
        model = train(config.override({"max_steps": resume_to}), resume=True)
    torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))


def run_config(tmp_path, model: str, steps: int, **model_config) -> dict:
    settings = dict(
        out=str(tmp_path / "run"),
        batch_size=64,
        max_steps=steps,
        progress=False,
        device="cpu",
        checkpoint_every=1000,
        log_every=1,
    )
    settings["data.noise_std"] = 0.0
    settings.update({f"model.{k}": v for k, v in model_config.items()})
    return RunConfig.preset("paired-mnist", model, settings).to_dict()


def launch(world: int, run: dict, out, deterministic=False, resume_to=None) -> list[dict]:
    args = (world, free_port(), run, str(out), deterministic, resume_to)
    if world == 1:
        _worker(0, *args)
    else:
        mp.spawn(_worker, args=args, nprocs=world, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(world)]


@pytest.fixture(autouse=True)
def _single_process_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path, mnist_root):
    run = run_config(tmp_path, "mvae", 3)
    two = launch(2, run, tmp_path, deterministic=True)
    for name, value in two[0].items():
        assert torch.equal(value, two[1][name]), f"{name} differs across ranks"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").open()]
    assert [r["step"] for r in log] == [1, 2, 3]  # rank 0 alone logs

    single_dir = tmp_path / "single"
    single_dir.mkdir()
    run["train"]["out"] = str(single_dir / "run")
    from dmvae import objectives

    original = objectives.reparameterize
    try:
        (one,) = launch(1, run, single_dir, deterministic=True)
    finally:
        objectives.reparameterize = original
    diff = torch.cat([(one[k] - two[0][k]).abs().flatten() for k in one])
    assert (diff > CLOSE).float().mean() < SHARE_ALLOWED
    assert diff.max() <= run["train"]["lr"]
    moved = torch.cat([(one[k] - v).abs().flatten() for k, v in _initial(run).items()])
    assert (moved > CLOSE).float().mean() > 0.5  # the comparison is not between untrained models


def _initial(run: dict) -> dict:
    torch.manual_seed(run["train"]["seed"])
    return RunConfig.from_dict(run).build_model().state_dict()


def test_dmvae_with_discriminators_stays_in_sync_and_resumes(tmp_path, mnist_root):
    run = run_config(tmp_path, "dmvae", 2, disc_width=32)
    ranks = launch(2, run, tmp_path, resume_to=4)
    discs = [k for k in ranks[0] if k.startswith("discriminators.")]
    assert discs
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]), f"{name} differs across ranks"
    _, meta = ckpt.read_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert meta["info"]["step"] == 4
    init = _initial(run)
    assert any(not torch.equal(init[k], ranks[0][k]) for k in discs)


def _gather_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        net, x1, x2 = torch.nn.Linear(6, 4), torch.randn(16, 6), torch.randn(16, 6)
        rows = slice(rank, None, world)  # the trainer's strided shard
        loss = info_nce(gather_batch(net(x1[rows])), gather_batch(net(x2[rows])))
        loss.backward()
        grads = []
        for p in net.parameters():  # what DDP does: average the gradients over ranks
            dist.all_reduce(p.grad)
            grads.append(p.grad / world)
        net.zero_grad()
        reference = info_nce(net(x1), net(x2))  # one process, the whole batch
        reference.backward()
        ok = torch.allclose(loss, reference, atol=1e-6) and all(
            torch.allclose(g, p.grad, atol=1e-6)
            for g, p in zip(grads, net.parameters(), strict=True)
        )
        (out / f"gather{rank}.txt").write_text(str(ok))
    finally:
        dist.destroy_process_group()


def test_gathered_infonce_has_the_global_batch_loss_and_gradient(tmp_path):
    mp.spawn(_gather_worker, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    assert [(tmp_path / f"gather{r}.txt").read_text() for r in range(2)] == ["True", "True"]


@pytest.mark.parametrize("model", ["mopoe", "mmvaeplus"])
def test_successor_models_train_in_sync_on_two_ranks(tmp_path, mnist_root, model):
    """MoPoE and MMVAE+ go through the same data-parallel step: the ranks see different rows
    and draw different noise, yet the averaged gradients keep their weights identical."""
    run = run_config(tmp_path, model, 3)
    two = launch(2, run, tmp_path)
    for name, value in two[0].items():
        assert torch.equal(value, two[1][name]), f"{name} differs across ranks"
    moved = [not torch.equal(v, two[0][k]) for k, v in _initial(run).items()]
    assert sum(moved) > len(moved) / 2


def _nan_worker(rank, world, port, run, out):
    """Rank 1's loss is NaN in its third step; each rank writes what stopped it."""
    from dmvae.errors import TrainingDiverged
    from dmvae.models.mvae import MVAE

    _join(rank, world, port)
    real_loss, calls = MVAE.loss, {"n": 0}

    def loss(self, *args, **kwargs):
        calls["n"] += 1
        terms = real_loss(self, *args, **kwargs)
        if rank == 1 and calls["n"] == 3:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    MVAE.loss = loss
    try:
        train(RunConfig.from_dict(run))
        message = "finished"
    except TrainingDiverged as err:
        message = str(err)
    with open(os.path.join(out, f"rank{rank}.txt"), "w") as f:
        f.write(message)
    # Leave together: a rank whose peer has already closed its gloo pairs can abort at exit
    # (torchrun's agent, not the trainer, tears a failed group down in real runs).
    dist.barrier()
    dist.destroy_process_group()


def test_a_nan_on_one_rank_stops_every_rank_before_the_next_checkpoint(tmp_path, mnist_root):
    """The non-finite record is reduced across ranks without waiting, so both ranks stop at
    the same check, name the step where rank 1 went wrong, and keep rank 0's last good
    checkpoint (rank 0's own loss turns NaN only a step later, through the averaged
    gradients)."""
    run = run_config(tmp_path, "mvae", 8)
    run["train"].update(checkpoint_every=2, log_every=5)
    mp.spawn(_nan_worker, args=(2, free_port(), run, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        message = (tmp_path / f"rank{rank}.txt").read_text()
        assert "at step 3;" in message, (rank, message)
    info = ckpt.read_checkpoint(tmp_path / "run" / CHECKPOINT)[1]["info"]
    assert info["step"] == 2
