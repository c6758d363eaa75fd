"""Data sets: image folders and the built-in ``samples``, as ordered lists of named, checked images.

A :class:`Dataset` is an ordered list of named images (:class:`ImageItem`: ``name``, ``path``, size,
``load()``) plus a content ``fingerprint()`` for cache keys. Files are read by :mod:`zoo.data.imageio`'s rules.

- :class:`ImageFolder`: ``png, jpg/jpeg, bmp, tif/tiff, webp`` files (any case) found recursively
  (hidden files and folders are ignored), sorted by relative POSIX path. ``scan()`` decodes every file
  once and skips bad ones (unreadable, truncated, not an image, smaller than ``min_size`` on its
  shorter side) with a :class:`DataWarning` naming the file and the reason. The per-file result (size,
  SHA-256, decode verdict) is cached for the process on ``(file size, mtime)``, so scanning or
  fingerprinting the same folder again only costs a ``stat`` per file.
- ``samples``: photographs shipped inside installed packages, read in place (nothing is copied):

  ===================== ===================================== =====
  name                  source                                split
  ===================== ===================================== =====
  astronaut             scikit-image ``skimage/data``         train
  coffee                scikit-image                          train
  rocket                scikit-image                          train
  motorcycle_left       scikit-image                          train
  motorcycle_right      scikit-image                          train
  hubble_deep_field     scikit-image                          train
  grace_hopper          matplotlib ``mpl-data/sample_data``   train
  chelsea               scikit-image                          test
  china                 scikit-learn ``datasets/images``      test
  flower                scikit-learn                          test
  ===================== ===================================== =====

  The test images were chosen to differ in colour and content from each other and from the training
  images: *chelsea* (a cat: neutral browns and fine fur texture, PNG), *china* (a landscape: blue sky and
  water, green foliage, a red-gold temple), *flower* (a saturated orange dahlia on a teal background).
  The two motorcycle views are a stereo pair of the same scene, so they stay together on the train
  side; the training side keeps the portraits (skin tones, flags), a warm still life, night sky and the
  deep field. *china* and *flower* are JPEGs (the only scikit-learn samples), so their HR carries mild
  JPEG artefacts; the SR test numbers are therefore for the samples only, not for Set5-style data.

  All ten files are in the installed wheels (scikit-image 0.26 ships them, including
  ``hubble_deep_field.jpg``, ``rocket.jpg`` and the motorcycles, so no pooch download is needed).
  Nothing is fetched over the network: a file missing from another package version is left out with a
  :class:`DataWarning` and listed in ``SampleImages.missing`` with the reason. Left out on purpose from
  scikit-image's folder: greyscale or synthetic images (camera, coins, moon, text, page, horse, checker
  boards, binary blobs, phantom, logo, color), microscopy and medical images (cell, ihc, retina,
  microaneurysms), textures (brick, grass, gravel) and non-photographs (.npy/.npz/.xml/.gif/.tif).
  The photographs are read through their package directory (``importlib.util.find_spec``, the same file
  ``matplotlib.cbook.get_sample_data('grace_hopper.jpg')`` and ``sklearn.datasets.load_sample_image``
  return) so that listing the set imports none of these packages.

:func:`resolve_dataset` turns ``"samples"``, ``"samples:train"``, ``"samples:test"`` or a directory into
a :class:`Dataset`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.data.imageio import IMAGE_EXTENSIONS, BadImageError, DataWarning, decode_stored, read_image
from zoo.errors import ZooError

__all__ = ["SAMPLE_TEST", "SAMPLE_TRAIN", "Dataset", "ImageFolder", "ImageItem", "SampleImages", "ScanReport",
           "Skipped", "resolve_dataset"]

if TYPE_CHECKING:
    import torch


# --------------------------------------------------------------------------------------- file probes
@dataclass(frozen=True)
class _Probe:
    sha256: str | None
    width: int | None
    height: int | None
    reason: str | None  # None: usable
    grey: bool = False  # stored as a greyscale image (mode 1, L, I;16, ...)


_PROBES: dict[str, tuple[tuple[int, int], _Probe]] = {}
_PROBES_LOCK = threading.Lock()


def _probe(path: Path) -> _Probe:
    """Hash and fully decode ``path`` once; cached on (size, mtime)."""
    try:
        st = path.stat()
    except OSError as exc:
        return _Probe(None, None, None, f"cannot read file ({exc.strerror or exc})")
    stamp = (st.st_size, st.st_mtime_ns)
    key = str(path)
    with _PROBES_LOCK:
        hit = _PROBES.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _Probe(None, None, None, f"cannot read file ({exc.strerror or exc})")
    sha = hashlib.sha256(data).hexdigest()
    if not data:
        probe = _Probe(sha, None, None, "empty file (0 bytes)")
    else:
        try:
            arr, grey = decode_stored(io.BytesIO(data), path)
            probe = _Probe(sha, int(arr.shape[1]), int(arr.shape[0]), None, grey)
        except BadImageError as exc:
            probe = _Probe(sha, None, None, exc.reason)
    with _PROBES_LOCK:
        _PROBES[key] = (stamp, probe)
    return probe


# ------------------------------------------------------------------------------------------ data sets
@dataclass(frozen=True)
class ImageItem:
    """One usable image: stable ``name``, ``key`` (relative POSIX path, used in the fingerprint), size."""

    name: str
    key: str
    path: Path
    width: int
    height: int
    sha256: str = field(repr=False, default="")
    grey: bool = False  # a greyscale file (its pixel metrics use the raw grey values, see zoo.metrics.pixel)

    def load(self) -> torch.Tensor:
        """The image as (3, H, W) float in [0, 1]."""
        return read_image(self.path)


@dataclass(frozen=True)
class Skipped:
    key: str
    path: Path
    reason: str


@dataclass(frozen=True)
class ScanReport:
    items: list[ImageItem]
    skipped: list[Skipped]


def _names_for(keys: Sequence[str]) -> list[str]:
    """Name = key without extension; keys whose stem collides (a.png, a.jpg) keep their extension."""
    stems = [k.rsplit(".", 1)[0] if "." in k.rsplit("/", 1)[-1] else k for k in keys]
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    return [s if counts[s] == 1 else k for s, k in zip(stems, keys)]


class Dataset:
    """An ordered list of named images. Subclasses give ``_candidates()`` -> [(key, path)], sorted."""

    name: str = "dataset"
    min_size: int = 0

    def __init__(self) -> None:
        self._report: ScanReport | None = None
        self._lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # subclasses
    def _candidates(self) -> list[tuple[str, Path]]:
        raise NotImplementedError

    def _where(self) -> str:
        return self.name

    # scanning
    def scan(self) -> ScanReport:
        """Decode every file once (cached), warn about and skip bad ones; raise if none is usable."""
        with self._lock:
            if self._report is not None:
                return self._report
            cands = self._candidates()
            if len(cands) > 3:
                with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                    probes = list(pool.map(lambda kp: _probe(kp[1]), cands))
            else:
                probes = [_probe(p) for _, p in cands]
            good: list[tuple[str, Path, _Probe]] = []
            skipped: list[Skipped] = []
            for (key, path), probe in zip(cands, probes):
                reason = probe.reason
                if reason is None and self.min_size and min(probe.width, probe.height) < self.min_size:
                    reason = f"too small: {probe.width}x{probe.height} < min_size {self.min_size}"
                if reason is None:
                    good.append((key, path, probe))
                else:
                    skipped.append(Skipped(key, path, reason))
                    warnings.warn(f"skipping {path}: {reason}", DataWarning, stacklevel=3)
            if not good:
                if not cands:
                    detail = f"no file with an image extension ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                else:
                    detail = "; ".join(f"{s.key}: {s.reason}" for s in skipped[:3])
                    if len(skipped) > 3:
                        detail += "; ..."
                raise ZooError(f"no usable image in {self._where()}: {len(skipped)} files skipped ({detail})")
            names = _names_for([k for k, _, _ in good])
            items = [ImageItem(n, k, p, pr.width, pr.height, pr.sha256, pr.grey) for n, (k, p, pr) in zip(names, good)]
            self._report = ScanReport(items, skipped)
            return self._report

    def items(self) -> list[ImageItem]:
        """The usable images, in order."""
        return list(self.scan().items)

    def names(self) -> list[str]:
        return [it.name for it in self.scan().items]

    def __len__(self) -> int:
        return len(self.scan().items)

    def __iter__(self) -> Iterator[ImageItem]:
        return iter(self.scan().items)

    def __getitem__(self, key: int | str) -> ImageItem:
        items = self.scan().items
        if isinstance(key, str):
            for it in items:
                if it.name == key:
                    return it
            raise KeyError(f"no image named {key!r} in {self.name}")
        return items[key]

    def fingerprint(self) -> str:
        """SHA-256 over (relative path, file SHA-256) of the usable files: a cache key for the content."""
        h = hashlib.sha256(b"zoo-data-v1\n")
        for it in self.scan().items:
            h.update(f"{it.key}\0{it.sha256}\n".encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _is_hidden(part: str) -> bool:
    return part.startswith(".")


class ImageFolder(Dataset):
    """The images under ``root`` (recursive, sorted by relative POSIX path), minus bad ones."""

    def __init__(self, root, *, min_size: int = 0, name: str | None = None):
        super().__init__()
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise ZooError(f"data folder {self.root} does not exist")
        if not self.root.is_dir():
            raise ZooError(f"data path {self.root} is not a directory")
        self.min_size = int(min_size)
        self.name = name or str(root)

    def _where(self) -> str:
        return str(self.root)

    def _candidates(self) -> list[tuple[str, Path]]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
            for fn in filenames:
                if _is_hidden(fn) or os.path.splitext(fn)[1].lower() not in IMAGE_EXTENSIONS:
                    continue
                path = Path(dirpath) / fn
                out.append((path.relative_to(self.root).as_posix(), path))
        out.sort(key=lambda kp: kp[0])
        return out


# ---------------------------------------------------------------------------------------- samples
# name -> (package, path inside the package directory)
_SAMPLE_SOURCES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
SAMPLE_TEST: tuple[str, ...] = ("chelsea", "china", "flower")
SAMPLE_TRAIN: tuple[str, ...] = tuple(n for n in _SAMPLE_SOURCES if n not in SAMPLE_TEST)


def _package_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _locate_sample(name: str) -> tuple[Path | None, str | None]:
    package, rel = _SAMPLE_SOURCES[name]
    base = _package_dir(package)
    if base is None:
        return None, f"package {package} is not installed"
    path = base / rel
    if not path.is_file():
        return None, f"{rel} is not shipped with the installed {package} (it would need a download)"
    return path, None


class SampleImages(Dataset):
    """The built-in photographs (see the module docstring), ``part`` = ``all``, ``train`` or ``test``."""

    def __init__(self, part: str = "all"):
        super().__init__()
        if part not in ("all", "train", "test"):
            raise ZooError(f"unknown samples part '{part}' (samples, samples:train, samples:test)")
        self.part = part
        self.name = "samples" if part == "all" else f"samples:{part}"
        wanted = {"all": tuple(_SAMPLE_SOURCES), "train": SAMPLE_TRAIN, "test": SAMPLE_TEST}[part]
        self.missing: dict[str, str] = {}
        self._found: list[tuple[str, Path]] = []
        for n in wanted:
            path, reason = _locate_sample(n)
            if path is None:
                self.missing[n] = reason
                warnings.warn(f"sample image '{n}' left out: {reason}", DataWarning, stacklevel=2)
            else:
                self._found.append((f"{n}{path.suffix.lower()}", path))
        self._found.sort(key=lambda kp: kp[0])

    def _candidates(self) -> list[tuple[str, Path]]:
        return list(self._found)


def resolve_dataset(spec, *, min_size: int = 0) -> Dataset:
    """``"samples"``, ``"samples:train"``, ``"samples:test"``, a directory, or a Dataset -> Dataset."""
    if isinstance(spec, Dataset):
        return spec
    if spec is None:
        raise ZooError("no data set given (a directory, or samples / samples:train / samples:test)")
    text = str(spec)
    if isinstance(spec, str) and (text == "samples" or text.startswith("samples:")):
        part = text.partition(":")[2] or "all"
        if part not in ("all", "train", "test"):
            raise ZooError(f"unknown data set '{text}' (samples, samples:train, samples:test or a directory)")
        if Path(text).is_dir():  # a real folder that happens to be called samples wins
            return ImageFolder(text, min_size=min_size)
        return SampleImages(part)
    path = Path(text).expanduser()
    if not path.exists():
        raise ZooError(f"data set '{text}' is neither a directory nor samples / samples:train / samples:test")
    return ImageFolder(path, min_size=min_size, name=text)

