"""The source code a registered model or metric is made of, as one hash in its cache keys.

A plugin's version says nothing about an edit made without bumping it, so a cached training or evaluation
is keyed on the code itself: the module files that define the entry's ``build``, ``config`` and ``recipe``,
and every module of the same top-level package that they import, at any depth and from inside functions too
(``edsr_dqe`` builds on ``edsr``; a plugin's ``layers.py`` is part of its model). Files are named relative to
the package's parent folder, so a wheel, an editable install and a checkout of the same source hash alike.
zoo's own loop, metrics and numerics are not part of it: their changes are versioned by the formats they
write (validation, evaluation and checkpoint formats). Code reached only through ``importlib`` strings is not
seen.

Each file's digest is kept per (path, size, modification time) for the process.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path

_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def code_hash(*objects, length: int = 16) -> str:
    """One hash of the source files that define ``objects`` (functions, classes, callables, modules)."""
    h = hashlib.sha256()
    files = sorted({f for obj in objects if obj is not None for f in source_files(obj)})
    for name, path in files:
        h.update(name.encode() + b"\0" + _digest(path).encode() + b"\n")
    if not files:  # defined where no file says what it is (an interactive session): nothing to key on
        h.update(b"<no source file>")
    return h.hexdigest()[:length]


def entry_code_hash(entry) -> str:
    """The code hash of a model entry (its build, config and recipe) or a metric entry (its build)."""
    return code_hash(getattr(entry, "build", None), getattr(entry, "config", None), getattr(entry, "recipe", None))


def source_files(obj) -> list[tuple[str, Path]]:
    """``(name relative to the package's parent, path)`` of the module defining ``obj`` and of the modules of
    its top-level package it imports; empty for zoo's core and for objects without a source file."""
    name = _module_name(obj)
    if not name or name.partition(".")[0] == "zoo":  # the core (a base config, a shared loss): see above
        return []
    found: dict[str, Path] = {}
    _collect(name, name.partition(".")[0], found)
    base = _base(name)
    return [(_relative(path, base), path) for path in found.values()]


def _module_name(obj) -> str | None:
    if inspect.ismodule(obj):
        return obj.__name__
    obj = getattr(obj, "func", obj)  # functools.partial
    return getattr(obj, "__module__", None) or type(obj).__module__


def _file_of(module: str) -> Path | None:
    loaded = sys.modules.get(module)
    path = getattr(loaded, "__file__", None)
    if path is None and loaded is None:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        path = spec.origin if spec and spec.has_location else None
    return Path(path).resolve() if path and path.endswith(".py") else None


def _base(module: str) -> Path | None:
    """The folder file names are taken from: the parent of the top-level package (or module)."""
    top = _file_of(module.partition(".")[0])
    if top is None:
        return None
    return top.parent.parent if top.name == "__init__.py" else top.parent


def _relative(path: Path, base: Path | None) -> str:
    try:
        return path.relative_to(base).as_posix() if base else path.name
    except ValueError:
        return path.name


def _collect(module: str, top: str, found: dict[str, Path]) -> None:
    if module in found:
        return
    path = _file_of(module)
    if path is None:
        return
    found[module] = path
    is_package = path.name == "__init__.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):  # hashed as it is; its imports unknown
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            names = [f"{base}.{a.name}" if _file_of(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        for name in names:
            if name.partition(".")[0] == top and name != top:
                _collect(name, top, found)


def _digest(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _FILE_DIGESTS[key]
