"""Western blots and gels: bare crops, or labelled figures of stacked blot strips."""
from __future__ import annotations

import numpy as np

from .canvas import BLACK, Box, Figure, label, picture
from .raster import exp, field, gaussian, grain, power
from .text import text_width

PROTEINS = ("GAPDH", "b-actin", "Tubulin", "p-ERK", "ERK1/2", "p-Akt", "Akt", "p53", "Bax", "Bcl-2",
            "LC3B", "Caspase-3", "HSP70", "Histone H3", "Vinculin", "c-Myc", "PARP", "Cyclin D1")
LANE_SHARE = 0.85                   # of the lane pitch that a lane's box spans; the rest is the gap between lanes


def render(h: int, w: int, rng: np.random.Generator) -> Figure:
    """A bare blot or gel crop, or a labelled figure of blot strips where there is room for labels."""
    if min(h, w) < 96 or rng.random() < 0.4:
        return bare_membrane(h, w, rng)
    return _blot_figure(h, w, rng)


def bare_membrane(h: int, w: int, rng: np.random.Generator, gel: bool | None = None) -> Figure:
    gel = rng.random() < 0.35 if gel is None else gel
    image, lanes = membrane(h, w, int(rng.integers(4, 13)), int(rng.integers(2, 6)), gel, rng)
    return picture(image, lanes=lanes)


def membrane(h: int, w: int, n_lanes: int, n_rows: int, gel: bool,
             rng: np.random.Generator) -> tuple[np.ndarray, tuple[Box, ...]]:
    """A western blot film (dark bands on a light membrane) or a stained gel (light on dark), 0..1,
    and the box of every lane."""
    n_lanes = max(2, min(n_lanes, w // 12))
    lane_w = w / n_lanes
    centres = (np.arange(n_lanes) + 0.5) * lane_w + rng.normal(0, 0.03 * lane_w, n_lanes)
    ladder = gel and rng.random() < 0.6
    darkness = np.zeros((h, w), np.float32)
    smile = rng.uniform(-0.3, 0.6)      # one gel runs faster in the middle or at the edges, for all rows
    row_ys = (np.arange(n_rows) + rng.uniform(0.3, 0.7, n_rows)) / n_rows * h
    for row_y in row_ys:
        thick = float(np.clip(lane_w * rng.uniform(0.1, 0.25), 2.0, h / (3.0 * n_rows)))
        levels = _lane_levels(n_lanes, rng)
        for lane, (cx, level) in enumerate(zip(centres, levels)):
            if ladder and lane == 0:
                continue
            _band(darkness, cx, row_y + rng.normal(0, 0.3), lane_w * rng.uniform(0.3, 0.42),
                  thick * rng.uniform(0.85, 1.15), smile * thick, level, rng)
    if ladder:
        for y in h * (0.06 + 0.88 * (1 - np.geomspace(1, 0.1, int(rng.integers(6, 11))))):
            _band(darkness, centres[0], y, lane_w * 0.35, 2.0, 0.0, rng.uniform(0.4, 0.8), rng)
    density = 1.0 - exp(-darkness * rng.uniform(1.2, 2.6))     # film saturates on strong bands
    density = gaussian(density, rng.uniform(0.5, 1.2))
    shading = 0.03 * field(h, w, max(h, w) / 2, rng)
    if gel:
        image = 0.07 + shading + density * rng.uniform(0.6, 0.9)
    else:
        image = (rng.uniform(0.82, 0.95) + shading) * (1.0 - 0.92 * density)
    lanes = tuple(_lane_box(cx, lane_w, h, w) for lane, cx in enumerate(centres) if not (ladder and lane == 0))
    return image + 0.012 * grain(h, w, 0.7, rng), lanes


def _lane_box(cx: float, lane_w: float, h: int, w: int) -> Box:
    left = int(np.clip(round(cx - LANE_SHARE * lane_w / 2), 0, w - 1))
    right = int(np.clip(round(cx + LANE_SHARE * lane_w / 2), left + 1, w))
    return Box(0, left, h, right - left)


def _lane_levels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Band strength per lane: an even loading control, a dose trend, or treatment-dependent levels."""
    pattern = rng.integers(3)
    if pattern == 0:
        levels = np.full(n, rng.uniform(0.6, 1.0)) * (1 + 0.08 * rng.standard_normal(n))
    elif pattern == 1:
        levels = np.linspace(rng.uniform(0.05, 0.3), 1.0, n)[:: rng.choice((-1, 1))] + 0.05 * rng.standard_normal(n)
    else:
        levels = rng.uniform(0.1, 1.0, n) * (rng.random(n) > 0.1)
    return np.clip(levels, 0, 1.2)


def _band(darkness: np.ndarray, cx: float, cy: float, half_w: float, thick: float, smile: float,
          strength: float, rng: np.random.Generator) -> None:
    """Add one band: a smudge with soft sides, curved by `smile`, trailing a faint smear below."""
    h, w = darkness.shape
    reach_y = int(3 * thick + abs(smile)) + 2
    y0, y1 = max(0, int(cy) - reach_y), min(h, int(cy + reach_y + 2 * thick) + 1)
    x0, x1 = max(0, int(cx - 1.4 * half_w)), min(w, int(cx + 1.4 * half_w) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u = (xx - cx) / half_w
    dy = (yy - (cy + smile * u ** 2 + rng.normal(0, 0.1) * thick * u)) / (thick / 2)
    profile = exp(-0.5 * dy ** 2) + rng.uniform(0, 0.25) * exp(-np.maximum(dy, 0) / 3) * (dy > 0)
    across = exp(-power(np.abs(u), rng.uniform(3, 8)))
    texture = 1 + 0.2 * grain(y1 - y0, x1 - x0, 1.0, rng)
    darkness[y0:y1, x0:x1] += strength * profile * across * texture


def _blot_figure(h: int, w: int, rng: np.random.Generator) -> Figure:
    """Strips of blots stacked on a white page, protein names on the left, +/- lane labels on top."""
    text_h = max(7, min(h, w) // 26)
    header_rows = int(rng.integers(0, 3))
    header_h = int(text_h * (1.6 * header_rows + 0.4)) + 4
    n_strips = int(np.clip(rng.integers(2, 6), 1, (h - header_h) // (4 * text_h)))
    proteins = [str(p) for p in rng.choice(PROTEINS, n_strips, replace=False)]
    label_w = max(text_width(p, text_h) for p in proteins) + 8
    kda_w = text_width("100 kDa", text_h) + 8 if rng.random() < 0.4 else 4
    strip_w = w - label_w - kda_w
    if strip_w < 0.5 * w:
        return bare_membrane(h, w, rng, gel=False)
    gap = max(3, text_h // 2)
    strip_h = (h - header_h - gap * (n_strips + 1)) // n_strips
    fewest_lanes = max(3, strip_w // 45)  # lanes stay narrower than about 45 px
    n_lanes = int(rng.integers(fewest_lanes, max(fewest_lanes, 10) + 1))
    page, layout = np.ones((h, w), np.float32), np.ones((h, w), np.uint8)
    tops = [header_h + gap + i * (strip_h + gap) for i in range(n_strips)]
    boxes, lanes = [], []
    for top in tops:
        strip = Box(top, label_w, strip_h, strip_w)
        page[strip.window()], strip_lanes = membrane(strip_h, strip_w, n_lanes, 1, False, rng)
        layout[strip.window()] = 0
        boxes.append(strip)
        lanes += [lane.shifted(top, label_w) for lane in strip_lanes]
    figure = picture(page, layout, boxes=tuple(boxes), lanes=tuple(lanes))
    for top, protein in zip(tops, proteins):
        baseline = top + (strip_h + text_h) / 2
        label(figure, protein, label_w - text_width(protein, text_h) - 5, baseline, text_h, BLACK)
        if kda_w > 4:
            weight = f"{rng.choice((15, 25, 37, 50, 75, 100))} kDa"
            label(figure, weight, label_w + strip_w + 4, baseline, text_h * 0.85, BLACK)
    _lane_header(figure, label_w, strip_w, n_lanes, header_rows, text_h, rng)
    return figure


def _lane_header(figure: Figure, left: int, width: int, n_lanes: int, n_rows: int, text_h: int,
                 rng: np.random.Generator) -> None:
    """Rows of +/- marks over the lanes, each row named on the left."""
    lane_w = width / n_lanes
    for row in range(n_rows):
        y = (row + 1) * 1.6 * text_h
        name = str(rng.choice(("siRNA", "Drug", "EGF", "LPS", "Dox")))
        label(figure, name, left - text_width(name, text_h) - 5, y, text_h, BLACK)
        for lane in range(n_lanes):
            mark = "+" if rng.random() < 0.5 else "-"
            label(figure, mark, left + (lane + 0.5) * lane_w - text_width(mark, text_h) / 2, y, text_h, BLACK)
