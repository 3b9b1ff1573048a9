"""What a rendered figure is: its pixels, where its text and page are, and where its pictures sit."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .raster import to_uint8
from .text import draw_text

BLACK, WHITE = (0, 0, 0), (255, 255, 255)


@dataclass(frozen=True)
class Box:
    top: int
    left: int
    height: int
    width: int

    def window(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def shifted(self, dy: int, dx: int) -> Box:
        return Box(self.top + dy, self.left + dx, self.height, self.width)


@dataclass(frozen=True)
class Figure:
    """A rendered figure. Forgers work inside its pictures: `boxes` (the whole image for a bare
    micrograph, each strip or panel of a composite), `lanes` of its blots, its `panels`."""
    image: np.ndarray   # RGB uint8 (H, W, 3)
    layout: np.ndarray  # uint8 {0, 1} (H, W): page, text, marks, scale bars; not picture content
    boxes: tuple[Box, ...] = field(default=())
    lanes: tuple[Box, ...] = field(default=())
    panels: tuple[Box, ...] = field(default=())


def picture(image: np.ndarray, layout: np.ndarray | None = None, **structure) -> Figure:
    """A figure from a float (0..1) grey or RGB picture; `layout` marks page area, if any.

    Without boxes the whole image is one picture.
    """
    pixels = to_uint8(image)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    structure.setdefault("boxes", (Box(0, 0, *pixels.shape[:2]),))
    return Figure(pixels, np.zeros(pixels.shape[:2], np.uint8) if layout is None else layout, **structure)


def label(figure: Figure, text: str, x: float, y: float, height_px: float,
          colour: tuple[int, int, int], bold: bool = False) -> None:
    """Draw `text` with its baseline's left end at (x, y), and mark it as layout."""
    draw_text(figure.image, figure.layout, text, x, y, height_px, colour, bold)


def scale_bar(figure: Figure, units: tuple[str, ...], rng: np.random.Generator) -> None:
    """A scale bar in the bottom-right corner, white on dark pictures and black on light ones."""
    h, w = figure.layout.shape
    if min(h, w) < 64:
        return
    length, thick, margin = int(w * rng.uniform(0.12, 0.25)), max(2, h // 90), max(4, w // 28)
    x1, y1 = w - margin, h - margin
    x0 = x1 - length
    colour = WHITE if figure.image[y1 - h // 8:y1, x0:x1].mean() < 128 else BLACK
    figure.image[y1 - thick:y1 + 1, x0:x1 + 1] = colour
    figure.layout[max(y1 - thick - 1, 0):y1 + 2, max(x0 - 1, 0):x1 + 2] = 1
    if rng.random() < 0.6:
        label(figure, str(rng.choice(units)), x0, y1 - thick - 4, max(7, h // 30), colour)
