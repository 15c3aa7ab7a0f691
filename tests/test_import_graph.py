"""The package's modules import one another without a cycle and never from a higher layer
(docs/design.md lists the layers), imports inside functions and under TYPE_CHECKING included:
a deferred import must not hide either."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The dmvae modules `path` imports anywhere, with the packages above them (importing a
    module runs its packages' __init__)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found.update(n if n in modules else node.module for n in names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    with_parents = set()
    for name in found:
        parts = name.split(".")
        with_parents.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    return {m for m in with_parents if m in modules}


LAYERS = (
    ("errors", "files", "settings", "objectives", "likelihoods", "densities", "nets"),
    ("fingerprints", "markdown", "devices", "distributed", "checkpoints", "data"),
    ("classifiers", "remote", "tracking", "usercode"),
    ("models", "experiments"),
    ("config",),
    ("training",),
    ("evaluation",),
    ("hub", "reproduce", "inference"),
    ("cli", "__main__", ""),
)
"""docs/design.md's layers, lowest first; the first three rows are its one foundation layer
(split for line length). "" is the package's own __init__ (its lazy public API)."""
LAYER_OF = {name: max(i, 2) if i < 3 else i for i, row in enumerate(LAYERS) for name in row}


def import_graph() -> dict[str, set[str]]:
    """Each dmvae module -> the dmvae modules it imports (not itself or its own packages)."""
    paths = {module_name(p): p for p in SRC.joinpath("dmvae").rglob("*.py")}
    modules = set(paths)
    return {
        m: {d for d in imports(p, modules) if d != m and not m.startswith(d + ".")}
        for m, p in paths.items()
    }


def layer(module: str) -> int:
    """The layer of a dmvae module, by its first name below the package."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    assert top in LAYER_OF, f"{module} is in no layer: add {top!r} to LAYERS and docs/design.md"
    return LAYER_OF[top]


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
        for m, deps in sorted(import_graph().items())
        for d in sorted(deps)
        if d != "dmvae" and layer(d) > layer(m)
    ]
    assert not upward, "\n".join(upward)


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycle = path[path.index(dep) :] + [dep] if dep in path else [module, dep]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
