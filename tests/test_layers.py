"""The package's layering, read from its source with `ast`: no import cycle between modules, and no
module importing from a layer above its own (config -> data/models -> engine/tasks -> trial -> sweep
-> report; slurm and bench on top; command lines, `cli.py` and `__main__.py`, above all). Imports
inside functions count too: a cycle dodged by a local import is still a cycle."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"

# Layer of each top-level part of harness/ (lower numbers are lower layers). A module may import
# from its own layer and the layers below.
LAYERS = {
    "vocabulary": 0, "files": 0, "registry": 0, "provenance": 0,
    "config": 1,
    "data": 2, "models": 2, "losses": 2, "optimizers": 2, "schedulers": 2, "metrics": 2, "perf": 2,
    "preflight": 3, "monitor": 3, "step": 3, "engine": 3, "tasks": 3, "segmentation": 3, "store": 3,
    "resume": 4, "trial": 4, "packed_trial": 4,
    "sweep": 5,
    "report": 6, "results": 6,
    "slurm": 7, "slurm_status": 7, "bench": 7,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every harness module `path` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("harness")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            if name.startswith("harness"):
                found.add(name)
                found |= {f"{name}.{a.name}" for a in node.names}
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module an imported name lives in (`harness.store.write_part` -> `harness.store`)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for name, path in known.items():
        targets = {resolve(n, known) for n in imports_of(path)}
        edges[name] = {t for t in targets if t and t != name and t != "harness"}
    return edges


ENTRY_POINTS = ("cli", "__main__")  # a command line (`python -m harness.sweep`) sits on top of everything


def layer(module: str) -> int:
    if module.rsplit(".", 1)[-1] in ENTRY_POINTS:
        return max(LAYERS.values()) + 1
    top = module.split(".")[1] if "." in module else "harness"
    if top not in LAYERS:
        pytest.fail(f"{module}: harness/{top} has no layer in tests/test_layers.py LAYERS: add it")
    return LAYERS[top]


def test_no_module_imports_from_a_higher_layer():
    bad = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
           for m, targets in graph().items() for t in sorted(targets)
           if layer(t) > layer(m)]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges = graph()
    # a package's __init__ re-exporting its own modules is not a cycle of concepts: leave those edges out
    edges = {m: {t for t in ts if not (m + ".") in t + "." or not t.startswith(m + ".")} for m, ts in edges.items()}
    cycles, state, stack = [], {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


def test_the_reader_sees_what_it_checks():
    known = modules()
    assert "harness.config" in known and "harness.sweep" in known or "harness.sweep.__main__" in known
    edges = graph()
    assert any("harness.config" in t or t.startswith("harness.config.") for t in edges.get("harness.trial", ()))
