"""Imports go one way: hooks and proxy ← capture ← training ← export ← the bc-train group.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a
function counts as much as one at the top: either can close a circle at run time.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

# Folder in the repository → the import name of its package. Moving the packages under
# one installed namespace changes only the right-hand side.
PACKAGES = {
    "hooks": "claude_bc.hooks",
    "proxy": "claude_bc.proxy",
    "capture": "claude_bc.capture",
    "training": "claude_bc.training",
    "export": "claude_bc.export",
    "claude_bc": "claude_bc",
}

# Which other packages (by folder) each one may import. The stdlib hook and the addon
# run outside this project's environment: they import nothing of ours. The bc-train
# group (claude_bc/cli.py) mounts every stage, so only it sits above export.
ALLOWED = {
    "hooks": set(),
    "proxy": set(),
    "capture": {"hooks", "proxy"},
    "training": {"capture"},
    "export": {"capture", "training"},
    "claude_bc": {"hooks", "proxy", "capture", "training", "export"},
}

ROOT = "claude_bc"
KNOWN_CYCLES: list[frozenset[str]] = []  # none left: keep it that way


def _modules() -> dict[str, Path]:
    """Every module of ours by its import name."""
    found: dict[str, Path] = {}
    for folder, name in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


def _is_main_block(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":``: it runs only as a script, never on import."""
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _imported_names(tree: ast.Module) -> Iterator[str]:
    """``a.b`` for ``import a.b``; ``a.b.c`` and ``a.b`` for ``from a.b import c``."""
    body = [n for n in tree.body if not _is_main_block(n)]
    for node in (n for top in body for n in ast.walk(top)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, "relative imports: write the package's name"
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        # the root package (claude_bc/__init__.py, a docstring) comes with any import of a
        # subpackage: it is no edge
        graph[name] = {t for t in _imported_names(tree) if t in modules and t not in (name, ROOT)}
    return graph


def package_of(module: str) -> str:
    """The folder a module lives in (the longest import prefix that matches)."""
    matches = [
        (len(name), folder)
        for folder, name in PACKAGES.items()
        if module == name or module.startswith(name + ".")
    ]
    return max(matches)[1]


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

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
            component = {stack.pop()}
            while v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_packages_import_one_way() -> None:
    wrong = sorted(
        f"{src} imports {dst}"
        for src, targets in import_graph().items()
        for dst in targets
        if package_of(dst) != package_of(src) and package_of(dst) not in ALLOWED[package_of(src)]
    )
    assert wrong == []


def test_no_import_cycles() -> None:
    found = [sorted(c) for c in cycles(import_graph()) if c not in KNOWN_CYCLES]
    assert found == []


def test_the_graph_sees_every_package() -> None:
    """The checks above are only as good as the graph: every package is read."""
    graph = import_graph()
    assert {package_of(m) for m in graph} == set(PACKAGES)
    assert "claude_bc.capture.errors" in graph["claude_bc.cli"]


def _is_python_script(path: Path) -> bool:
    """A ``.py`` file, or an executable whose first line names Python (scripts/)."""
    if not path.is_file():
        return False
    if path.suffix == ".py":
        return True
    with path.open("rb") as f:
        return b"python" in f.readline()


def test_every_import_of_ours_names_claude_bc() -> None:
    """Installed, only ``claude_bc`` exists: an import of ``capture.x`` (which works from
    the repository root only) would break in a wheel. Tests, benchmarks and scripts too."""
    bare = {folder for folder in PACKAGES if folder != "claude_bc"}
    tops = ("claude_bc", *bare, "tests", "benchmarks")
    files = [p for top in tops for p in (REPO / top).rglob("*.py")]
    files += [p for p in (REPO / "scripts").iterdir() if _is_python_script(p)]
    names = "|".join(sorted(bare))
    doctest = re.compile(rf"^\s*>>> (?:from|import) ({names})\b", re.M)
    # a package named in a string: importlib's resources.files, find_spec, import_module
    dynamic = re.compile(rf"(?:files|find_spec|import_module|__import__)\(\s*[\"']({names})\b")
    wrong = []
    for path in sorted(files):
        text = path.read_text()
        wrong += [f"{path.relative_to(REPO)}: >>> {m.group(1)}" for m in doctest.finditer(text)]
        wrong += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in dynamic.finditer(text)]
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            wrong += [f"{where} {n}" for n in names if n.split(".")[0] in bare]
    assert wrong == []
