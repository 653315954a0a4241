"""The package reads bottom-up as the data flow, and the core knows nothing
of its integrations (issue 15).

Every import of every module is read with `ast`: at the top, inside
functions and under `if TYPE_CHECKING:`.  Three rules:

1. No core module (LEVELS up to `verifying`) imports an integration
   (merkle.git, merkle.hf, merkle.zarr, merkle.dask), the CLI, or the dask/distributed
   libraries, in any of those places.  Integrations plug in through the
   registries the core keeps (merkle.source.layouts.KNOWN_LAYOUTS) and the
   objects callers pass (merkle.hashing.cluster.Cluster).
2. A module imports only from its own level or below, unless its docstring
   has a line starting "Upward import:" that says why.
3. No cycle among merkle modules, counting imports at the top and inside
   functions (those under TYPE_CHECKING run only for the type checker).

The checker runs on a small package written here with one violation of
each kind, so a checker that finds nothing fails too.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LEVELS: tuple[tuple[str, ...], ...] = (
    ("errors", "report", "display", "_native", "_merkle", "_gc"),
    ("tree",),
    ("format",),
    ("source",),
    ("hashing",),
    ("signing",),
    ("building",),
    ("verifying",),
    ("guarding", "syncing"),  # the use step: verify, then hand a loader only the verified bytes; or fetch them
    ("git", "hf", "image", "zarr", "dask"),
    ("policy", "bom"),  # the evidence flow's middle step: above the integrations whose evidence it reads (model cards)
    ("",),  # the package itself: the public face over everything below
    ("cli", "__main__"),
)
"""Bottom-up, the order of the data flow: each row is one level, named by
the first component below the package ("" for the package `__init__`)."""
CORE_TOP = "verifying"
"""The highest level of the core; everything above it is an integration or the CLI."""
FORBIDDEN_IN_CORE = ("git", "hf", "image", "zarr", "dask", "cli", "guarding", "syncing")
"""Parts of the package no core module may import."""
FORBIDDEN_LIBRARIES = ("dask", "distributed")
"""Libraries no core module may import."""
UPWARD = "Upward import:"


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    """A module of the package, or a top-level library name."""
    where: str
    """"top", "function" or "type-checking"."""
    line: int


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `root`, by dotted name."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    for stub in (root / package).rglob("*.pyi"):  # a compiled extension, named by its stub
        name = ".".join(stub.relative_to(root).with_suffix("").parts)
        found.setdefault(name, stub)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(name: str, path: Path, known: dict[str, Path], package: str) -> Iterator[Import]:
    """The imports of module `name`: each resolved to the module it loads
    (`from a.b import c` loads a.b.c when that is a module) or, outside the
    package, to the library's top-level name."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"

    def resolve(module: str | None, level: int) -> str:
        if not level:
            return module or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def target(module: str) -> str:
        return module if module == package or module.startswith(package + ".") else module.split(".")[0]

    def visit(node: ast.AST, where: str) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and where == "top":
                here = "function"
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for inner in child.body:
                    yield from visit(ast.Module(body=[inner], type_ignores=[]), "type-checking")
                for inner in child.orelse:
                    yield from visit(ast.Module(body=[inner], type_ignores=[]), where)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, target(alias.name), here, child.lineno)
            elif isinstance(child, ast.ImportFrom):
                module = resolve(child.module, child.level)
                for alias in child.names:
                    full = f"{module}.{alias.name}"
                    yield Import(name, full if full in known else target(module), here, child.lineno)
            yield from visit(child, here)

    yield from visit(tree, "top")


def level_of(module: str, package: str) -> int | None:
    """The LEVELS row of a module of the package (None for one no row names)."""
    first = module.split(".")[1] if "." in module else ""
    for i, row in enumerate(LEVELS):
        if first in row:
            return i
    return None


def _core_top() -> int:
    return next(i for i, row in enumerate(LEVELS) if CORE_TOP in row)


def explains_upward(path: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return any(line.strip().startswith(UPWARD) for line in docstring.splitlines())


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def violations(root: Path, package: str) -> list[str]:
    """Every breach of the three rules in `package` under `root`, one line each."""
    known = modules(root, package)
    core_top = _core_top()
    forbidden = tuple(f"{package}.{part}" for part in FORBIDDEN_IN_CORE)
    problems = []
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        if path.suffix == ".pyi":
            continue
        mine = level_of(name, package)
        if mine is None:
            problems.append(f"{name}: in no level of LEVELS")
            continue
        upward_ok = explains_upward(path)
        for imp in imports(name, path, known, package):
            inside = imp.target == package or imp.target.startswith(package + ".")
            at = f"{name}:{imp.line} imports {imp.target} ({imp.where})"
            if mine <= core_top:
                if (inside and imp.target.startswith(forbidden)) or imp.target in FORBIDDEN_LIBRARIES:
                    problems.append(f"{at}: a core module imports an integration, the CLI or Dask")
                    continue
            if not inside:
                continue
            theirs = level_of(imp.target, package)
            if theirs is not None and theirs > mine and not upward_ok:
                problems.append(f"{at}: upward ({LEVELS[theirs][0]} is above {LEVELS[mine][0] or package})")
            if imp.where != "type-checking" and imp.target in known and imp.target != name:
                graph[name].add(imp.target)
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def test_merkle_is_layered():
    assert violations(ROOT, "merkle") == []


def test_every_known_layout_resolves():
    """The registry is the only door to a layout: every entry names an
    object that implements LayoutProvider."""
    from merkle.source.layouts import KNOWN_LAYOUTS, provider

    for name, target in KNOWN_LAYOUTS.items():
        module = target.partition(":")[0]
        assert level_of(module, "merkle") is not None and level_of(module, "merkle") > _core_top(), target
        importlib.import_module(module)
        found = provider(name)
        assert callable(found.open) and callable(found.layout_for), target


SYNTHETIC = {
    "pkg/__init__.py": '"""The face."""\n',
    "pkg/errors.py": '"""Bottom."""\n',
    "pkg/format/__init__.py": "",
    "pkg/format/plain.py": '"""Imports only below."""\nfrom pkg.errors import X\n',
    "pkg/format/reaches_hf.py": textwrap.dedent(
        '''\
        """Imports an integration inside a function."""


        def f():
            from pkg.hf import layout
        '''
    ),
    "pkg/format/types_dask.py": textwrap.dedent(
        '''\
        """Imports Dask for its types only."""
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            import distributed
        '''
    ),
    "pkg/format/up.py": '"""Imports a level above."""\nfrom pkg.hashing import engine\n',
    "pkg/format/up_said.py": textwrap.dedent(
        '''\
        """Imports a level above, and says why.

        Upward import: the engine's buffers, for a reason written here.
        """
        from pkg.hashing import engine
        '''
    ),
    "pkg/hashing/__init__.py": "",
    "pkg/hashing/engine.py": '"""The engine."""\nfrom pkg.hashing import planner\n',
    "pkg/hashing/planner.py": textwrap.dedent(
        '''\
        """Plans; imports the engine back at run time."""


        def plan():
            from pkg.hashing import engine
        '''
    ),
    "pkg/hf/__init__.py": "",
    "pkg/hf/layout.py": '"""An integration may import the core."""\nfrom pkg.format import plain\n',
}


def test_the_checker_finds_each_kind_of_breach(tmp_path):
    for name, text in SYNTHETIC.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(tmp_path, "pkg")
    assert any(p.startswith("pkg.format.reaches_hf:5 imports pkg.hf.layout (function)") for p in found), found
    assert any(p.startswith("pkg.format.types_dask:5 imports distributed (type-checking)") for p in found), found
    assert any(p.startswith("pkg.format.up:2 imports pkg.hashing.engine (top): upward") for p in found), found
    assert "import cycle: pkg.hashing.engine -> pkg.hashing.planner" in found, found
    assert not any(p.startswith(("pkg.format.up_said", "pkg.format.plain", "pkg.hf.")) for p in found), found
    assert len(found) == 4, found


@pytest.mark.parametrize("where", ["top", "function", "type-checking"])
def test_each_place_an_import_hides_is_read(tmp_path, where):
    body = {
        "top": "import pkg.cli\n",
        "function": "def f():\n    import pkg.cli\n",
        "type-checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.cli\n",
    }[where]
    for name, text in {"pkg/__init__.py": "", "pkg/tree/__init__.py": body, "pkg/cli/__init__.py": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (found,) = violations(tmp_path, "pkg")
    assert f"imports pkg.cli ({where})" in found and "a core module imports" in found
