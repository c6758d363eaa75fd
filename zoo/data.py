"""The image data layer: reading images, image folders, the built-in ``samples`` set, the training loader.

Conventions: RGB float tensors in [0, 1], ``(3, H, W)`` per image, ``(B, 3, H, W)`` per batch.

Reading (:func:`read_image`)
----------------------------
Every file is decoded with Pillow (``Image.open`` + ``load()``, so a truncated file fails here and is
never padded: ``LOAD_TRUNCATED_IMAGES`` is left off), the EXIF orientation is applied
(``ImageOps.exif_transpose``), and the pixels become RGB by these rules. (Plain 8-bit grey, RGB and RGBA
PNGs without EXIF are decoded by libspng instead when pyspng is installed: same pixels, twice as fast;
see :func:`_decode_png_fast`.)

- 8-bit RGB: as stored, divided by 255. No ICC colour management: values are taken as sRGB.
- greyscale ``1`` / ``L``: replicated to the three channels (``1`` gives 0 or 1).
- 16-bit greyscale ``I;16`` (``I;16B``/``L``/``N``): replicated, divided by **65535** (full precision kept).
- 32-bit integer ``I`` (how Pillow presents 16-bit greyscale from some formats): clipped to 0..65535,
  replicated, divided by 65535. Float ``F``: clipped to [0, 1], replicated.
- 16-bit RGB PNG: Pillow itself decodes these at 8 bits per channel (high byte), so they read as
  8-bit RGB (exact to 1/255).
- alpha (``RGBA``, ``LA``, ``PA``, palette transparency): **dropped**, the stored colour is kept.
  Why not composite over white (what viewers show)? The benchmark compares against the published
  numbers of SR tools, which all drop alpha (OpenCV ``IMREAD_COLOR``, BasicSR, MATLAB ``imread``), and
  compositing would invent pixel values the file does not hold and make every metric depend on an
  arbitrary background colour. The price: fully transparent pixels show whatever colour is stored.
- palette ``P``: the palette colours (transparency ignored as above).
- ``CMYK`` (and ``YCbCr``, ``LAB``, ``HSV``): Pillow's conversion to RGB (CMYK is the naive formula,
  no ICC profile; Adobe's inverted CMYK JPEGs are handled by Pillow's decoder).
- multi-frame files (GIF, TIFF): the first frame.

A file that cannot be read (missing, empty, not an image, truncated, corrupt, unsupported mode, decompression
bomb) raises :class:`BadImageError` (a :class:`~zoo.errors.ZooError`) naming the file and the reason.

Data sets
---------
A :class:`Dataset` is an ordered list of named images (:class:`ImageItem`: ``name``, ``path``, size,
``load()``) plus a content ``fingerprint()`` for cache keys and a seeded ``split()``.

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

Training loader (:func:`make_train_loader`)
-------------------------------------------
Batches are a pure function of ``(seed, batch index)``: sample ``j`` belongs to image visit
``v = j // patches_per_image``; visit ``v`` is position ``v % N`` of epoch ``v // N``, whose image order is
a permutation drawn from ``(seed, epoch)``; the crop and flips of a visit come from
``(seed, epoch, position)``. Each visit reads one file and takes ``patches_per_image`` crops from it.
Worker ``w`` of ``n`` builds batches ``start_step + w, + n, ...`` and the DataLoader hands them out round
robin, so the stream is the same with 0, 1 or 2 workers and resuming at ``start_step`` costs nothing.

Augmentation: SR patches get a random one of the 8 flips/rotations of the square (before the
downscale, so ``lr == downscale(hr)`` holds for every sample); colorizer patches only horizontal flips,
because vertical flips and rotations would put sky and ground in the wrong place and teach wrong colour
priors.

Memory is bounded: nothing holds the data set as float arrays; each worker keeps a LRU cache of decoded
images (uint8, or uint16 for 16-bit files; for the colorizer with ``scale > 1`` the uint8 colour LR
image, which is on the 1/255 grid) with a byte budget (``cache_mb``, default 256 MB *in total*, split
between the workers; an image larger than its worker's share is not cached). Memory therefore grows
with the data set only until the budget is reached and then stays flat: with 10 or 1000 images a worker
holds at most its share of the budget plus the image being cropped and the prefetched batches
(``2 x workers`` batches).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import itertools
import os
import threading
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from zoo.errors import ZooError

__all__ = [
    "IMAGE_EXTENSIONS",
    "SAMPLE_TEST",
    "SAMPLE_TRAIN",
    "BadImageError",
    "DataWarning",
    "Dataset",
    "ImageFolder",
    "ImageItem",
    "SampleImages",
    "ScanReport",
    "Skipped",
    "TrainLoader",
    "PatchStream",
    "make_train_loader",
    "read_image",
    "read_image_array",
    "resolve_dataset",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


class DataWarning(UserWarning):
    """A data file was skipped (bad, truncated, too small) or read with a caveat; the rest is used."""


class BadImageError(ZooError):
    """A file that cannot be used as an image. ``path`` and ``reason`` are attributes."""

    def __init__(self, path, reason: str):
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path is not None else reason)


# --------------------------------------------------------------------------------------------- reading
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def _to_rgb_array(img, path) -> np.ndarray:
    """Pixels of a loaded Pillow image as (H, W, 3): uint8, uint16 (16-bit grey) or float32 (mode F)."""

    mode = img.mode
    if mode == "RGB":
        arr = np.asarray(img, dtype=np.uint8)
    elif mode in _SIXTEEN_BIT:
        arr = np.asarray(img).astype(np.uint16)
    elif mode == "I":
        arr = np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16)
    elif mode == "F":
        arr = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        arr = np.nan_to_num(arr, nan=0.0)
    elif mode in ("P", "PA"):
        # via RGBA: Pillow warns when converting a palette with transparency straight to RGB.
        arr = np.asarray(img.convert("RGBA"), dtype=np.uint8)[..., :3]
    elif mode in ("1", "L"):
        arr = np.asarray(img.convert("L"), dtype=np.uint8)
    elif mode == "LA":
        arr = np.asarray(img, dtype=np.uint8)[..., 0]
    elif mode == "La":
        arr = np.asarray(img.convert("LA"), dtype=np.uint8)[..., 0]
    else:  # RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV, ...
        try:
            rgb = img.convert("RGB")
        except (ValueError, OSError) as exc:
            raise BadImageError(path, f"unsupported image mode {mode} ({exc})") from None
        arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise BadImageError(path, f"unsupported image mode {mode} (decoded to shape {arr.shape})")
    return np.ascontiguousarray(arr)


_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


def _decode(source, path, *, with_mode: bool = False):
    """Decode a path or file object fully; every failure becomes BadImageError(path, reason).

    ``with_mode=True`` returns ``(pixels, stored mode)``: the benchmarks score greyscale *files* on their
    raw grey values, as the published SR tables do."""
    with _pillow_errors(path):
        img = _open_oriented(source, path)
        try:
            arr = _to_rgb_array(img, path)
            return (arr, img.mode) if with_mode else arr
        finally:
            img.close()


def open_image(path):
    """``path`` as a decoded, EXIF-oriented Pillow image, for reading a big image in windows
    (:func:`image_window`) instead of as one array; failures as :func:`read_image`'s."""
    with _pillow_errors(path):
        return _open_oriented(path, path)


def image_window(img, box: tuple[int, int, int, int], path) -> np.ndarray:
    """Pixels (h, w, 3) of ``box`` (left, top, right, bottom) of an :func:`open_image`, by :func:`read_image`'s
    rules."""
    with _pillow_errors(path):
        return _to_rgb_array(img.crop(box), path)


def _open_oriented(source, path):
    from PIL import Image, ImageOps

    img = Image.open(source)
    try:
        img.load()  # decodes everything: a truncated file raises here
        try:
            ImageOps.exif_transpose(img, in_place=True)  # in place: no second copy of a big image
        except Exception as exc:  # a broken EXIF block should not cost the pixels
            warnings.warn(f"{path}: EXIF orientation unreadable, image used as stored ({exc})", DataWarning,
                          stacklevel=4)
    except BaseException:
        img.close()
        raise
    return img


@contextlib.contextmanager
def _pillow_errors(path):
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except BadImageError:
        raise
    except MemoryError:
        raise
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise BadImageError(path, f"cannot read file ({exc.strerror or exc})") from None
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image (Pillow cannot identify the format)") from None
    except Image.DecompressionBombError as exc:
        raise BadImageError(path, f"too many pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc) or type(exc).__name__
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise BadImageError(path, f"truncated ({text})") from None
        raise BadImageError(path, f"corrupt or unreadable ({text})") from None
    except Exception as exc:  # Pillow plugins raise many things on corrupt data
        raise BadImageError(path, f"corrupt or unreadable ({type(exc).__name__}: {exc})") from None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SPNG_COLOUR_TYPES = frozenset({0, 2, 6})  # grey, RGB, RGBA; palette and grey+alpha (pyspng refuses it): Pillow

try:  # optional (pip install 'zoo[fast]'): libspng decodes PNG about twice as fast as Pillow
    import pyspng as _spng
except ImportError:  # pragma: no cover - depends on the environment
    _spng = None


def _decode_png_fast(path) -> np.ndarray | None:
    """Pixels of a plain 8-bit PNG (grey, RGB, RGBA) by libspng, exactly as :func:`_decode` gives them;
    None for anything else, which then goes through Pillow: other formats, palette, grey+alpha and 16-bit
    PNGs, PNGs with an EXIF block (whose orientation Pillow applies), very large and unreadable files
    (Pillow's checks and error messages apply to them unchanged).

    Training reads every file once per visit of the first epoch, and decoding is most of that time.
    Measured on the classic SR training PNGs: 1.8 against 3.5 ms per 481x321 image, identical pixels.
    """
    if _spng is None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(33)  # signature and IHDR: other files are left unread, for Pillow to read once
            if (len(head) < 33 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR"
                    or head[24] != 8 or head[25] not in _SPNG_COLOUR_TYPES):
                return None
            data = head + f.read()
    except OSError:
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if b"eXIf" in data:
        return None
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        return None
    try:
        arr = _spng.load(data)
    except Exception:  # corrupt or truncated: Pillow says what is wrong
        return None
    if arr.dtype != np.uint8 or arr.shape[:2] != (height, width):
        return None
    if arr.ndim == 3:
        arr = arr[..., :3]  # RGBA: alpha dropped, not composited (as the Pillow path does)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def read_image_array(path) -> np.ndarray:
    """Decoded pixels (H, W, 3): uint8, uint16 for 16-bit greyscale, float32 for mode F (see module doc)."""
    fast = _decode_png_fast(path)
    return fast if fast is not None else _decode(path, path)


def _array_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 / uint16 / float32 -> (3, H, W) float32 in [0, 1] (always a fresh copy)."""
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
    t = torch.from_numpy(chw)
    if arr.dtype == np.uint8:
        return t.div_(255.0)
    if arr.dtype == np.uint16:
        return t.div_(65535.0)
    return t


def read_image(path) -> torch.Tensor:
    """Read one image as an RGB float tensor (3, H, W) in [0, 1]; raises :class:`BadImageError`."""
    return _array_to_tensor(read_image_array(path))


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
            arr, mode = _decode(io.BytesIO(data), path, with_mode=True)
            grey = mode in _GREY_MODES or mode in _SIXTEEN_BIT
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

    def array(self) -> np.ndarray:
        """The decoded pixels (H, W, 3), uint8 or uint16."""
        return read_image_array(self.path)


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

    def check(self) -> list[Skipped]:
        """The skipped files with their reasons (scans if needed)."""
        return list(self.scan().skipped)

    def items(self) -> list[ImageItem]:
        """The usable images, in order."""
        return list(self.scan().items)

    def names(self) -> list[str]:
        return [it.name for it in self.scan().items]

    def paths(self) -> list[Path]:
        return [it.path for it in self.scan().items]

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

    def read(self, key: int | str) -> torch.Tensor:
        return self[key].load()

    def split(self, val_fraction: float, seed: int = 0) -> tuple[list[Path], list[Path]]:
        """(train_paths, val_paths): the ``round(val_fraction * N)`` images (at least 1 and at most N - 1
        when 0 < fraction < 1 and N >= 2) with the smallest SHA-256 of ``"seed/key"``. Stable across runs
        and machines; adding files moves few others. Both lists keep the data set order."""
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ZooError(f"val_fraction must be in [0, 1), got {val_fraction}")
        items = self.scan().items
        n = len(items)
        n_val = int(round(val_fraction * n))
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        elif n < 2:
            n_val = 0
        ranked = sorted(range(n), key=lambda i: hashlib.sha256(f"{int(seed)}/{items[i].key}".encode()).digest())
        val_idx = set(ranked[:n_val])
        train = [it.path for i, it in enumerate(items) if i not in val_idx]
        val = [it.path for i, it in enumerate(items) if i in val_idx]
        return train, val

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


# ----------------------------------------------------------------------------------- training data
class _ByteLRU:
    """LRU cache of decoded arrays, bounded by total ``nbytes``."""

    def __init__(self, budget: int):
        self.budget = int(budget)
        self.data: OrderedDict[str, np.ndarray] = OrderedDict()
        self.nbytes = 0
        self.hits = self.misses = 0

    def get(self, key: str, load) -> np.ndarray:
        arr = self.data.get(key)
        if arr is not None:
            self.data.move_to_end(key)
            self.hits += 1
            return arr
        self.misses += 1
        arr = load()
        if arr.nbytes <= self.budget:
            while self.data and self.nbytes + arr.nbytes > self.budget:
                _, old = self.data.popitem(last=False)
                self.nbytes -= old.nbytes
            self.data[key] = arr
            self.nbytes += arr.nbytes
        return arr


def _seed64(seed: int) -> int:
    return int(seed) % (1 << 64)


@dataclass(frozen=True)
class _Crop:
    y: int
    x: int
    hflip: bool
    vflip: bool
    rot: bool


class PatchStream(torch.utils.data.IterableDataset):
    """The batches of :func:`make_train_loader` (already collated; use with ``batch_size=None``)."""

    def __init__(self, items: Sequence[ImageItem], *, task: str, patch_size: int, scale: int, batch_size: int,
                 seed: int, patches_per_image: int = 4, cache_bytes: int = 256 << 20, start_step: int = 0,
                 steps: int | None = None, uint8: bool = False):
        super().__init__()
        self.uint8 = bool(uint8)
        self.items = [(it.key, str(it.path), it.width, it.height) for it in items]  # light and picklable
        self.task, self.patch, self.scale = task, int(patch_size), int(scale)
        self.batch_size, self.seed = int(batch_size), _seed64(seed)
        self.ppi = int(patches_per_image)
        self.cache_bytes = int(cache_bytes)
        self.start_step, self.steps = int(start_step), steps
        self.cache: _ByteLRU | None = None
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()

    # deterministic plan ------------------------------------------------------------------------
    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, epoch, 0x9E37]).permutation(len(self.items))
            self._perms[epoch] = perm
            while len(self._perms) > 2:
                self._perms.popitem(last=False)
        return perm

    def _visit(self, v: int) -> tuple[int, list[_Crop]]:
        """Image index and the ``ppi`` crops of visit ``v``."""
        n = len(self.items)
        epoch, pos = divmod(v, n)
        idx = int(self._perm(epoch)[pos])
        _, _, w, h = self.items[idx]
        s, p = self.scale, self.patch
        if self.task == "sr":
            span_h, span_w, c = h - h % s, w - w % s, p * s
        else:
            span_h, span_w, c = h // s, w // s, p
        rng = np.random.default_rng([self.seed, epoch, pos, 0xC0])
        crops = []
        for _ in range(self.ppi):
            y = int(rng.integers(0, span_h - c + 1))
            x = int(rng.integers(0, span_w - c + 1))
            hf, vf, rot = (bool(b) for b in rng.random(3) < 0.5)
            if self.task != "sr":
                vf = rot = False  # colour priors need "up" to stay up: horizontal flips only
            crops.append(_Crop(y, x, hf, vf, rot))
        return idx, crops

    # pixels ------------------------------------------------------------------------------------
    def _array(self, idx: int) -> np.ndarray:
        if self.cache is None:
            self.cache = _ByteLRU(self.cache_bytes)
        _, path, _, _ = self.items[idx]
        return self.cache.get(path, lambda: read_image_array(path))

    def _lr_array(self, idx: int) -> np.ndarray:
        """The colour LR image ``downscale(modcrop(hr, s), s)`` as uint8 (it is on the 1/255 grid), cached."""
        if self.cache is None:
            self.cache = _ByteLRU(self.cache_bytes)
        _, path, _, _ = self.items[idx]

        def load() -> np.ndarray:
            from zoo.degrade import modcrop
            from zoo.resize import downscale, imresize

            arr = read_image_array(path)
            if arr.dtype == np.uint8:  # MATLAB's uint8 resize: the same values as below, minus the conversions
                pixels = arr if arr.flags.writeable else arr.copy()  # torch wants writable memory
                hr = modcrop(torch.from_numpy(pixels).permute(2, 0, 1), self.scale)
                h, w = hr.shape[-2:]
                lr = imresize(hr, scale=1.0 / self.scale, size=(h // self.scale, w // self.scale))
                return lr.permute(1, 2, 0).contiguous().numpy()
            lr = downscale(modcrop(_array_to_tensor(arr), self.scale)[None], self.scale)[0]
            return torch.round(lr.clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()

        return self.cache.get(f"{path}@x{self.scale}", load)

    @staticmethod
    def _augment(a: np.ndarray, c: _Crop) -> np.ndarray:
        """Flip/rotate an (h, w, 3) view (numpy views: no copy, no torch thread overhead per sample)."""
        if c.hflip:
            a = a[:, ::-1]
        if c.vflip:
            a = a[::-1]
        if c.rot:
            a = a.swapaxes(0, 1)  # with the flips: all 8 symmetries of the square
        return a

    def batch(self, k: int) -> dict[str, torch.Tensor]:
        """Batch number ``k`` of the stream (a pure function of seed and k)."""
        from zoo.resize import downscale

        b, ppi, s, p = self.batch_size, self.ppi, self.scale, self.patch
        samples = range(k * b, (k + 1) * b)
        c = p * s if self.task == "sr" else p
        views = []
        for v, group in itertools.groupby(samples, key=lambda j: j // ppi):
            idx, crops = self._visit(v)
            arr = self._array(idx) if self.task == "sr" or s == 1 else self._lr_array(idx)
            for j in group:
                cr = crops[j % ppi]
                views.append(self._augment(arr[cr.y:cr.y + c, cr.x:cr.x + c], cr).transpose(2, 0, 1))
        # uint8 batches when asked for and every crop is 8-bit: the training device divides by 255 itself
        as_uint8 = self.uint8 and all(v.dtype == np.uint8 for v in views)
        x = np.empty((b, 3, c, c), dtype=np.uint8 if as_uint8 else np.float32)
        for i, view in enumerate(views):
            if as_uint8:
                x[i] = view
            else:
                div = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(view.dtype, 1.0)
                np.divide(view, np.float32(div), out=x[i], dtype=np.float32)  # == read_image's values
        if as_uint8:
            pixels = torch.from_numpy(x)
            if self.task != "sr":
                return {"rgb": pixels}
            lr = downscale(pixels.float().div_(255.0), s).clamp_(0.0, 1.0)
            return {"lr": torch.round(lr * 255.0).to(torch.uint8), "hr": pixels}  # lr: on the uint8 grid
        hr = torch.from_numpy(x)
        if self.task == "sr":
            lr = downscale(hr, s).clamp_(0.0, 1.0)
            lr = torch.round(lr * 255.0).div_(255.0)  # on the uint8 grid (downscale already is; idempotent)
            return {"lr": lr.contiguous(), "hr": hr}
        return {"rgb": hr}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:  # each worker process: its share of the byte budget
            share = self.cache_bytes // max(1, nw)
            if self.cache is None or self.cache.budget != share:
                self.cache = _ByteLRU(share)
        stop = None if self.steps is None else self.start_step + int(self.steps)
        ks = itertools.count(self.start_step + wid, nw) if stop is None else range(self.start_step + wid, stop, nw)
        for k in ks:
            yield self.batch(k)


class TrainLoader:
    """Iterable of training batches (dicts); ``len()`` is ``steps`` when given. Re-iterating restarts."""

    def __init__(self, stream: PatchStream, workers: int, pin_memory: bool):
        self.stream = stream
        self.workers = workers
        self.steps = stream.steps
        kwargs = {}
        if workers > 0:
            kwargs = {"persistent_workers": True, "prefetch_factor": 2}
        self.loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers,
                                                  pin_memory=pin_memory, **kwargs)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return iter(self.loader)

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("this loader is endless (no steps given)")
        return int(self.steps)


_WARNED_SMALL: set[tuple[str, int]] = set()


def make_train_loader(dataset, *, task: str, patch_size: int, scale: int, batch_size: int, seed: int,
                      workers: int | None = None, steps: int | None = None, start_step: int = 0,
                      patches_per_image: int = 4, cache_mb: float = 256,
                      pin_memory: bool | None = None, uint8: bool = False) -> TrainLoader:
    """Endless (or ``steps``-long) stream of random training patches from ``dataset``.

    ``task='sr'``: ``{"lr": (B,3,p,p), "hr": (B,3,p*s,p*s)}``; a random crop of the modcropped HR, a random
    one of the 8 flips/rotations, ``lr = zoo.resize.downscale(hr, s)`` on the uint8 grid.
    ``task='colorizer'``: ``{"rgb": (B,3,p,p)}``; random crops (horizontal flips only) of the colour LR
    image ``downscale(modcrop(hr, s), s)`` (the image itself when ``s == 1``).
    ``start_step`` skips that many batches (resume). ``workers`` defaults to ``min(2, cpu count)``;
    0 reads in-process. The batches depend on ``seed`` only, never on ``workers``. ``uint8=True``: batches of
    8-bit images come as uint8 tensors (the same values times 255; a quarter of the bytes to copy to a GPU).
    """
    if task not in ("sr", "colorizer"):
        raise ZooError(f"unknown task '{task}' (sr, colorizer)")
    for label, v in (("patch_size", patch_size), ("scale", scale), ("batch_size", batch_size),
                     ("patches_per_image", patches_per_image)):
        if int(v) != v or int(v) < 1:
            raise ZooError(f"{label} must be a positive integer, got {v!r}")
    if steps is not None and int(steps) < 0:
        raise ZooError(f"steps must be >= 0, got {steps}")
    if int(start_step) < 0:
        raise ZooError(f"start_step must be >= 0, got {start_step}")
    dataset = resolve_dataset(dataset)
    need = int(patch_size) * int(scale)
    usable = []
    for it in dataset.items():
        if min(it.width, it.height) >= need:
            usable.append(it)
            continue
        mark = (str(it.path), need)
        if mark not in _WARNED_SMALL:
            _WARNED_SMALL.add(mark)
            warnings.warn(f"skipping {it.path}: {it.width}x{it.height} is smaller than the {need}x{need} "
                          f"crop of task '{task}' (patch_size {patch_size} x scale {scale})", DataWarning,
                          stacklevel=2)
    if not usable:
        biggest = max(dataset.items(), key=lambda it: min(it.width, it.height))
        raise ZooError(f"no image in {dataset.name} is large enough for task '{task}': need at least "
                       f"{need}x{need} pixels (patch_size {patch_size} x scale {scale}); the largest is "
                       f"{biggest.width}x{biggest.height}")
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = max(0, int(workers))
    if steps is not None:
        workers = min(workers, int(steps))
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    stream = PatchStream(usable, task=task, patch_size=int(patch_size), scale=int(scale),
                         batch_size=int(batch_size), seed=seed, patches_per_image=int(patches_per_image),
                         cache_bytes=int(cache_mb * (1 << 20)), start_step=int(start_step),
                         steps=None if steps is None else int(steps), uint8=uint8)
    return TrainLoader(stream, workers, bool(pin_memory))
