"""``zoo run``: colorize and upscale a user's own photographs with trained models, in bounded memory.

For each image (treated as grayscale: its CIELAB lightness is the input):
1. the colorizer runs on L, shrunk so that its longer side is at most ``color_size`` (colour is smooth, and
   colorizers need the whole picture's context rather than tiles); its ab is upsampled back (bilinear) and
   joined to the image's own full-resolution L, the standard trick that keeps every detail of the input;
2. the SR model runs over the colour image in overlapping tiles of ``tile`` input pixels; each tile's
   margin (``overlap``) is cropped before stitching, so seams fall where both neighbours saw context.

Memory is bounded by ``color_size`` and ``tile``, not by the image size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import ZooError


@dataclass
class RunOptions:
    color_size: int = 512
    tile: int = 256
    overlap: int = 16
    preview: bool = False
    overwrite: bool = False


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for images, in sorted order."""
    from zoo.data import IMAGE_EXTENSIONS

    out: list[Path] = []
    for spec in inputs:
        p = Path(spec)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                              and not any(part.startswith(".") for part in f.relative_to(p).parts)))
        elif p.is_file():
            out.append(p)
        else:
            raise ZooError(f"input not found: {p}")
    if not out:
        raise ZooError(f"no images found in {', '.join(inputs)}")
    return out


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


@torch.inference_mode()
def upscale_tiled(rgb: torch.Tensor, sr: torch.nn.Module, tile: int, overlap: int) -> torch.Tensor:
    """Run ``sr`` over (1, 3, H, W) in tiles of ``tile`` pixels with ``overlap`` pixels of context."""
    s = sr.scale
    _, c, h, w = rgb.shape
    if h <= tile and w <= tile:
        return sr(rgb)
    out = torch.empty((1, c, h * s, w * s), dtype=rgb.dtype, device=rgb.device)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            # The tile plus its context, clipped to the image.
            ya, xa = max(0, y0 - overlap), max(0, x0 - overlap)
            yb, xb = min(h, y1 + overlap), min(w, x1 + overlap)
            up = sr(rgb[:, :, ya:yb, xa:xb])
            oy, ox = (y0 - ya) * s, (x0 - xa) * s
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = up[:, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
    return out


def _save(t: torch.Tensor, path: Path) -> None:
    from PIL import Image

    arr = (t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(arr).save(tmp)
    tmp.replace(path)


def _preview(inp: torch.Tensor, out: torch.Tensor, path: Path, height: int = 512) -> None:
    """Input (left) and output (right) side by side at the same height."""
    from PIL import Image

    def pil(t):
        arr = (t[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        img = Image.fromarray(arr)
        k = height / img.height
        return img.resize((max(1, round(img.width * k)), height), Image.LANCZOS)

    a, b = pil(inp), pil(out)
    canvas = Image.new("RGB", (a.width + b.width + 8, height), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 8, 0))
    canvas.save(path)


@dataclass
class RunSummary:
    written: list[Path]
    skipped: list[str]


def run_pipeline(paths: list[Path], out_dir: Path, *, colorizer, sr, device: torch.device,
                 options: RunOptions, log=print) -> RunSummary:
    """Colorize (``colorizer`` may be None) and upscale (``sr`` may be None) every image in ``paths``."""
    from zoo.color import gray_to_rgb, join_lab, split_lab
    from zoo.data import BadImageError, DataWarning, read_image

    if colorizer is None and sr is None:
        raise ZooError("give a colorizer, an SR model or both")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped = [], []
    for path in paths:
        target = out_dir / f"{path.stem}.png"
        if target.exists() and not options.overwrite:
            skipped.append(f"{path}: {target} exists (use --overwrite)")
            log(f"skip {path.name}: {target} exists (use --overwrite)")
            continue
        try:
            img = read_image(path).unsqueeze(0).to(device)
        except BadImageError as exc:
            warnings.warn(str(exc), DataWarning)
            skipped.append(str(exc))
            continue
        l, _ = split_lab(img)
        gray = gray_to_rgb(l)
        colour = join_lab(l, colorize(l, colorizer, options.color_size)).clamp(0, 1) if colorizer else img
        result = upscale_tiled(colour, sr, options.tile, options.overlap).clamp(0, 1) if sr else colour
        _save(result, target)
        written.append(target)
        if options.preview:
            _preview(gray, result, out_dir / f"{path.stem}_preview.png")
        log(f"{path.name} -> {target.name} ({img.shape[-1]}x{img.shape[-2]} -> {result.shape[-1]}x{result.shape[-2]})")
    return RunSummary(written, skipped)
