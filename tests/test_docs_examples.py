"""The examples of the README and the guides stay true to the code: every `dmvae ...` command
of a shell block parses with the real command line (a renamed flag or sub-command fails here,
not for a reader), every script a block runs exists, and every Python block compiles and
imports only names the package has. Running them is the job of examples/ and the tests that
train: these commands name data, runs and budgets a test cannot have."""

from __future__ import annotations

import ast
import builtins
import importlib
import re
import shlex
from pathlib import Path

import pytest

from dmvae.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if p.name not in ("report.md", "metrics.md")]  # written by commands
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


COMPILE_ONLY = "<!-- example: compile only"
"""A page marks a Python block that cannot run in a test (it trains for minutes, needs the
network or the reader's files) with this comment on the line before it, and says why."""


def blocks(kinds: tuple[str, ...], runnable: bool | None = None) -> list[tuple[str, str]]:
    """(where, code) of the fenced blocks of these languages in the README and guides; with
    `runnable`, only those (not) marked compile-only."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in BLOCK.finditer(text):
            marked = text[: match.start()].rstrip().splitlines()[-1:] or [""]
            if match.group(1) not in kinds:
                continue
            if runnable is not None and runnable == marked[0].startswith(COMPILE_ONLY):
                continue
            line = text[: match.start()].count("\n") + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def commands(code: str) -> list[tuple[str, list[str]]]:
    """The simple commands of a shell block with the folder each runs in: continuations
    joined, comments dropped, split at `&&`, `;` and `|`, leading VAR=value assignments and
    the "..." that stands for the arguments of the line above removed; `cd DIR` moves on."""
    out, folder = [], "."
    for line in code.replace("\\\n", " ").splitlines():
        current: list[str] = []
        for word in [*shlex.split(line, comments=True), "&&"]:
            if word not in ("&&", ";", "|", "||"):
                current.append(word)
                continue
            while current and re.match(r"^[A-Z_]+=", current[0]):
                current.pop(0)
            current = [w for w in current if w != "..."]
            if current[:1] == ["cd"]:
                folder = current[1]
            elif current:
                out.append((folder, current))
            current = []
    return out


SHELL = [(where, *cmd) for where, code in blocks(("bash", "sh")) for cmd in commands(code)]


@pytest.mark.parametrize("where, argv", [(w, c) for w, _, c in SHELL if c[0] == "dmvae"])
def test_every_documented_dmvae_command_parses(where, argv):
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exit:
        pytest.fail(f"{where}: `{shlex.join(argv)}` does not parse (exit {exit.code})")


@pytest.mark.parametrize(
    "where, folder, argv", [(w, f, c) for w, f, c in SHELL if c[0] == "python"]
)
def test_every_documented_script_exists(where, folder, argv):
    script = next((a for a in argv[1:] if a.endswith(".py")), None)
    if script is None:  # python -c / -m: the module or code is checked by what it names
        module = argv[argv.index("-m") + 1] if "-m" in argv else None
        assert module is None or importlib.util.find_spec(module), f"{where}: no module {module}"
        return
    assert (ROOT / folder / script).exists(), f"{where}: no {script} in {folder}"


@pytest.mark.parametrize("where, code", blocks(("python",)))
def test_every_python_example_compiles_and_names_what_exists(where, code):
    tree = ast.parse(code, filename=where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dmvae"):
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)]
            if missing:  # a submodule imported by name
                missing = [n for n in missing if not importlib.util.find_spec(f"{node.module}.{n}")]
            assert not missing, f"{where}: {node.module} has no {missing}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("dmvae"):
                    importlib.import_module(alias.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "dmvae"
        ):
            import dmvae

            assert hasattr(dmvae, node.attr), f"{where}: dmvae has no {node.attr}"


def free_names(tree: ast.Module) -> set[str]:
    """Names a block reads that it never binds and Python does not define (the reader's own
    variables, x_img, ...)."""
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    loads = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    reads = {n.id for n in loads if isinstance(n.ctx, ast.Load)}
    return reads - bound


RUNNABLE = blocks(("python",), runnable=True)


@pytest.mark.parametrize("where, code", RUNNABLE)
def test_an_unmarked_python_example_is_self_contained(where, code):
    """So that it can run: a block that uses names it does not define is the reader's sketch
    and must say so (the compile-only mark, with the reason)."""
    missing = free_names(ast.parse(code))
    assert not missing, f"{where}: uses {sorted(missing)}; define them or mark it compile-only"


@pytest.mark.slow
@pytest.mark.parametrize("where, code", RUNNABLE)
def test_every_self_contained_python_example_runs(where, code, tmp_path, monkeypatch, mnist_root):
    """Every Python example not marked compile-only runs as it is, in an empty folder, with
    MNIST in $DMVAE_DATA."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DMVAE_DATA", str(mnist_root))
    exec(compile(code, where, "exec"), {"__name__": "__example__"})


def test_some_examples_run_and_every_skipped_one_says_why():
    assert len(RUNNABLE) >= 3
    marks = [line for page in PAGES for line in page.read_text().splitlines()]
    marks = [line for line in marks if line.startswith(COMPILE_ONLY)]
    assert len(marks) == len(blocks(("python",), runnable=False)) >= 1
    assert all(re.fullmatch(r"<!-- example: compile only \(.{10,}\) -->", m) for m in marks)


def test_every_public_name_has_a_docstring_for_the_api_reference():
    import dmvae

    bare = [name for name in dmvae._API if len((getattr(dmvae, name).__doc__ or "").strip()) < 20]
    assert not bare, f"public names without a docstring (the site's API page shows it): {bare}"


SMALLER = {"train": ["--max-steps", "5"], "evaluate": ["--max-test", "200", "--num-samples", "100"]}
"""What the README's first command gets appended in the test: a tiny budget, nothing else."""


@pytest.mark.slow
def test_the_readmes_first_command_runs_at_a_tiny_budget(
    tmp_path, monkeypatch, mnist_root, quick_classifiers, capsys
):
    """Its `dmvae` commands as written (pip install aside), in an empty folder, each with
    SMALLER appended: the command a newcomer pastes first must keep working."""
    from dmvae.cli import main

    where, code = blocks(("bash",))[0]
    assert where.startswith("README.md"), "the README's first block is its first command"
    argvs = [argv for _, argv in commands(code) if argv[0] == "dmvae"]
    assert [a[1] for a in argvs] == ["train", "evaluate"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DMVAE_DATA", str(mnist_root))
    for argv in argvs:
        assert main([*argv[1:], *SMALLER[argv[1]], "--no-progress"]) == 0, shlex.join(argv)
    assert "cross coherence" in capsys.readouterr().out
    assert (tmp_path / "runs" / "quickstart" / "eval" / "metrics.json").exists()
