"""Pictures people look at first: comparison grids of a pipeline's stages (training curves: zoo.boards.curves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from zoo.store.files import atomic_write_bytes

PANEL = 256  # longest side of each panel, in pixels
PAD = 8
LABEL_H = 22


def _to_pil(img: torch.Tensor, size: tuple[int, int], resample=Image.NEAREST) -> Image.Image:
    """(1 or 3, H, W) or (1, C, H, W) in [0, 1] -> RGB PIL image of ``size`` (W, H); nearest neighbour by
    default, so that pixels stay visible as pixels."""
    if img.dim() == 4:
        img = img[0]
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    arr = (img.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr).resize(size, resample)


def save_png(path: Path, img: torch.Tensor) -> Path:
    """(1, 3, H, W) or (3, H, W) RGB in [0, 1] as an 8-bit PNG at its own size (the pixels metrics score)."""
    import io


    if img.dim() == 4:
        img = img[0]
    arr = (img.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _font(size: int = 14):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


CROP = 64  # side of the detail crop, in ground-truth pixels; shown magnified MAG times, nearest neighbour
MAG = 3


def detail_box(truth: torch.Tensor, side: int = CROP) -> tuple[int, int, int]:
    """``(top, left, side)`` of the square of ``truth`` with the most edges: where SR detail shows."""
    img = truth[0] if truth.dim() == 4 else truth
    g = img.float().mean(0)
    h, w = g.shape
    side = max(1, min(side, h, w))
    edges = (g[1:, :-1] - g[:-1, :-1]).abs() + (g[:-1, 1:] - g[:-1, :-1]).abs()
    if edges.numel() == 0:
        return 0, 0, side
    energy = torch.nn.functional.avg_pool2d(edges[None, None], side - 1 if side > 1 else 1, stride=max(1, side // 4))
    idx = int(energy.flatten().argmax())
    cols = energy.shape[-1]
    stride = max(1, side // 4)
    return (idx // cols) * stride, (idx % cols) * stride, side


def comparison_grid(path: Path, *, title: str, panels: list[tuple[str, torch.Tensor]], truth: torch.Tensor) -> Path:
    """Each stage side by side: its full view (fitted to PANEL, antialiased) over a crop of the same region at
    native pixels, magnified MAG times without smoothing, as SR papers show detail. Panels may be at LR or HR
    size: the crop, chosen on ``truth``, is mapped to each panel's own pixels, so LR pixels show as blocks."""
    th, tw = truth.shape[-2:]
    top, left, side = detail_box(truth)
    k = PANEL / max(th, tw)
    full = (max(1, round(tw * k)), max(1, round(th * k)))
    zoom = side * MAG
    width = len(panels) * max(full[0], zoom) + (len(panels) + 1) * PAD
    height = full[1] + zoom + 3 * LABEL_H + 3 * PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, 4), title, fill=(0, 0, 0), font=_font(15))
    for i, (label, img) in enumerate(panels):
        x = PAD + i * (max(full[0], zoom) + PAD)
        ih, iw = img.shape[-2:]
        f = iw / tw  # this panel's pixels per ground-truth pixel
        draw.text((x, LABEL_H + 2), label, fill=(60, 60, 60), font=_font(12))
        canvas.paste(_to_pil(img, full, Image.LANCZOS), (x, 2 * LABEL_H + PAD // 2))
        y0 = 2 * LABEL_H + PAD // 2
        draw.rectangle([x + left * k, y0 + top * k, x + (left + side) * k, y0 + (top + side) * k],
                       outline=(220, 30, 30))
        c_top, c_left, c_side = int(top * f), int(left * f), max(1, round(side * f))
        crop = img[..., c_top:c_top + c_side, c_left:c_left + c_side]
        y1 = y0 + full[1] + LABEL_H
        caption = f"detail, LR pixels x{MAG * side / c_side:g}" if c_side != side else f"detail, pixels x{MAG}"
        draw.text((x, y1 - LABEL_H + 4), caption, fill=(60, 60, 60), font=_font(11))
        canvas.paste(_to_pil(crop, (zoom, zoom)), (x, y1))
    return write_png(path, lambda f: canvas.save(f, format="PNG", optimize=True))


def write_png(path: Path, write) -> Path:
    # in memory, then one atomic write: a full disk or a kill never leaves half a picture
    import io


    buf = io.BytesIO()
    write(buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
