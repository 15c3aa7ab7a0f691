"""MkDocs hooks: the command-line and API reference pages follow the code, not a hand-kept copy.

docs/cli.md and docs/api.md hold an introduction; at each build this appends the `--help` text
of `dmvae` and of each sub-command, and a mkdocstrings block per public name (`dmvae._API`, plus
the registries outside it), so a new command or public name appears without editing a page.
"""

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path
from unittest import mock

# describe this checkout's code, not another installed copy: import it while src/ leads sys.path
# (mkdocs restores sys.path once the hook is loaded; dmvae.__path__ then finds the rest)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import dmvae  # noqa: E402
import dmvae.models  # noqa: E402
from dmvae.cli import build_parser  # noqa: E402
from dmvae.markdown import table  # noqa: E402

# public names outside dmvae._API: the model interface, the other registries, the Hub
EXTRA = """dmvae.models.base.MultimodalVAE dmvae.tracking.register_logger
    dmvae.evaluation.report.register_run_table dmvae.reproduce.layouts.register_layout
    dmvae.hub.push_run dmvae.hub.pull_run""".split()
# the API page's sections and the packages each holds; a name in none of them lands in "Other"
GROUPS = {
    "Models": ("dmvae.models", "dmvae.likelihoods"),
    "Experiments and data": ("dmvae.experiments", "dmvae.data"),
    "Training": ("dmvae.config", "dmvae.training", "dmvae.tracking"),
    "Evaluation": ("dmvae.evaluation", "dmvae.reproduce"),
    "Inference and sharing": ("dmvae.inference", "dmvae.hub"),
    "Other": ("dmvae",),
}


def on_page_markdown(markdown: str, page, **kwargs) -> str:
    if page.file.src_uri == "cli.md":
        with mock.patch.dict(os.environ, COLUMNS="100"):  # argparse wraps at $COLUMNS - 2
            return markdown + "".join(help_sections(build_parser(), depth=0))
    if page.file.src_uri == "api.md":
        return markdown + api_reference()
    return SETTINGS.sub(lambda m: model_settings(m.group(1)), markdown)


SETTINGS = re.compile(r"<!-- settings: (\S+) -->")
"""Where a model page wants its generated settings: the config's fields, then the presets."""


def model_settings(name: str) -> str:
    """A model's config fields with their defaults, and its preset per experiment (what differs
    from those defaults and from the training defaults), read from the registry."""
    spec = dmvae.models.get_model(name)
    config = spec.config
    fields = [
        [f"`{f.name}`", str(f.type), repr(f.default)] for f in dataclasses.fields(spec.config)
    ]
    presets = [
        [experiment, *(", ".join(f"{k}={v!r}" for k, v in part.items()) or "–" for part in p)]
        for experiment, p in ((x, (p.train, p.model)) for x, p in spec.presets.items())
    ]
    lines = ["## Settings", "", f"`model.*` ({config.__name__}):", ""]
    lines += [*table(["field", "type", "default"], fields), ""]
    lines += ["Presets, the paper's settings per experiment (`dmvae train` starts there):", ""]
    lines += [*table(["experiment", "train", "model"], presets), ""]
    return "\n".join([*lines, f"::: {config.__module__}.{config.__name__}", ""])


def help_sections(parser: argparse.ArgumentParser, depth: int):
    """`dmvae` and its commands under level-2 headings, sub-commands (hub push) one level down."""
    yield f"{'#' * max(2, depth + 1)} `{parser.prog}`\n\n```text\n{parser.format_help()}```\n\n"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # an alias repeats a parser
                yield from help_sections(sub, depth + 1)


def api_reference() -> str:
    paths = [f"{module}.{name}" for name, module in dmvae._API.items()] + EXTRA
    blocks = []
    for heading, packages in GROUPS.items():
        chosen = [p for p in paths if p.startswith(tuple(f"{pkg}." for pkg in packages))]
        paths = [p for p in paths if p not in chosen]
        if chosen:
            blocks.append(f"## {heading}\n\n")
            blocks += [f"::: {p}\n    options:\n      heading_level: 3\n\n" for p in chosen]
    return "".join(blocks)
