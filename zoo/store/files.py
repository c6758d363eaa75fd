"""Files that survive a crash and never clobber anything: atomic writes, guarded output folders, ``zoo run``'s
output names. No torch here, so the CLI's fast paths (the listing cache) can write files too.

Atomic writes go to a temporary file in the same folder, then ``os.replace``: a crash leaves the old file or
the new one, never half of one.

Output folders are never clobbered when they hold something else, and what is being produced is locked:

- A training run folder (``zoo train --out``) belongs to one run key: a folder holding another model's run,
  or files zoo did not write, is refused unless ``force``.
- A bench run folder (``zoo bench --out``) belongs to one request (suite, models, scales, test sets,
  metrics, order): the same command may write into it again (a rerun after a failure); anything else is
  refused unless ``force``, and then the bench's own outputs are removed first, so no stale picture or
  result survives.
- :func:`locked` holds an exclusive ``fcntl`` lock on a file while a training run or an evaluation is
  produced, so two processes sharing a cache (two benches, or Ray workers on NFS) never interleave one
  run: the second waits, then finds the result finished and uses it.

Which file ``zoo run`` writes for which input, such that no input and no other output is ever lost
(:func:`plan_outputs`):

- Outputs mirror the inputs' folders: each input is named by its path relative to the folder given on the
  command line (a file given alone: relative to its own folder); inputs from several folders are named
  relative to the folders' common parent. So ``a/x.png`` and ``b/x.png`` become ``OUT/a/x.png`` and
  ``OUT/b/x.png``.
- Inputs that would still share an output (``pic.png`` and ``pic.jpg``) keep their extension in the name:
  ``pic.png.png`` and ``pic.jpg.png``; the run says so.
- An output (or preview) that is an input file, under any name (a symlink or hard link to it), is refused:
  ``-o`` may be the input folder itself without an original ever being replaced.
- A dangling symlink among the inputs is named and skipped, as an unreadable image is.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from zoo.errors import ZooError

# Function-level imports: image decoding loads only for `zoo run`'s inputs; the rest of this module stays light
# (no torch).


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


@dataclass(frozen=True)
class InputFile:
    path: Path
    root: Path  # the folder it was found in (as given), or the file's own folder


@dataclass
class Planned:
    source: InputFile
    target: Path
    preview: Path | None
    refused: str | None = None  # why nothing may be written for it


class Collected(list):
    """The input files (a list of :class:`InputFile`), and in ``skipped`` the inputs left out, with reasons."""

    def __init__(self, files=(), skipped=()):
        super().__init__(files)
        self.skipped = list(skipped)


def collect_inputs(inputs: list[str]) -> Collected:
    """Files as given, folders searched recursively for images (hidden ones ignored), in sorted order."""
    from zoo.data.imageio import IMAGE_EXTENSIONS

    files: list[InputFile] = []
    skipped: list[str] = []
    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or f.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                if f.is_file():
                    files.append(InputFile(f, p))
                elif f.is_symlink() and not f.exists():
                    skipped.append(f"{f}: dangling symlink (to {os.readlink(f)})")
        elif p.is_file():
            files.append(InputFile(p, p.parent))
        elif p.is_symlink():
            skipped.append(f"{p}: dangling symlink (to {os.readlink(p)})")
        else:
            raise ZooError(f"input not found: {p}")
    if not files:
        detail = f" ({'; '.join(skipped[:3])})" if skipped else ""
        raise ZooError(f"no images found in {', '.join(inputs)}{detail}")
    return Collected(files, skipped)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: a link to an input is that input
    except OSError:
        return None
    return st.st_dev, st.st_ino


def plan_outputs(files: list[InputFile], out_dir: Path, preview: bool) -> tuple[list[Planned], list[str]]:
    """The output (and preview) path of every input, and the notes the user should read about them."""
    notes: list[str] = []
    unique: list[InputFile] = []
    seen: set = set()
    for f in files:  # the same file named twice (a folder and a file in it) is done once
        key = _identity(f.path) or os.path.abspath(f.path)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    roots = sorted({os.path.abspath(f.root) for f in unique})
    base = roots[0] if len(roots) == 1 else os.path.commonpath(roots)
    rels = [Path(os.path.relpath(os.path.abspath(f.path), base)) for f in unique]
    names = [r.with_suffix(".png") for r in rels]
    clash: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        clash.setdefault(n.as_posix().casefold(), []).append(i)  # a.PNG and a.png are one file on some disks
    for group in clash.values():
        if len(group) > 1:
            for i in group:
                names[i] = rels[i].with_name(rels[i].name + ".png")
            notes.append(f"{' and '.join(str(rels[i]) for i in group)} would share an output name: written as "
                         f"{' and '.join(str(names[i]) for i in group)}")
    if any(len(n.parts) > 1 for n in names):
        notes.append(f"outputs keep the inputs' folder structure under {out_dir} (relative to {base})")
    inputs = {_identity(f.path) for f in unique} - {None}
    plan, taken = [], set()
    for f, name in zip(unique, names):
        target = out_dir / name
        prev = target.with_name(f"{target.stem}_preview.png") if preview else None
        item = Planned(f, target, prev)
        for path in (target, prev):
            if path is None:
                continue
            if _identity(path) in inputs:
                item.refused = f"its output {path} is an input file, which is never replaced (choose another -o)"
            elif os.path.abspath(path).casefold() in taken:
                item.refused = f"its output {path} is another input's output"
        if item.refused is None:
            taken.update(os.path.abspath(p).casefold() for p in (target, prev) if p is not None)
        plan.append(item)
    return plan, notes
