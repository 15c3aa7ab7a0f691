"""Where a run's numbers go: log.jsonl, TensorBoard, MLflow (a local file store) and Weights &
Biases (offline) record the same values at the same steps, through a resumed training and an
evaluation; a missing extra or an unknown name is refused before anything is written; your own
logger receives what log.jsonl holds; the library's messages can be captured or silenced with
Python's logging."""

from __future__ import annotations

import json
import logging
import struct
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dmvae.cli import main
from dmvae.config import RunConfig
from dmvae.data import MultimodalData
from dmvae.errors import ConfigError
from dmvae.evaluation.suite import evaluate_run
from dmvae.experiments import EXPERIMENTS, TensorExperiment, register_experiment
from dmvae.tracking import LOGGERS, Logger, flat_numbers, register_logger
from dmvae.training import train


def stripes(n: int, seed: int) -> MultimodalData:
    """A 6x6 image with column `label` lit and the label's one-hot code, four labels."""
    labels = torch.randint(4, (n,), generator=torch.Generator().manual_seed(seed))
    images = torch.zeros(n, 6, 6, dtype=torch.uint8)
    images[torch.arange(n), :, labels] = 255
    code = nn.functional.one_hot(labels, 4).float()
    return MultimodalData.from_tensors({"image": images, "code": code}, labels)


@pytest.fixture
def stripes_experiment():
    exp = TensorExperiment(
        "stripes", stripes(256, 0), stripes(64, 1), likelihoods={"code": "bernoulli"}
    )
    register_experiment(exp)
    yield exp
    EXPERIMENTS.pop("stripes")


def stripes_run(out: Path, loggers: list[str], **settings) -> RunConfig:
    values = {"out": str(out), "batch_size": 32, "max_steps": 6, "log_every": 2}
    values.update({"progress": False, "model.latent_dim": 4, "loggers": loggers, **settings})
    return RunConfig.preset("stripes", "mvae", values)


@pytest.fixture
def offline_trackers(tmp_path, monkeypatch):
    """MLflow in a local file store and wandb offline, both under tmp_path: no network."""
    pytest.importorskip("mlflow", reason='the mlflow extra: pip install "dmvae[mlflow]"')
    pytest.importorskip("wandb", reason='the wandb extra: pip install "dmvae[wandb]"')
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for a database
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb").mkdir()
    return tmp_path


def log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def numbers_by_step(records: list[dict]) -> dict[int, dict[str, float]]:
    return {
        r["step"]: {k: v for k, v in r.items() if k != "step" and k != "warnings"} for r in records
    }


def wandb_records(path: Path):
    """The records of an offline run's .wandb file: wandb's log format (a 7-byte header, then
    32 KiB blocks of chunks, each with a checksum, length and type) around protobuf records."""
    from wandb.proto import wandb_internal_pb2

    data, pos, record = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        record += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            parsed = wandb_internal_pb2.Record()
            parsed.ParseFromString(record)
            record = b""
            yield parsed


def wandb_history(wandb_dir: Path, run_id: str) -> dict[int, dict[str, float]]:
    """The numbers logged to wandb run `run_id` (its offline runs: training, resumption,
    evaluation), by the logger's "step"."""
    rows: dict[int, dict[str, float]] = {}
    for path in wandb_dir.glob(f"wandb/offline-run-*-{run_id}*/run-{run_id}.wandb"):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") != "history":
                continue
            items = record.history.item
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
            step = row.pop("step")
            rows.setdefault(step, {}).update(
                {k: v for k, v in row.items() if not k.startswith("_") and not isinstance(v, str)}
            )
    return rows


def test_every_logger_records_the_values_of_log_jsonl(stripes_experiment, offline_trackers, caplog):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tmp = offline_trackers
    config = stripes_run(tmp / "run", ["jsonl", "tensorboard", "mlflow", "wandb"])
    train(config)
    train(config.override({"max_steps": 8}), resume=True)  # continues the same tracker runs
    metrics = evaluate_run(tmp / "run", metrics=["latent"], progress=False)

    logged = numbers_by_step(log_records(tmp / "run" / "log.jsonl"))
    assert list(logged) == [2, 4, 6, 8] and {"loss", "rec/image", "epoch"} <= logged[8].keys()
    evaluated = {f"eval/latent/{k}": v for k, v in metrics["latent"].items()}
    assert log_records(tmp / "run" / "eval" / "log.jsonl") == [{"step": 8, **evaluated}]
    expected = {**logged, 8: {**logged[8], **evaluated}}
    trackers = json.loads((tmp / "run" / "trackers.json").read_text())

    client = MlflowClient(trackers["mlflow"]["tracking_uri"])
    run_id = trackers["mlflow"]["run_id"]
    for key in expected[8]:
        history = {m.step: m.value for m in client.get_metric_history(run_id, key)}
        want = {s: v[key] for s, v in expected.items() if key in v}
        assert history == pytest.approx(want, rel=1e-9), key
    assert client.get_run(run_id).data.params["train.lr"] == str(config.train.lr)

    history = wandb_history(tmp / "wandb", trackers["wandb"]["id"])
    assert sorted(history) == sorted(expected)
    for step, values in expected.items():
        assert history[step] == pytest.approx(values, rel=1e-9), step

    events = EventAccumulator(str(tmp / "run" / "tb"))
    events.Reload()
    for key in expected[8]:
        scalars = {e.step: e.value for e in events.Scalars(key)}
        want = {s: v[key] for s, v in expected.items() if key in v}
        assert scalars == pytest.approx(want, rel=1e-6), key

    # A run without recorded tracker runs (downloaded, say) starts none when evaluated.
    (tmp / "run" / "trackers.json").unlink()
    evaluate_run(tmp / "run", metrics=["latent"], progress=False)
    skipped = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert [m.split(":")[0] for m in skipped] == [
        "the results are not sent to the mlflow logger",
        "the results are not sent to the wandb logger",
    ]
    assert len(log_records(tmp / "run" / "eval" / "log.jsonl")) == 2
    assert len(list((tmp / "wandb" / "wandb").glob("offline-run-*"))) == 3


def test_a_missing_extra_is_refused_before_anything_is_written(
    stripes_experiment, tmp_path, monkeypatch, capsys
):
    for name in ("mlflow", "wandb"):
        monkeypatch.setitem(sys.modules, name, None)  # `import mlflow` raises ImportError
        with pytest.raises(ConfigError, match=rf'pip install "dmvae\[{name}\]"'):
            train(stripes_run(tmp_path / name, ["jsonl", name]))
        assert not (tmp_path / name).exists()
    args = ["train", "--experiment", "stripes", "--model", "mvae", "--out", str(tmp_path / "cli")]
    assert main([*args, "--log-to", "wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "dmvae[wandb]"' in err


def test_an_unknown_logger_is_answered_with_the_known_ones(stripes_experiment, tmp_path, capsys):
    args = ["train", "--experiment", "stripes", "--model", "mvae", "--out", str(tmp_path / "run")]
    assert main([*args, "--log-to", "tensorboard,mlfow"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown logger 'mlfow'" in err
    assert "jsonl, mlflow, tensorboard, wandb" in err and not (tmp_path / "run").exists()
    assert main([*args, "--log-to", "mlflow,wandb", "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)["train"]["loggers"]
    assert shown == ["jsonl", "tensorboard", "mlflow", "wandb"]


class Recorder(Logger):
    """A user's logger: keeps what it is given."""

    calls: list[tuple] = []

    def __init__(self, site) -> None:
        self.site = site

    def log_metrics(self, step, values) -> None:
        self.calls.append((self.site.stage, step, dict(values)))

    def log_config(self, config) -> None:
        self.calls.append(("config", config))

    def close(self) -> None:
        self.calls.append(("close",))


class Broken(Logger):
    def __init__(self, site) -> None:
        pass

    def log_metrics(self, step, values) -> None:
        raise ConnectionError("the tracking server went away")


def unreachable(site) -> Logger:
    raise ConnectionError("no route to the tracking server\nsecond line")


@pytest.fixture
def own_loggers():
    Recorder.calls = []
    register_logger("recorder", Recorder)
    register_logger("broken", Broken)
    register_logger("unreachable", unreachable)
    yield
    for name in ("recorder", "broken", "unreachable"):
        LOGGERS.pop(name)


def test_a_tracker_that_cannot_start_leaves_no_run_behind(
    stripes_experiment, tmp_path, own_loggers
):
    config = stripes_run(tmp_path / "run", ["jsonl", "tensorboard", "unreachable"])
    message = r"cannot start the unreachable logger \(ConnectionError: no route [^\n]*--log-to$"
    with pytest.raises(ConfigError, match=message):
        train(config)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []
    train(config.override({"loggers": ["jsonl"]}))  # the same --out starts once it is fixed


def test_a_registered_logger_receives_the_values_and_the_config(
    stripes_experiment, tmp_path, own_loggers, monkeypatch, caplog
):
    config = stripes_run(tmp_path / "run", ["jsonl", "recorder"])
    train(config)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    saved["train"]["loggers"].append("mlflow")  # a logger the evaluating machine lacks
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    monkeypatch.setitem(sys.modules, "mlflow", None)
    metrics = evaluate_run(tmp_path / "run", metrics=["latent"], progress=False)
    skipped = [r.getMessage() for r in caplog.records if r.name.startswith("dmvae.")]
    assert len(skipped) == 1 and "not sent to the mlflow logger" in skipped[0]
    logged = numbers_by_step(log_records(tmp_path / "run" / "log.jsonl"))
    calls = Recorder.calls
    assert calls[0] == ("config", config.to_dict())
    assert [c for c in calls if c[0] == "train"] == [("train", s, v) for s, v in logged.items()]
    eval_values = flat_numbers({"latent": metrics["latent"]}, "eval/")
    assert ("evaluate", 6, eval_values) in calls and calls.count(("close",)) == 2


def test_library_messages_can_be_captured_or_silenced(
    stripes_experiment, tmp_path, own_loggers, caplog, capsys
):
    """A failing logger is dropped with a warning of the "dmvae" logger; training goes on."""
    with caplog.at_level(logging.WARNING, logger="dmvae"):
        train(stripes_run(tmp_path / "a", ["jsonl", "broken"]))
    warned = [r for r in caplog.records if r.name.startswith("dmvae.")]
    assert len(warned) == 1 and "logger 'broken' failed to log step 2" in warned[0].getMessage()
    assert len(log_records(tmp_path / "a" / "log.jsonl")) == 3

    caplog.clear()
    logging.getLogger("dmvae").setLevel(logging.ERROR)
    try:
        train(stripes_run(tmp_path / "b", ["broken"]))
    finally:
        logging.getLogger("dmvae").setLevel(logging.NOTSET)
    assert not [r for r in caplog.records if r.name.startswith("dmvae.")]
    assert "failed" not in capsys.readouterr().err

    args = ["train", "--experiment", "stripes", "--model", "mvae", "--max-steps", "2"]
    args += ["--batch-size", "32", "--set", "log_every=1", "--no-progress", "--log-to", "broken"]
    assert main([*args, "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr()
    assert "warning: logger 'broken' failed to log step 1" in out.err
    assert f"run written to {tmp_path / 'cli'}" in out.out


def test_loggers_are_a_resumable_setting_that_old_config_files_lack(stripes_experiment):
    from dmvae.training.rundir import identity_diff

    config = stripes_run(Path("run"), ["jsonl"])
    old = config.to_dict()
    del old["train"]["loggers"]  # a config.json from before loggers could be chosen
    loaded = RunConfig.from_dict(old)
    assert loaded.train.loggers == ("jsonl", "tensorboard")
    assert identity_diff(loaded, config) == []  # resuming with other loggers is allowed
    with pytest.raises(ConfigError, match="'train.loggers' must be a list of str, got 5"):
        config.override({"train.loggers": 5})
