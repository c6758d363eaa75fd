"""Reading image files: every file becomes RGB pixels by one set of rules.

Conventions: RGB float tensors in [0, 1], ``(3, H, W)`` per image.

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
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import ZooError

try:  # optional (pip install 'zoo[fast]'): libspng decodes PNG about twice as fast as Pillow
    import pyspng as _spng
except ImportError:  # pragma: no cover - depends on the environment
    _spng = None

__all__ = ["IMAGE_EXTENSIONS", "BadImageError", "DataWarning", "array_to_tensor", "decode_stored", "image_window",
           "open_image", "read_image", "read_image_array"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


class DataWarning(UserWarning):
    """A data file was skipped (bad, truncated, too small) or read with a caveat; the rest is used."""


class BadImageError(ZooError):
    """A file that cannot be used as an image. ``path`` and ``reason`` are attributes."""

    def __init__(self, path, reason: str):
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path is not None else reason)


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
    ``with_mode=True`` returns ``(pixels, stored mode)``."""
    with _pillow_errors(path):
        img = _open_oriented(source, path)
        try:
            arr = _to_rgb_array(img, path)
            return (arr, img.mode) if with_mode else arr
        finally:
            img.close()


def decode_stored(source, path) -> tuple[np.ndarray, bool]:
    """The pixels of a path or file object (as :func:`read_image_array`, always through Pillow) and whether
    the file stores a greyscale image: the benchmarks score greyscale *files* on their raw grey values, as
    the published SR tables do."""
    arr, mode = _decode(source, path, with_mode=True)
    return arr, mode in _GREY_MODES or mode in _SIXTEEN_BIT


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


def array_to_tensor(arr: np.ndarray) -> torch.Tensor:
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
    return array_to_tensor(read_image_array(path))

