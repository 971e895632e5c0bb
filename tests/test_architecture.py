"""The seams of the package, checked on its source (docs/architecture.md).

* The import graph of ``src/openpersonalize`` has no cycle, counting imports made inside
  functions: a contract every side needs lives below them all (the job contract, the recipe
  capabilities), so no import has to hide in a function.
* What a recipe can do is asked of the recipe: no catalogue recipe name is written outside
  ``recipes/`` (the demo, which plays a user, excepted).
* Names explain themselves: no module shadows a standard-library module, and the classes readers
  meet everywhere have one meaning each.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from openpersonalize.recipes.catalogue import RECIPES

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "openpersonalize"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its source (functions included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # ``from pkg import submodule`` depends on the submodule; other names on ``pkg``.
                found = {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules}
                if len(found) < len(node.names) and target in modules:
                    found.add(target)
            elif isinstance(node, ast.Import):
                found = {a.name for a in node.names if a.name in modules}
            else:
                continue
            graph[name] |= found - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_recipe_name_outside_recipes():
    names = {r.name for r in RECIPES}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "recipes" or relative.name == "demo.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{relative}:{node.lineno} {node.value}")
    assert offenders == []


def test_no_module_shadows_the_standard_library():
    shadowing = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.stem in sys.stdlib_module_names]
    assert shadowing == []


def test_shared_class_names_have_one_meaning():
    seen: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                seen.setdefault(node.name, []).append(str(path.relative_to(PACKAGE)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}
