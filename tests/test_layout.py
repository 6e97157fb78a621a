"""The package's shape: one dependency rule, no import cycles, small files.

    cli → recipes → {training, tasks, model} → {merger, packing, config} → foundations

A module may import its own package, any lower layer, and (below the middle layer) its own
layer; the three packages of the middle layer do not import each other (the trainer reads the
model through a protocol). Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ktm"
MAX_LINES = 300

LAYERS = {
    "errors": 0,
    "io_utils": 0,
    "distributed": 0,
    "sampling": 0,
    "example": 0,
    "fields": 0,
    "config": 1,
    "merger": 1,
    "packing": 1,
    "expansion": 1,
    "token_scores": 1,
    "query_match": 1,
    "training": 2,
    "tasks": 2,
    "model": 2,
    "recipes": 3,
    "cli": 4,
}


def _modules() -> dict[str, Path]:
    found = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = f
    return found


def _imports(module: str, file: Path, known: dict[str, Path]) -> set[str]:
    """The ktm modules ``module`` imports, at module level or inside functions."""
    is_pkg = file.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(file.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - node.level + 1]
                target = ".".join(prefix + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] + [f"{target}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module and name != "ktm" and name.startswith("ktm"):
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {m: _imports(m, f, known) for m, f in known.items()}


def _top(module: str) -> str:
    return module.split(".")[1]


def test_every_module_has_a_layer():
    tops = {_top(m) for m in _modules() if m != "ktm"}
    assert tops <= set(LAYERS), f"modules without a layer in LAYERS: {tops - set(LAYERS)}"


def test_imports_go_down_the_layers():
    wrong = []
    for module, targets in _graph().items():
        if module == "ktm":  # the package's front door re-exports the public API
            continue
        here = LAYERS[_top(module)]
        for target in targets:
            there = LAYERS[_top(target)]
            same_package = _top(target) == _top(module)
            peers = there == here and here == LAYERS["model"]
            if not same_package and (there > here or peers):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the dependency rule:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    index, low, on, stack, cycles = {}, {}, set(), [], []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_source_files_are_short():
    long = {
        str(f.relative_to(SRC)): n
        for f in PACKAGE.rglob("*.py")
        if (n := len(f.read_text().splitlines())) >= MAX_LINES
    }
    assert not long, f"files of {MAX_LINES}+ lines (split them by concern): {long}"


def test_the_checks_catch_what_they_guard(tmp_path):
    """The cycle and layer checks see imports inside functions (a check that cannot fail
    would prove nothing)."""
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from ..cli import main\n")
    found = _imports("ktm.model.m", mod, {"ktm.cli": mod, "ktm.model.m": mod})
    assert found == {"ktm.cli"}
