"""The package's layout (issue 21): no import cycle, and nothing above the models asks which model it holds."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hific_lit"
MODEL_CLASSES = {"HiFiC", "GC2018"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(tree: ast.AST, name: str, modules: set[str]) -> set[str]:
    """The package modules ``name`` imports anywhere (inside functions too), except under ``if TYPE_CHECKING``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{name}: relative import (the package imports by absolute names)"
            base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {module for module in found if module in modules and module != name}


def package_graph() -> dict[str, set[str]]:
    trees = {module_name(path): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(tree, name, set(trees)) for name, tree in trees.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (a list of modules, the first repeated at the end), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import p.b\ndef f():\n    from p.c import thing\n"
    )
    assert imported_modules(tree, "p.a", {"p.a", "p.b", "p.c"}) == {"p.c"}


def test_the_package_has_no_import_cycle() -> None:
    graph = package_graph()
    assert len(graph) > 80
    assert cycle(graph) is None


def test_nothing_outside_the_models_asks_which_model_it_holds() -> None:
    offending = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or len(node.args) < 2:
                continue
            checked = node.args[1]
            names = {n.id for n in ast.walk(checked) if isinstance(n, ast.Name)}
            if node.func.id == "isinstance" and names & MODEL_CLASSES:
                offending.append(f"{path.relative_to(PACKAGE)}:{node.lineno} isinstance on a model class")
            asks = node.func.id in ("getattr", "hasattr") and isinstance(checked, ast.Constant)
            if asks and "conditioned" in str(checked.value):
                offending.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.func.id}({checked.value!r})")
    assert not offending
