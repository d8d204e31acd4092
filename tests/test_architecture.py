"""Architecture rules: no import cycle in the package, and the core stays free of widgets.

The import graph is read from the source with ``ast``: one node per module of
``radipop_widgets``, one edge per ``import`` statement that names another module of the
package, wherever it stands (module level, inside a function, under ``if``). Relative
imports are resolved; ``from pkg import name`` is an edge to the submodule ``pkg.name``
when there is one, else to ``pkg`` itself. Importing ``a.b.c`` also runs the
``__init__`` of ``a`` and ``a.b``, but those implicit parent imports are not edges (a
package re-exporting its submodules, which import each other, is no cycle). Dynamic
imports (``importlib.import_module`` in the package's lazy attribute table) are not
statements and are not counted.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import radipop_widgets

PACKAGE_DIR = Path(radipop_widgets.__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name
WIDGET_LIBRARIES = ("ipywidgets", "ipycanvas", "IPython")
UI_PACKAGE = f"{PACKAGE}.app"


def module_names(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> source file of every module below ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imported_names(path: Path, module: str) -> list[tuple[str, tuple[str, ...], int]]:
    """Every import statement of a file: (absolute module, imported names, line)."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if not is_package:
                    package.pop()
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            found.append((base, tuple(alias.name for alias in node.names), node.lineno))
    return found


def _known(name: str, modules) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {imported module of the package: line of the first such import}."""
    graph = {}
    for module, path in modules.items():
        edges = {}
        for base, names, line in imported_names(path, module):
            targets = [f"{base}.{n}" if f"{base}.{n}" in modules else base for n in names]
            for target in targets or [base]:
                target = _known(target, modules)
                if target is not None and target != module:
                    edges.setdefault(target, line)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (iterative depth-first search)."""
    state = {}  # absent: unvisited, 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, iterators = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            nxt = next(iterators[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iterators.append(iter(sorted(graph.get(nxt, ()))))
    return None


def describe(cycle: list[str], graph, modules, root: Path = PACKAGE_DIR.parent) -> str:
    """The cycle, one line per import with the file and line that make it."""
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        where = modules[a].relative_to(root)
        steps.append(f"  {a} imports {b} ({where}:{graph[a][b]})")
    return "import cycle " + " -> ".join(cycle) + ":\n" + "\n".join(steps)


# ---------------------------------------------------------------- the checker itself

def _write_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return module_names(root / "pkg")


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    modules = _write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import f\n",
        "b.py": "def f():\n    from . import a\n",
        "sub/__init__.py": "from .c import g\n",
        "sub/c.py": "from ..a import x\n",
    })
    graph = import_graph(modules)
    assert graph["pkg.sub"] == {"pkg.sub.c": 1} and graph["pkg.sub.c"] == {"pkg.a": 1}
    cycle = find_cycle(graph)
    assert cycle == ["pkg.a", "pkg.b", "pkg.a"]
    assert "pkg.b imports pkg.a (pkg/b.py:2)" in describe(cycle, graph, modules, tmp_path)


def test_checker_accepts_a_package_that_reexports_its_submodules(tmp_path):
    modules = _write_package(tmp_path, {
        "__init__.py": "from .a import x\n",
        "a.py": "from . import b\nfrom .b import y\nimport pkg.b\n",
        "b.py": "import os\nfrom pkg import c\n",
        "c.py": "",
    })
    graph = import_graph(modules)
    assert graph == {"pkg": {"pkg.a": 1}, "pkg.a": {"pkg.b": 1}, "pkg.b": {"pkg.c": 2},
                     "pkg.c": {}}
    assert find_cycle(graph) is None


# ---------------------------------------------------------------- the package

def test_package_has_no_import_cycle():
    modules = module_names()
    graph = import_graph(modules)
    assert {"radipop_widgets.export", "radipop_widgets.persist"} <= graph.keys()
    cycle = find_cycle(graph)
    assert cycle is None, describe(cycle, graph, modules)


def test_only_the_app_imports_widget_libraries():
    """Statically, in every function too: no module outside ``app/`` names a widget library."""
    offenders = []
    for module, path in module_names().items():
        if module == UI_PACKAGE or module.startswith(UI_PACKAGE + "."):
            continue
        for base, _names, line in imported_names(path, module):
            if base.split(".")[0] in WIDGET_LIBRARIES:
                offenders.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line} imports {base}")
    assert not offenders, "only radipop_widgets/app/ may import widget libraries:\n" + "\n".join(
        offenders)


def test_importing_the_core_loads_no_widget_library():
    """At run time, through third-party imports too: every module outside ``app/``."""
    core = [m for m in module_names() if not (m == UI_PACKAGE or m.startswith(UI_PACKAGE + "."))]
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "import radipop_widgets as rw\n"
        "rw.load_study, rw.Session\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{WIDGET_LIBRARIES + ('ipykernel', 'voila')!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""


def test_app_is_imported_lazily():
    code = ("import sys, radipop_widgets as rw\n"
            "assert 'radipop_widgets.app' not in sys.modules\n"
            "rw.App\n"
            "assert 'radipop_widgets.app' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- doctests

DOCTESTED = ["radipop_widgets.labels", "radipop_widgets.events", "radipop_widgets.measure",
             "radipop_widgets.persist", "radipop_widgets.labelmap", "radipop_widgets.atomic",
             "radipop_widgets.export", "radipop_widgets.study", "radipop_widgets.serve",
             "radipop_widgets.io.phantom"]


def test_the_suite_runs_the_doctests_of_the_package():
    import test_doctests
    assert set(DOCTESTED) <= set(test_doctests.MODULES)


@pytest.mark.parametrize("module", DOCTESTED)
def test_core_module_has_examples(module):
    examples = sum(len(t.examples) for t in
                   doctest.DocTestFinder().find(importlib.import_module(module)))
    assert examples >= 1, f"{module} lost its doctest examples"
