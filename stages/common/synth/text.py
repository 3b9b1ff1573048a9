"""Labels on synthetic figures, drawn from a committed bitmap font (see build_glyphs.py).

Each string is laid out at the atlas's size and shrunk to the asked height by area averaging,
which anti-aliases it; nothing here depends on a library's text renderer.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .raster import dilate, resize_area

ATLAS = Path(__file__).with_name("glyphs.npz")
CAP_HEIGHT = 48                      # pixels from baseline to the top of a capital, in the atlas
CHARS = "".join(chr(c) for c in range(32, 127))


@dataclass(frozen=True)
class Font:
    bitmaps: np.ndarray     # bool (n_chars, H, W), each glyph drawn from x = 0 on one baseline
    advances: np.ndarray    # pen advance of each glyph, pixels
    baseline: int           # row of the baseline in every bitmap


@functools.cache
def font(bold: bool) -> Font:
    style = "bold" if bold else "regular"
    with np.load(ATLAS) as atlas:
        width = int(atlas[f"{style}_width"])
        bits = np.unpackbits(atlas[f"{style}_bits"], axis=-1, count=width).astype(bool)
        return Font(bits, atlas[f"{style}_advances"].astype(int), int(atlas[f"{style}_baseline"]))


def _indices(text: str) -> list[int]:
    return [CHARS.index(c) if c in CHARS else CHARS.index("?") for c in text]


def text_width(text: str, height_px: float, bold: bool = False) -> int:
    """Width in pixels of `text` drawn with capitals `height_px` tall."""
    f = font(bold)
    return round(sum(f.advances[i] for i in _indices(text)) * max(height_px, 5) / CAP_HEIGHT)


def text_alpha(text: str, height_px: float, bold: bool = False) -> tuple[np.ndarray, int]:
    """Coverage (0..1, float32) of `text` at `height_px` and the row of its baseline."""
    f = font(bold)
    indices = _indices(text)
    line = np.zeros((f.bitmaps.shape[1], sum(f.advances[i] for i in indices) + f.bitmaps.shape[2]), np.float32)
    x = 0
    for i in indices:
        line[:, x:x + f.bitmaps.shape[2]] = np.maximum(line[:, x:x + f.bitmaps.shape[2]], f.bitmaps[i])
        x += f.advances[i]
    scale = max(height_px, 5) / CAP_HEIGHT
    out_h, out_w = max(1, round(line.shape[0] * scale)), max(1, round(line.shape[1] * scale))
    return resize_area(line, out_h, out_w), round(f.baseline * scale)


def draw_text(image: np.ndarray, layout: np.ndarray, text: str, x: float, y: float, height_px: float,
              colour: tuple[int, int, int], bold: bool = False) -> None:
    """Blend `text` into `image` (RGB uint8) with its baseline's left end at (x, y); mark it in `layout`."""
    alpha, baseline = text_alpha(text, height_px, bold)
    top, left = round(y) - baseline, round(x)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + alpha.shape[0], image.shape[0]), min(left + alpha.shape[1], image.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left, None]
    window = image[y0:y1, x0:x1].astype(np.float32)
    blended = window * (1 - a) + np.asarray(colour, np.float32) * a
    image[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    # One pixel of margin around the ink, so nothing is pasted flush against a letter.
    layout[y0:y1, x0:x1] |= dilate(a[:, :, 0] > 0.05, 1).astype(layout.dtype)
