"""Import cycles among zoo's modules, from the source (nothing is imported).

By default only module-level imports count: the ones that run when a module is imported (inside
``if``/``try`` at top level too, but not under ``if TYPE_CHECKING``). ``--all`` adds the imports inside
functions, which is where a cycle hides::

    python benchmark/scripts/import_cycles.py          # exit 1 if module-level imports form a cycle
    python benchmark/scripts/import_cycles.py --all    # also through function-level imports, and between
                                                       # subpackages (zoo.data, zoo.store, ...)
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_names(root: Path, package: str = "zoo") -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(body: list[ast.stmt], *, nested: bool):
    """The import statements run by ``body``; with ``nested``, also those inside functions and classes."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.orelse, nested=nested)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if nested:
                yield from _imports(node.body, nested=nested)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _imports(getattr(node, field, []) or [], nested=nested)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path = REPO, *, nested: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports. ``from pkg import name`` points at ``pkg.name`` when that is
    a module, else at ``pkg``; importing a module also points at the packages above it (their ``__init__``
    runs first)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), str(path)).body, nested=nested):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's package, up level-1 more
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[:len(package) - node.level + 1]
                    base = ".".join(package + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
        # Importing zoo.a.b first runs the package zoo.a: an edge to it, unless it is this module's own
        # package (already being imported by then).
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] |= {p for t in list(graph[name]) for p in _packages(t) if p in modules and p not in own}
    return graph


def _packages(module: str) -> list[str]:
    """The packages above ``module``: zoo.a.b -> zoo, zoo.a."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between zoo's subpackages (``zoo.data``, ...; a top-level module stands for itself): an edge
    wherever a module of one imports a module of another. The root package ``zoo`` and ``zoo.errors``, which
    every layer may use, are left out."""
    def home(module: str) -> str:
        return ".".join(module.split(".")[:2])

    skip = {"zoo", "zoo.errors"}
    out: dict[str, set[str]] = {}
    for a, targets in graph.items():
        if home(a) in skip:
            continue
        out.setdefault(home(a), set())
        out[home(a)] |= {home(b) for b in targets if home(b) != home(a) and home(b) not in skip}
    for targets in list(out.values()):
        for b in targets:
            out.setdefault(b, set())
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="count imports inside functions too")
    parser.add_argument("--root", type=Path, default=REPO, help="the source tree (default: this checkout)")
    args = parser.parse_args(argv)
    module_level = cycles(import_graph(args.root))
    for component in module_level:
        print("module-level cycle: " + " <-> ".join(component))
    if args.all:
        nested = import_graph(args.root, nested=True)
        for component in cycles(nested):
            print("cycle with function-level imports: " + " <-> ".join(component))
        for component in cycles(package_graph(nested)):
            print("cycle between subpackages: " + " <-> ".join(component))
    if not module_level:
        print("no cycle among module-level imports")
    return 1 if module_level else 0


if __name__ == "__main__":
    sys.exit(main())
