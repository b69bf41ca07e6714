"""The package's layering (ARCHITECTURE.md): no import circles, and lower floors never import
higher ones, counting function-local imports (the ones that hid circles before)."""

from __future__ import annotations

import ast
from pathlib import Path

import lmdistill

ROOT = Path(lmdistill.__file__).parent

#: floor of each top-level part; a module may import only its own floor and lower ones
FLOORS = {
    "errors": 0, "names": 0, "schedules": 0, "cache": 0, "config_io": 0, "config": 1,
    "hardware": 1,
    "data": 2, "losses": 2, "mapping": 2, "models": 2, "report": 2,
    "teachers": 3, "train": 3,
    "augment": 4, "methods": 5, "bench": 5, "compress": 6,
    "api": 7, "demo": 8, "cli": 9, "__main__": 10, "__init__": 0,
}
#: within methods: the methods every other method may build on (KD is the base of all)
METHOD_FLOORS = {"finetune": 0, "kd": 1, "mlm": 1, "lexical": 1, "evaluate": 1, "adabert": 2,
                 "metakd": 2, "l2a": 2}


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """{module: lmdistill modules it imports}, anywhere in its body except under
    ``if TYPE_CHECKING:``."""
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and getattr(node.test, "id", None) == "TYPE_CHECKING"
                for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up) + ("." + node.module if node.module else "")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            edges.setdefault(name, set()).update(
                t for t in targets if t in mods and t != name and t != "lmdistill")
    return edges


def _floor(module: str) -> tuple[int, int]:
    parts = module.split(".")[1:] or ["__init__"]
    sub = METHOD_FLOORS.get(parts[1], 0) if parts[0] == "methods" and len(parts) > 1 else 0
    return FLOORS[parts[0]], sub


def test_no_import_circles():
    edges = _imports(_modules())
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                circles.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_lower_floors_never_import_higher_ones():
    mods = _modules()
    assert {m.split(".")[1] if "." in m else "__init__" for m in mods} <= set(FLOORS)
    def upward(a: str, b: str) -> bool:
        (fa, sa), (fb, sb) = _floor(a), _floor(b)
        return fb > fa or (fa == fb == FLOORS["methods"] and sb > sa)

    bad = [f"{a} -> {b}" for a, targets in _imports(mods).items() for b in targets
           if upward(a, b)]
    assert not bad, bad


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long
