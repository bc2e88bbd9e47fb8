"""Dependencies point one way: no module of the package imports, even inside a function or for type
checking only, a module that imports it back; the command line sits on top and nothing imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import grpozoo

PACKAGE = Path(grpozoo.__file__).parent


def module_files() -> dict[str, Path]:
    """``grpozoo.a.b`` → its file, for every module of the package (a package is its ``__init__``)."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["grpozoo", *path.relative_to(PACKAGE).with_suffix("").parts]
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (module level, inside
    functions, under ``if TYPE_CHECKING``): ``from grpozoo.x import y`` counts as ``grpozoo.x.y``
    when that is a module, else as ``grpozoo.x``."""

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found |= {known(f"{base}.{alias.name}") for alias in node.names}
    return found - {None, name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_and_only_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_graph_sees_imports_inside_functions_and_for_type_checking_only(tmp_path):
    path = tmp_path / "a.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from grpozoo.b import Thing\n"
        "def f():\n    from . import c\n    import grpozoo.d.e\n"
    )
    modules = {"grpozoo", "grpozoo.a", "grpozoo.b", "grpozoo.c", "grpozoo.d"}
    assert imports_of("grpozoo.a", path, modules) == {"grpozoo.b", "grpozoo.c", "grpozoo.d"}


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_no_module_imports_the_command_line():
    graph = import_graph()
    assert sorted(name for name, imported in graph.items() if "grpozoo.cli" in imported) == []


def private_imports() -> list[str]:
    """``module: name`` for every underscored name a module of the package imports from another."""
    found = []
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("grpozoo"):
                found += [
                    f"{name}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and node.module != name
                ]
    return found


def test_no_module_imports_another_modules_private_names():
    # a helper shared across modules is public in one module (the masked tensor helpers live in
    # grpozoo.algos.masked), never a private name borrowed from a sibling
    assert private_imports() == []


def test_the_log_ratio_clamp_is_one_constant_of_the_masked_helpers():
    from grpozoo.algos import masked

    clamps = [
        f"{name}: {target.id}"
        for name, path in module_files().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and "LOG_RATIO" in target.id and name != masked.__name__
        and target.id != "NFT_MAX_LOG_RATIO"  # NFT's own cap on its ratio (exp(10)), part of the method
    ]
    assert clamps == []
