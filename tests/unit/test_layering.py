"""The package's import contract, read from the source with `ast` (nothing is imported).

Layers, lowest first: model <- resources <- engine <- {kernel, render} <- {agent, cni} <- cli.
A module may import its own layer and lower ones; kernel and render never import
each other (the kernel reads and writes, render prints: either works without
the other). Within the top, the command line may start the agent (`nsnet
agent`) and install the CNI plugin (`nsnet cni install`), never the reverse:
the agent runs the command function it is handed, and the CNI plugin is a
program of its own that drives the engine as runtimes call it.
The top-level errors, labels, faults, jsonable and words (and the package itself,
for __version__) are the base any module may import; they import only each
other. launch and __main__ are entry points: they may import anything and
nothing imports them.

Every import counts: module level, lazy ones inside functions, and those under
`if TYPE_CHECKING:` (a type is a dependency too). The cycle check covers every
import that runs, lazy ones included: a lazy import is still a dependency, and
a cycle made of them only moves the failure to the first call. Only imports
under TYPE_CHECKING are left out of it, because they never run.
"""

from __future__ import annotations

import ast
import dataclasses
import textwrap
from pathlib import Path

import pytest

import netplan_lite

PACKAGE = "netplan_lite"
PACKAGE_DIR = Path(netplan_lite.__file__).resolve().parent
BASE = frozenset({"errors", "labels", "faults", "jsonable", "words"})
ENTRY_POINTS = frozenset({"launch", "__main__"})
LOWER = {  # layer -> the layers below it that it may import
    "model": frozenset(),
    "resources": frozenset({"model"}),
    "engine": frozenset({"model", "resources"}),
    "kernel": frozenset({"model", "resources", "engine"}),
    "render": frozenset({"model", "resources", "engine"}),
    "agent": frozenset({"model", "resources", "engine", "kernel", "render"}),
    "cni": frozenset({"model", "resources", "engine", "kernel"}),
    "cli": frozenset({"model", "resources", "engine", "kernel", "render", "agent", "cni"}),
}


@dataclasses.dataclass(frozen=True)
class Import:
    """One import of a module of the package, where it is written."""

    source: str  # importing module, e.g. netplan_lite.cli.main
    target: str  # imported module, e.g. netplan_lite.cli.commands
    file: str  # path relative to the package's parent, e.g. netplan_lite/cli/main.py
    line: int
    how: str  # "module level", "lazy" (inside a function) or "TYPE_CHECKING"

    def __str__(self) -> str:
        return f"{self.file}:{self.line} -> {self.target} ({self.how})"


# reading the imports


def modules(package_dir: Path, package: str) -> dict[str, Path]:
    """Every module of the package (packages by their __init__.py), by dotted name."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Finder(ast.NodeVisitor):
    """Import statements with the context they run in."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, str]] = []
        self._context = ["module level"]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._context.append("TYPE_CHECKING" if self._context[-1] == "TYPE_CHECKING" else "lazy")
        self.generic_visit(node)
        self._context.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._context.append("TYPE_CHECKING")
        for child in node.body:
            self.visit(child)
        self._context.pop()
        for child in node.orelse:  # `else:` runs
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._context[-1]))

    visit_ImportFrom = visit_Import  # type: ignore[assignment]


def _targets(node: ast.Import | ast.ImportFrom, source: str, is_package: bool, known: set[str]) -> list[str]:
    """The package's modules an import statement loads (other packages are not our business)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            parts = source.split(".")
            anchor = parts if is_package else parts[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    return sorted({n for n in names if n in known})


def imports(package_dir: Path, package: str) -> list[Import]:
    """Every import of one of the package's modules by another, in file and line order."""
    found = modules(package_dir, package)
    known = set(found)
    result = []
    for name, path in found.items():
        finder = _Finder()
        finder.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        shown = path.relative_to(package_dir.parent).as_posix()
        for node, how in finder.found:
            for target in _targets(node, name, path.name == "__init__.py", known):
                result.append(Import(name, target, shown, node.lineno, how))
    return sorted(result, key=lambda i: (i.file, i.line, i.target))


# the rules


def layer_of(module: str, package: str = PACKAGE) -> str:
    """`base`, `entry point`, a layer's name, or `unknown` (a module the contract does not place)."""
    parts = module.split(".")[1:]
    if not parts:
        return "base"  # the package itself: __version__
    if parts[0] in LOWER:
        return parts[0]
    if len(parts) == 1:
        return "base" if parts[0] in BASE else "entry point" if parts[0] in ENTRY_POINTS else "unknown"
    return "unknown"


def layering_violations(found: list[Import], package: str = PACKAGE) -> list[str]:
    """One line per import the layering forbids, each saying where it is and why."""
    bad = []
    for imp in found:
        source, target = layer_of(imp.source, package), layer_of(imp.target, package)
        if target == "entry point" and source != "entry point":
            bad.append(f"{imp}: nothing imports an entry point")
        elif source == "base" and target != "base":
            bad.append(f"{imp}: the base ({', '.join(sorted(BASE))}) imports only the base")
        elif source in LOWER and target not in {"base", source, *LOWER[source]}:
            bad.append(f"{imp}: {source} may not import {target}")
    return bad


def unplaced(found: dict[str, Path], package: str = PACKAGE) -> list[str]:
    return [f"{name}: in no layer, not base, not an entry point" for name in found if layer_of(name, package) == "unknown"]


def cycles(found: list[Import]) -> list[list[str]]:
    """The import cycles among imports that run (TYPE_CHECKING left out), each as its modules'
    imports of one another, one line each; found as strongly connected components (Tarjan)."""
    edges: dict[str, list[Import]] = {}
    for imp in found:
        if imp.how != "TYPE_CHECKING":
            edges.setdefault(imp.source, []).append(imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the number of modules
        index[node] = low[node] = len(index)
        stack.append(node)
        for imp in edges.get(node, []):
            if imp.target not in index:
                visit(imp.target)
                low[node] = min(low[node], low[imp.target])
            elif imp.target in stack:
                low[node] = min(low[node], index[imp.target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    found_cycles = []
    for component in components:
        inside = [str(i) for m in sorted(component) for i in edges.get(m, []) if i.target in component]
        if inside:  # more than one module, or a module importing itself
            found_cycles.append(inside)
    return sorted(found_cycles)


# the package


def test_every_module_is_placed():
    lost = unplaced(modules(PACKAGE_DIR, PACKAGE))
    if lost:
        pytest.fail("modules the layering does not place:\n  " + "\n  ".join(lost), pytrace=False)


def test_imports_follow_the_layers():
    bad = layering_violations(imports(PACKAGE_DIR, PACKAGE))
    if bad:
        pytest.fail(
            "imports against the layering (model <- resources <- engine <- {kernel, render} <- agent <- cli):\n  " + "\n  ".join(bad), pytrace=False
        )


def test_no_import_cycles():
    found = cycles(imports(PACKAGE_DIR, PACKAGE))
    if found:
        pytest.fail("import cycles (each: the imports among its modules):\n" + "\n".join("  - " + "\n    ".join(c) for c in found), pytrace=False)


def test_the_reader_sees_all_three_kinds_of_import():
    """A reader that saw nothing would pass the tests above: it must see what is there."""
    hows = {(i.source, i.target): i.how for i in imports(PACKAGE_DIR, PACKAGE)}
    assert hows[("netplan_lite.cli.main", "netplan_lite.cli.commands")] == "module level"
    assert hows[("netplan_lite.cli.commands", "netplan_lite.engine.reconcile")] == "lazy"
    assert "TYPE_CHECKING" in hows.values()


# the checker itself, on a small package made for it


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
    return root


def test_the_checker_reports_each_forbidden_import_with_file_line_and_module(tmp_path):
    root = _package(
        tmp_path,
        {
            "errors.py": "from .model import topology\n",
            "model/topology.py": "from . import other\nimport pkg.errors\n",
            "model/other.py": "",
            "engine/plan.py": "def f():\n    from ..render import text\n",
            "kernel/io.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..render.text import T\n",
            "render/text.py": "from ..engine import plan\n",
            "agent/server.py": "from ..cli import main\n",
            "cli/main.py": "from .. import launch\nfrom ..agent import server\n",
            "launch.py": "from .cli import main\n",
        },
    )
    bad = layering_violations(imports(root, "pkg"), "pkg")
    assert bad == [
        "pkg/agent/server.py:1 -> pkg.cli.main (module level): agent may not import cli",
        "pkg/cli/main.py:1 -> pkg.launch (module level): nothing imports an entry point",
        "pkg/engine/plan.py:2 -> pkg.render.text (lazy): engine may not import render",
        "pkg/errors.py:1 -> pkg.model.topology (module level): the base (errors, faults, jsonable, labels, words) imports only the base",
        "pkg/kernel/io.py:3 -> pkg.render.text (TYPE_CHECKING): kernel may not import render",
    ]


def test_the_checker_finds_cycles_through_lazy_imports_but_not_type_checking_ones(tmp_path):
    root = _package(
        tmp_path,
        {
            "cli/main.py": "from .commands import run\n",
            "cli/commands.py": "def run():\n    from . import main\n",
            "cli/completion.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .main import X\n",
            "model/a.py": "import pkg.model.a\n",
        },
    )
    assert cycles(imports(root, "pkg")) == [
        ["pkg/cli/commands.py:2 -> pkg.cli.main (lazy)", "pkg/cli/main.py:1 -> pkg.cli.commands (module level)"],
        ["pkg/model/a.py:1 -> pkg.model.a (module level)"],
    ]
