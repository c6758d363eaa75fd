"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A crash leaves the old file or the new one, never half of one. No torch here, so the CLI's fast paths (the
listing cache) can write files too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from zoo.errors import ZooError


def _umask() -> int:
    # /proc reads it without changing it; os.umask() can only be read by setting it (racy with threads)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` when the block ends, or never exists if it raises. Its mode is
    what a plain ``open`` would give (the umask's: mkstemp alone makes every file 0600, unreadable by a team
    sharing a cache). A failure (read-only or full disk) is one line, and no temporary file is left."""
    path = Path(os.path.realpath(path))  # through a symlink, as open() would: the link stays a link
    if path.exists() and not path.is_file():  # a device or a pipe (/dev/stdout) cannot be replaced, only written
        try:
            with open(path, "wb") as f:
                yield f
        except OSError as exc:
            raise ZooError(f"cannot write {path}: {exc.strerror or exc}") from None
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ZooError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` all at once or not at all (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None: JSON has neither, and Python's ``json``
    would write ``NaN`` / ``Infinity``, which no other JSON reader accepts."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


