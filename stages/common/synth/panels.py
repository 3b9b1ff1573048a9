"""Multi-panel figures: 2 to 4 lettered panels of one experiment, or split channels beside their merge."""
from __future__ import annotations

import functools
import math

import numpy as np

from . import blot, em, fluorescence, histology
from .canvas import BLACK, Box, Figure, label, picture
from .text import text_width

# Panels of tissue are procedural: two crops of the one bundled photograph would show overlapping
# fields of one specimen as two conditions, which is the very duplication a screen looks for.
PANEL_KINDS = {"fluorescence": fluorescence.render, "histology": functools.partial(histology.render, photograph=False),
               "em": em.render, "blot": blot.render}
CONDITIONS = ("Control", "Vehicle", "siCtrl", "siRNA", "WT", "KO", "DMSO", "Drug", "0 h", "24 h", "48 h", "Mock")
CHANNEL_NAMES = ("DAPI", "GFP", "Merge")


def render(h: int, w: int, rng: np.random.Generator) -> Figure:
    """2 to 4 panels on white, lettered A, B, C..., with captions over some of them."""
    letter_h = max(7, min(h, w) // 22)
    gap, head = max(3, min(h, w) // 40), letter_h + 6
    rows, cols = _panel_grid(h, w, gap, head, rng)
    panel_h, panel_w = (h - gap - rows * (head + gap)) // rows, (w - gap * (cols + 1)) // cols
    image, layout = np.ones((h, w), np.float32), np.ones((h, w), np.uint8)
    page = picture(image, layout, boxes=())
    captions = rng.random() < 0.5
    panels, lanes = [], []
    for index, (content, caption) in enumerate(_panel_contents(rows, cols, panel_h, panel_w, rng)):
        row, col = divmod(index, cols)
        box = Box(gap + row * (head + panel_h + gap) + head, gap + col * (panel_w + gap), panel_h, panel_w)
        page.image[box.window()] = content.image
        page.layout[box.window()] = content.layout
        panels.append(box)
        lanes += [lane.shifted(box.top, box.left) for lane in content.lanes]
        label(page, "ABCDEFGH"[index], box.left, box.top - 4, letter_h, BLACK, bold=True)
        if captions and caption:
            caption_h = letter_h * 0.8
            x = box.left + (panel_w - text_width(caption, caption_h)) / 2
            label(page, caption, max(x, box.left + 1.6 * letter_h), box.top - 4, caption_h, BLACK)
    return Figure(page.image, page.layout, boxes=tuple(panels), lanes=tuple(lanes), panels=tuple(panels))


def _panel_grid(h: int, w: int, gap: int, head: int, rng: np.random.Generator) -> tuple[int, int]:
    """The grid of 2 to 4 panels whose panels come closest to square, with some randomness."""
    best, best_score = (1, 2), math.inf
    for rows, cols in ((1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (1, 4), (4, 1)):
        panel_h, panel_w = (h - gap - rows * (head + gap)) / rows, (w - gap * (cols + 1)) / cols
        if min(panel_h, panel_w) < 24:
            continue
        score = abs(math.log(panel_w / panel_h)) + rng.uniform(0, 0.6)
        if score < best_score:
            best, best_score = (rows, cols), score
    return best


def _panel_contents(rows: int, cols: int, panel_h: int, panel_w: int,
                    rng: np.random.Generator) -> list[tuple[Figure, str]]:
    """(figure, caption) per panel: conditions of one experiment, or split channels beside their merge.

    A split-channel row repeats the same cells in its merge panel; real papers do this legitimately,
    so a detector must not call it a copy.
    """
    kinds = tuple(PANEL_KINDS)
    same_kind = rng.random() < 0.6
    kind = str(rng.choice(kinds))
    if same_kind and kind == "fluorescence" and cols == 3 and rng.random() < 0.6:
        return [item for _ in range(rows) for item in _split_channels(panel_h, panel_w, rng)]
    conditions = [str(c) for c in rng.permutation(CONDITIONS)]
    return [(PANEL_KINDS[kind if same_kind else str(rng.choice(kinds))](panel_h, panel_w, rng),
             conditions[index % len(conditions)]) for index in range(rows * cols)]


def _split_channels(h: int, w: int, rng: np.random.Generator) -> list[tuple[Figure, str]]:
    first, second = fluorescence.channels(h, w, rng, min_channels=2)[:2]
    return [(picture(fluorescence.merge(layers)), name)
            for layers, name in zip(([first], [second], [first, second]), CHANNEL_NAMES)]
