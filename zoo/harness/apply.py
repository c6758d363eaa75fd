"""``zoo run``: colorize and upscale a user's own photographs with trained models, in bounded memory.

For each image (treated as grayscale: its CIELAB lightness is the input):
1. the colorizer runs on L, shrunk so that its longer side is at most ``color_size`` (colour is smooth, and
   colorizers need the whole picture's context rather than tiles); its ab is upsampled back (bilinear) and
   joined to the image's own full-resolution L, the standard trick that keeps every detail of the input;
2. the SR model runs over the colour image in overlapping tiles of ``tile`` input pixels; each tile's
   margin (``overlap``) is cropped before stitching, so seams fall where both neighbours saw context.

Memory is bounded by ``color_size`` and ``tile``, not by the image size: the image is decoded once (as
bytes), and everything after it streams in bands of ``tile`` rows: the shrunk L for the colorizer and the
previews are area averages accumulated band by band, the upsampled colour is computed per band, and each
band of SR tiles goes straight into the PNG file (:mod:`zoo.data.pngstream`).

Files are never lost: no output ever replaces an input file (whatever ``--overwrite`` says), inputs whose
outputs would share a name are both written (see :mod:`zoo.store.files`), existing outputs and previews are
kept unless ``overwrite``, and unreadable inputs (dangling symlinks included) are skipped and named.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zoo.data.color import gray_to_rgb, join_lab, split_lab
from zoo.data.imageio import BadImageError, DataWarning, array_to_tensor, image_window, open_image
from zoo.data.pngstream import PngWriter
from zoo.errors import ZooError
from zoo.store.files import InputFile, atomic_open, atomic_write_bytes, collect_inputs, plan_outputs  # noqa: F401  (collect_inputs re-exported)

PREVIEW_HEIGHT = 512


@dataclass
class RunOptions:
    color_size: int = 512
    tile: int = 256
    overlap: int = 16
    preview: bool = False
    overwrite: bool = False


@torch.inference_mode()
def colorize(l: torch.Tensor, colorizer: torch.nn.Module, color_size: int) -> torch.Tensor:
    """ab for L (1, 1, H, W): computed at most ``color_size`` on the longer side, upsampled to (H, W)."""
    h, w = l.shape[-2:]
    k = min(1.0, color_size / max(h, w))
    if k < 1.0:
        small = F.interpolate(l, size=(max(1, round(h * k)), max(1, round(w * k))), mode="area")
        ab = colorizer(small)
        return F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
    return colorizer(l)


def _tiles(h: int, w: int, tile: int, overlap: int):
    """Row-major tiles ``(y0, y1, x0, x1, context)``; ``context`` is the tile grown by ``overlap``, clipped."""
    for y0 in range(0, h, tile):
        y1 = min(y0 + tile, h)
        for x0 in range(0, w, tile):
            x1 = min(x0 + tile, w)
            yield y0, y1, x0, x1, (max(0, y0 - overlap), min(h, y1 + overlap), max(0, x0 - overlap),
                                   min(w, x1 + overlap))


def _crop(up: torch.Tensor, dy: int, dx: int, rows: int, cols: int, s: int) -> torch.Tensor:
    return up[:, :, dy * s:(dy + rows) * s, dx * s:(dx + cols) * s]


# -- streaming pieces ------------------------------------------------------------------------------------

_CHUNK_ROWS = 32  # rows converted to floats at a time where a whole band would not need to be


class AreaReducer:
    """The area average (``F.interpolate(mode="area")``) of a (C, H, W) image to ``size`` (at most the image's
    own), fed in bands of full rows, top to bottom: columns are averaged per band, rows once at the end,
    so only (H, w) floats are kept."""

    def __init__(self, channels: int, height: int, width: int, size: tuple[int, int], device):
        self.h, self.w = min(size[0], height), min(size[1], width)
        self.height = height
        self.cols = torch.empty((1, channels, height, self.w), device=device)
        self.filled = 0

    def add(self, band: torch.Tensor) -> None:
        """``band``: (1, C, n, W) floats, or (n, W, C) uint8 rows (taken as value / 255)."""
        if isinstance(band, np.ndarray):
            for i in range(0, band.shape[0], _CHUNK_ROWS):
                chunk = torch.from_numpy(band[i:i + _CHUNK_ROWS]).to(self.cols.device)
                self.add(chunk.permute(2, 0, 1).unsqueeze(0).float().div_(255.0))
            return
        n = band.shape[-2]
        self.cols[:, :, self.filled:self.filled + n] = F.adaptive_avg_pool2d(band.float(), (n, self.w))
        self.filled += n

    def result(self) -> torch.Tensor:
        assert self.filled == self.height, (self.filled, self.height)
        return F.adaptive_avg_pool2d(self.cols, (self.h, self.w))


def _linear_taps(lo: int, hi: int, small: int, full: int, device):
    """Source indices and weights of positions ``lo .. hi`` of a 1-D linear resize from ``small`` to ``full``
    samples (half-pixel centres, as ``F.interpolate(..., align_corners=False)``)."""
    pos = torch.arange(lo, hi, dtype=torch.float32, device=device)
    src = ((pos + 0.5) * (small / full) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=small - 1)
    return i0, (i0 + 1).clamp(max=small - 1), src - i0


def _bilinear_window(ab: torch.Tensor, height: int, width: int, y0: int, y1: int, x0: int, x1: int):
    """The window ``[y0:y1, x0:x1]`` of ``F.interpolate(ab, (height, width), mode="bilinear")``, computed from
    the small ``ab`` without making the full-size result (equal to it up to float rounding)."""
    r0, r1, ry = _linear_taps(y0, y1, ab.shape[-2], height, ab.device)
    c0, c1, cx = _linear_taps(x0, x1, ab.shape[-1], width, ab.device)
    top, left = int(r0[0]), int(c0[0])  # the few source pixels the window reads
    ab = ab[:, :, top:int(r1[-1]) + 1, left:int(c1[-1]) + 1]
    r0, r1, c0, c1 = r0 - top, r1 - top, c0 - left, c1 - left
    ry = ry.view(1, 1, -1, 1)
    rows = ab.index_select(2, r0) * (1 - ry) + ab.index_select(2, r1) * ry
    return rows.index_select(3, c0) * (1 - cx) + rows.index_select(3, c1) * cx


def _pixels(img, path: Path, y0: int, y1: int, x0: int, x1: int, device) -> torch.Tensor:
    """A window of the decoded image as RGB (1, 3, n, m) floats in [0, 1], by ``zoo.data.imageio.read_image``'s rules
    (converted window by window: the image is never one float array, nor one uint8 array beside Pillow's)."""
    return array_to_tensor(image_window(img, (x0, y0, x1, y1), path)).unsqueeze(0).to(device)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    """(1, 3, n, m) in [0, 1] -> (n, m, 3) uint8, rounded as every saved output is."""
    return t[0].clamp(0, 1).mul_(255.0).add_(0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _preview_size(height: int, width: int) -> tuple[int, int]:
    return PREVIEW_HEIGHT, max(1, round(width * PREVIEW_HEIGHT / height))


def _write_preview(gray: torch.Tensor, out: torch.Tensor, path: Path) -> None:
    """Input (left) and output (right) side by side at the same height."""
    def pil(t):
        img = Image.fromarray(_to_uint8(t))
        size = _preview_size(img.height, img.width)[::-1]
        return img if img.size == size else img.resize(size, Image.LANCZOS)

    a, b = pil(gray), pil(out)
    canvas = Image.new("RGB", (a.width + b.width + 8, PREVIEW_HEIGHT), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 8, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


@torch.inference_mode()
def _process(img, path: Path, target: Path, preview: Path | None, *, colorizer, sr, device,
             options: RunOptions) -> tuple[int, int]:
    """Stream one decoded image (a Pillow image, :func:`zoo.data.imageio.open_image`) through the pipeline into
    ``target`` (and ``preview``), one row of tiles at a time. Returns the output's (width, height)."""
    w, h = img.size
    s = sr.scale if sr is not None else 1
    overlap = options.overlap if sr is not None else 0
    gray_preview = AreaReducer(1, h, w, _preview_size(h, w), device) if preview else None
    out_preview = AreaReducer(3, h * s, w * s, _preview_size(h * s, w * s), device) if preview else None
    ab_small = None
    if colorizer is not None or gray_preview is not None:  # one pass over L: the colorizer's input, the preview
        k = min(1.0, options.color_size / max(h, w))
        small = AreaReducer(1, h, w, (max(1, round(h * k)), max(1, round(w * k))), device) if colorizer else None
        for y0 in range(0, h, _CHUNK_ROWS):
            l, _ = split_lab(_pixels(img, path, y0, min(h, y0 + _CHUNK_ROWS), 0, w, device))
            for reducer in (small, gray_preview):
                if reducer is not None:
                    reducer.add(l)
        if colorizer is not None:
            ab_small = colorizer(small.result())

    def colour(ya, yb, xa, xb):
        rgb = _pixels(img, path, ya, yb, xa, xb, device)
        if ab_small is None:
            return rgb
        l, _ = split_lab(rgb)
        return join_lab(l, _bilinear_window(ab_small, h, w, ya, yb, xa, xb)).clamp(0, 1)

    with atomic_open(target) as f:
        png = PngWriter(f, w * s, h * s)
        rows = None
        for y0, y1, x0, x1, (ya, yb, xa, xb) in _tiles(h, w, options.tile, overlap):
            if x0 == 0:
                rows = np.empty(((y1 - y0) * s, w * s, 3), dtype=np.uint8)
            out = colour(ya, yb, xa, xb)
            if sr is not None:
                out = _crop(sr(out), y0 - ya, x0 - xa, y1 - y0, x1 - x0, s)
            rows[:, x0 * s:x1 * s] = _to_uint8(out)
            if x1 == w:  # a row of tiles is complete: into the file, and into the preview
                png.write(rows)
                if out_preview is not None:
                    out_preview.add(rows)
        png.close()
    if preview is not None:
        _write_preview(gray_to_rgb(gray_preview.result()), out_preview.result(), preview)
    return w * s, h * s


@dataclass
class RunSummary:
    written: list[Path]
    skipped: list[str]


def run_pipeline(paths: list[Path | InputFile], out_dir: Path, *, colorizer, sr, device: torch.device,
                 options: RunOptions, log=print, skipped: list[str] | None = None) -> RunSummary:
    """Colorize (``colorizer`` may be None) and upscale (``sr`` may be None) every image in ``paths``.

    ``skipped``: inputs already left out while collecting them (e.g. dangling symlinks), reported again.
    """
    if colorizer is None and sr is None:
        raise ZooError("give a colorizer, an SR model or both")
    files = [p if isinstance(p, InputFile) else InputFile(Path(p), Path(p).parent) for p in paths]
    plan, notes = plan_outputs(files, Path(out_dir), preview=options.preview)
    for note in notes:
        log(f"note: {note}")
    written, skipped = [], list(skipped or [])
    for item in plan:
        path, target, preview = item.source.path, item.target, item.preview
        if item.refused:
            skipped.append(f"{path}: {item.refused}")
            log(f"skip {path}: {item.refused}")
            continue
        if os.path.lexists(target) and not options.overwrite:  # a symlink there counts, even a dangling one
            skipped.append(f"{path}: {target} exists (use --overwrite)")
            log(f"skip {path.name}: {target} exists (use --overwrite)")
            continue
        if preview is not None and os.path.lexists(preview) and not options.overwrite:
            log(f"{path.name}: {preview} exists, kept (use --overwrite to replace it)")
            preview = None
        try:
            img = open_image(path)
        except BadImageError as exc:
            warnings.warn(str(exc), DataWarning, stacklevel=2)
            skipped.append(str(exc))
            continue
        try:
            size = _process(img, path, target, preview, colorizer=colorizer, sr=sr, device=device, options=options)
        finally:
            img.close()
        written.append(target)
        log(f"{path.name} -> {target.relative_to(out_dir) if target.is_relative_to(out_dir) else target} "
            f"({img.width}x{img.height} -> {size[0]}x{size[1]})")
    return RunSummary(written, skipped)
