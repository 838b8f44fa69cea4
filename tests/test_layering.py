"""The package layering holds: contracts/ is the bottom layer, and no product module imports
itself back through others.

Read from the source with `ast`, not by importing, so imports inside functions (the ones that
keep torch or Ray out of a light process) count too: an import deferred into a function still
ties the two modules together when that function runs. Each import is an edge to the deepest
product module it names (`import a.b` and `from a import b` both reach `a.b` when that is a
module, `a` otherwise). Imports under `if TYPE_CHECKING:` never run and are left out: they
name a type for the checker, which resolves cycles itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
BOTTOM = "contracts"


def product_packages() -> list[str]:
    """The top-level packages the project ships (pyproject's package list), so a new package
    is held to the rules as soon as it is added there."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = settings["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.rstrip("*").rstrip(".") for p in patterns if (ROOT / p.rstrip("*")).is_dir()})


def product_modules() -> dict[str, Path]:
    """Every product module's dotted name and file (a package is its __init__.py)."""
    modules = {}
    for package in product_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def deepest(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is a product module (None: not product code)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def imported_names(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every dotted name the module imports, relative imports resolved, with its line."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield (f"{base}.{alias.name}" if alias.name != "*" else base), node.lineno


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that may run: all of them but the bodies of `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        yield node
        if isinstance(node, ast.If) and _names_type_checking(node.test):
            for branch in node.orelse:
                yield branch
                yield from runtime_nodes(branch)
        else:
            yield from runtime_nodes(node)


def _names_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {product module it imports: the first line that does}."""
    modules = product_modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        for name, line in imported_names(module, path):
            target = deepest(name, modules)
            if target is not None and target != module:
                edges.setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            components.append([node, *component])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_in(sorted(c), graph) for c in components if len(c) > 1]


def cycle_in(component: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """A shortest cycle from the component's first module back to it (breadth-first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node]):
                if target == start:
                    return [*paths[node], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    return component


def test_graph_sees_imports_inside_functions() -> None:
    """The walk counts deferred imports and resolves `from a import b` to the module a.b."""
    graph = import_graph()
    assert "model_inputs.vision" in graph["learner.batch"]  # imported inside a function
    assert "contracts.tasks" in graph["contracts.episode_spec"]


def test_relative_imports_resolve_against_the_importing_package(tmp_path: Path) -> None:
    """`from . import b` in a package's __init__ and `from ..c import d` in a submodule name
    the same modules an absolute import would; TYPE_CHECKING-only imports are left out."""
    init, module = tmp_path / "__init__.py", tmp_path / "mod.py"
    init.write_text("from . import b\n")
    module.write_text("from ..c import d\nfrom typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    import e\nelse:\n    import f\n"
                      "def g():\n    import h.i\n")
    assert [n for n, _ in imported_names("p.q", init)] == ["p.q.b"]
    assert [n for n, _ in imported_names("p.q.mod", module)] == ["p.c.d", "typing.TYPE_CHECKING",
                                                                 "f", "h.i"]


def test_a_cycle_is_reported_as_the_path_around_it() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_contracts_import_no_other_product_package() -> None:
    """contracts/ is the bottom layer: every other package may import it, it imports none."""
    graph = import_graph()
    offending = [f"{module} -> {target} (line {line})"
                 for module, edges in sorted(graph.items())
                 if module.split(".")[0] == BOTTOM
                 for target, line in sorted(edges.items())
                 if target.split(".")[0] != BOTTOM]
    assert not offending, "contracts/ imports other product packages:\n" + "\n".join(offending)


def test_no_import_cycle() -> None:
    """Dependencies point one way, even counting imports inside functions."""
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)
