"""The package's layout rules (STYLE.md): small modules, short functions, no import circles."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "stackgan"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 100


def _modules() -> dict[str, ast.Module]:
    out = {}
    for f in SRC.rglob("*.py"):
        name = ".".join(("stackgan", *f.relative_to(SRC).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = ast.parse(f.read_text(), str(f))
    return out


def test_no_file_over_500_lines():
    long = {
        str(f.relative_to(SRC)): n
        for f in SRC.rglob("*.py")
        if (n := len(f.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert not long, long


def test_no_function_over_100_lines():
    long = [
        f"{mod}.{node.name}: {node.end_lineno - node.lineno + 1}"
        for mod, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_no_import_circles():
    """Module-level imports between the package's modules form no cycle (a package's
    ``__init__`` re-exporting its submodules is not one)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, tree in mods.items():
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module in mods:
                targets = {node.module} | {
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if f"{node.module}.{a.name}" in mods
                }
                graph[mod] |= {t for t in targets if not mod.startswith(t + ".") and t != mod}
    # a package importing its own submodules (re-exports) is not a circle
    for mod in graph:
        graph[mod] = {t for t in graph[mod] if not t.startswith(mod + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return [*path[path.index(t) :], t]
            if t not in state and (cycle := visit(t)):
                return cycle
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, " -> ".join(cycle)
