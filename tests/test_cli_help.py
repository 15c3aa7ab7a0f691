"""Every command's `--help`: each argument has a help text, and each option states its default
(or that it is required)."""

from __future__ import annotations

import re

import pytest

from dmvae.cli import COMMANDS, main


def help_text(capsys, *command: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def entries(text: str) -> dict[str, str]:
    """Each argument line of a help page, invocation -> help text (wrapped lines joined).

    argparse indents an argument's invocation by 2 (4 for a sub-command) and its help by more,
    on the same line after two spaces or on the lines below."""
    found: dict[str, str] = {}
    section, current = None, None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line if line.endswith(":") else None
            current = None
            continue
        if section not in ("positional arguments:", "options:", "optional arguments:"):
            continue
        indent = len(line) - len(line.lstrip())
        if line.strip() and indent <= 4:
            invocation, _, rest = line.strip().partition("  ")
            current = invocation
            found[current] = rest.strip()
        elif line.strip() and current is not None:
            found[current] = f"{found[current]} {line.strip()}".strip()
    return found


@pytest.mark.parametrize("command", ["", *COMMANDS, "hub push", "hub pull"])
def test_every_argument_has_help_and_every_option_its_default(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    found = entries(help_text(capsys, *command.split()))
    assert any(k.startswith("-h, --help") for k in found)
    bare = [invocation for invocation, text in found.items() if not text]
    assert bare == [], f"dmvae {command}: arguments without help: {bare}"
    options = {
        k: v for k, v in found.items() if k.startswith("-") and not re.match(r"-h|--version", k)
    }
    assert options or "COMMAND" in found  # a page of sub-commands may have no options
    silent = [k for k, v in options.items() if "default" not in v and "required" not in v]
    assert silent == [], f"dmvae {command}: options that do not state a default: {silent}"
    assert all("None" not in v for v in found.values())


def test_the_top_level_page_lists_every_command_and_the_debug_flag(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    found = entries(help_text(capsys))
    assert set(COMMANDS) <= set(found) and "--debug" in found


def test_train_points_to_print_config_and_classifiers_describes_itself(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert "--print-config` shows the resolved values" in help_text(capsys, "train")
    page = help_text(capsys, "classifiers")
    assert "score coherence" in page and "trains a missing classifier on first use" in page


def test_amp_help_says_what_it_does_on_the_cpu(capsys):
    """--amp runs on the CPU too (CPU bfloat16 autocast): the help says so, and a step on the
    CPU does compute under it."""
    import torch

    from dmvae.data import MultimodalData
    from dmvae.experiments import TensorExperiment
    from dmvae.models import get_model
    from dmvae.training.step import TrainStep

    text = " ".join(help_text(capsys, "train").split())
    assert "bfloat16 autocast, on whichever device trains" in text and "on the CPU it runs" in text
    data = MultimodalData.from_tensors({"a": torch.rand(8, 3), "b": torch.rand(8, 2)})
    exp = TensorExperiment("amp-check", data, data)
    spec = get_model("mvae")
    model = spec.model(
        *exp.networks(exp.data_config(), 4), exp.likelihoods(None, 0.75), spec.config(latent_dim=4)
    )
    seen = []
    real_loss = model.loss

    def loss(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return real_loss(*args, **kwargs)

    model.loss = loss
    TrainStep(model, 1e-3, amp=True)(next(data.batches(8, shuffle=False)), 1.0)
    assert seen == [torch.bfloat16]


def test_models_and_experiments_are_listed_with_their_papers(capsys):
    import dmvae
    from dmvae.cli import main

    models = {m.name: m for m in dmvae.list_models()}
    assert set(models) >= {"dmvae", "mvae", "mmvae", "mopoe", "mmvaeplus"}
    assert all(m.summary and m.paper for m in models.values())
    assert "GCPR 2020" in models["dmvae"].paper and "ICLR 2023" in models["mmvaeplus"].paper
    experiments = {x.name: x for x in dmvae.list_experiments()}
    assert set(experiments) >= {"paired-mnist", "mnist-svhn", "polymnist", "folder"}
    assert all(x.summary for x in experiments.values())
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("models:\n") and "\nexperiments:\n" in out
    assert "  mopoe " in out and "Generalized Multimodal ELBO" in out and "  folder " in out
