"""Output folders: never clobber one that holds something else, and lock what is being produced.

- A training run folder (``zoo train --out``) belongs to one run key: a folder holding another model's run,
  or files zoo did not write, is refused unless ``force``.
- A bench run folder (``zoo bench --out``) belongs to one request (suite, models, scales, test sets,
  metrics, order): the same command may write into it again (a rerun after a failure); anything else is
  refused unless ``force``, and then the bench's own outputs are removed first, so no stale picture or
  result survives.
- :func:`locked` holds an exclusive ``fcntl`` lock on a file while a training run or an evaluation is
  produced, so two processes sharing a cache (two benches, or Ray workers on NFS) never interleave one
  run: the second waits, then finds the result finished and uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from zoo.errors import ZooError

TRAIN_FILES = ("model.safetensors", "model.json", "state.pt", "log.jsonl", "val.jsonl", ".lock")
BENCH_FILES = ("run.json", "results.jsonl", "results.csv", "leaderboard.md", "curves.png", "errors.log",
               "samples")


def _ours(name: str, owned: tuple[str, ...]) -> bool:
    # Hidden files are nobody's work: our lock and the temporary files of an interrupted atomic write
    # (.model.json.x1y2.tmp), NFS's .nfsXXXX of a deleted open file, a desktop's .DS_Store.
    return name in owned or name.startswith(".")


def claim_train_dir(out_dir: Path, key: str, force: bool = False) -> None:
    """Refuse ``out_dir`` for run ``key`` when it holds another run or foreign files (unless ``force``)."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ZooError(f"--out {out_dir} is a file, not a folder")
    foreign = sorted(p.name for p in out_dir.iterdir() if not _ours(p.name, TRAIN_FILES))
    other = None
    side = out_dir / "model.json"
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
            if meta.get("run_key") != key:
                other = f"the run of model '{meta.get('model')}' (key {meta.get('run_key')}, {meta.get('steps')} steps)"
        except (OSError, ValueError, AttributeError):
            other = "a model.json that is not this run's"
    if not (foreign or other):
        return
    if not force:
        what = other or f"files zoo did not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})"
        raise ZooError(f"--out {out_dir} holds {what}; choose another folder, or pass --force to train this "
                       f"run there (replacing zoo's files in it)")
    if other:  # start clean: no half of the other run may survive beside this one
        for name in TRAIN_FILES[:-1]:
            with contextlib.suppress(FileNotFoundError):
                (out_dir / name).unlink()


def claim_bench_dir(run_dir: Path, request: dict, force: bool = False) -> None:
    """Make ``run_dir`` ready for a bench of ``request``: refuse a non-empty folder holding anything else
    (unless ``force``), clear the bench's own outputs of an earlier run, check the folder is writable."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ZooError(f"--out {run_dir} is a file, not a folder")
    entries = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) if run_dir.is_dir() else []
    if entries:
        # ours: a run of the same request, or what a bench that stopped before writing run.json left
        same = "run.json" not in entries and all(name in BENCH_FILES for name in entries)
        try:
            same = same or json.loads((run_dir / "run.json").read_text()).get("request") == request
        except (OSError, ValueError, AttributeError):
            pass
        if not same and not force:
            what = ("another bench run" if "run.json" in entries
                    else f"other files ({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''})")
            raise ZooError(f"--out {run_dir} is not empty: it holds {what}; choose a new folder, or pass --force "
                           f"to replace the bench results in it")
        for name in BENCH_FILES:
            path = run_dir / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
            except OSError as exc:
                raise ZooError(f"cannot clear {path}: {exc.strerror or exc}") from None
    ensure_writable(run_dir)


def ensure_writable(folder: Path, create: bool = True) -> None:
    """Create ``folder`` and prove a file can be written in it, or one line saying why not. With
    ``create=False`` a missing folder is checked at its nearest existing parent, and nothing is created."""
    folder = Path(folder)
    if not create and not folder.exists():
        parent = next((p for p in folder.absolute().parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise ZooError(f"cannot write in {folder}: {parent or folder} is not a writable folder")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".zoo-probe-"):
            pass
    except OSError as exc:
        raise ZooError(f"cannot write in {folder}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def locked(lock_path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if needed); ``on_wait()`` is called once if another
    process holds it, before waiting for it. Without ``fcntl`` (Windows) this is a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
