"""The package's import graph: every module imports, no module is part of an import cycle,
and the layers read top-down (a module never imports one of a higher layer):

    5  cli                     cuda_convnet.cli.*, __main__
    4  models / training       models, training, and the package itself (its public API)
    3  net, data pipeline      net.*, optim, data.*
    2  backends                backends.*, ops
    1  reference               reference.*
    0  leaf helpers            checks, shapes, random, viz, atomic, _ext, _build_info

The graph is built with `ast` over cuda_convnet/**/*.py, relative imports resolved.
Function-level (lazy) imports count as edges, for the cycles and for the layering: Python
tolerates a cycle through a lazy import at run time, but the two modules still cannot be
understood, tested or replaced apart, which is what the rule is for. Importing `a.b.c`
also runs the packages `a.b` and `a` (their __init__ files), so those are edges too,
except the importer's own enclosing packages (which are always initialised before it).
Imports built from strings at run time (importlib.import_module in data/__init__ and
cli/__init__, the compiled extensions in _ext) are not in the graph; importing every
module in a fresh interpreter covers them.
"""
from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys

import subproc

import cuda_convnet

ROOT = pathlib.Path(cuda_convnet.__file__).resolve().parent

LAYERS = [  # (rank, module or package prefix); the longest matching prefix wins
    (5, "cuda_convnet.cli"), (5, "cuda_convnet.__main__"),
    (4, "cuda_convnet"), (4, "cuda_convnet.models"), (4, "cuda_convnet.training"),
    (3, "cuda_convnet.net"), (3, "cuda_convnet.optim"), (3, "cuda_convnet.data"),
    (2, "cuda_convnet.backends"), (2, "cuda_convnet.ops"),
    (1, "cuda_convnet.reference"),
    (0, "cuda_convnet.checks"), (0, "cuda_convnet.shapes"), (0, "cuda_convnet.random"), (0, "cuda_convnet.viz"),
    (0, "cuda_convnet.atomic"),
    (0, "cuda_convnet._ext"), (0, "cuda_convnet._build_info"),
]


def modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ["cuda_convnet", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(pkg + ([node.module] if node.module else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    # `from pkg import name`: the submodule if there is one, else the package
                    # itself; a name that is neither is a generated submodule absent from a
                    # source tree (_build_info), left out.
                    if sub in mods or not base.startswith("cuda_convnet"):
                        targets.add(sub)
                    elif hasattr(importlib.import_module(base), a.name):
                        targets.add(base)
        edges = set()
        for t in targets:
            if not t.startswith("cuda_convnet"):
                continue
            for u in [*_ancestors(t), t]:
                if u != mod and u not in _ancestors(mod) and u in mods:
                    edges.add(u)
        graph[mod] = edges
    return graph


def layer(mod: str) -> int:
    best = max((p for _, p in LAYERS if mod == p or mod.startswith(p + ".")), key=len)
    return {p: r for r, p in LAYERS}[best]


def find_cycle(graph) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_graph_sees_the_packages_modules():
    graph = import_graph()
    assert {"cuda_convnet.reference.augment", "cuda_convnet.net.graph", "cuda_convnet.cli.train"} <= set(graph)
    # Spot checks of the resolution: a relative import, a function-level one, a parent package.
    assert "cuda_convnet.checks" in graph["cuda_convnet.reference.softmax"]
    assert "cuda_convnet.backends" in graph["cuda_convnet.data.augment"]  # lazy, in KernelTrainAugment
    assert "cuda_convnet.reference" in graph["cuda_convnet.data.augment"]  # reference/__init__ runs first


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_layers_read_top_down():
    bad = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
           for m, ts in import_graph().items() for t in ts if layer(t) > layer(m)]
    assert not bad, "\n".join(sorted(bad))


def test_every_module_imports_in_a_fresh_interpreter(tmp_path):
    names = sorted(m for m in modules() if m != "cuda_convnet.__main__")  # __main__ runs the CLI
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, env=subproc.env(),
                       check=False, cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
