"""Which file ``zoo run`` writes for which input, such that no input and no other output is ever lost.

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

import os
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError


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
    from zoo.imageio import IMAGE_EXTENSIONS

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
