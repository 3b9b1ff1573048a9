"""Transmission electron micrographs: vesicles with dark membranes, dense particles, rods."""
from __future__ import annotations

import math

import numpy as np

from .canvas import WHITE, Box, Figure, label, picture, scale_bar
from .raster import add, blob_distance, exp, field, gaussian, grain, soft
from .text import text_width


def render(h: int, w: int, rng: np.random.Generator) -> Figure:
    """Grey, grainy TEM with a scale bar, sometimes above the microscope's black data band."""
    scale = min(h, w)
    image = rng.uniform(0.5, 0.7) + 0.06 * field(h, w, scale / 2.5, rng) + 0.03 * field(h, w, scale / 12, rng)
    image = image.astype(np.float32)
    present = [s for s in ("vesicles", "particles", "rods") if rng.random() < 0.5] or ["vesicles"]
    for species in present:
        _draw_species(image, species, rng)
    band = max(12, h // 14) if h >= 128 and rng.random() < 0.35 else 0
    figure = picture(gaussian(image + 0.04 * grain(h, w, 0.6, rng), 0.5), boxes=(Box(0, 0, h - band, w),))
    if band:
        figure.image[h - band:] = 0
        figure.layout[h - band:] = 1
        text = f"HV=80.0kV  Direct Mag: {rng.choice((8000, 20000, 40000, 60000))}x"
        if text_width(text, band * 0.45) > w - 8:
            text = text.split("  ")[1]
        label(figure, text, 4, h - band / 2 + band / 5, band * 0.45, WHITE)
    scale_bar(Figure(figure.image[: h - band], figure.layout[: h - band]), ("100 nm", "200 nm", "500 nm", "1 um"), rng)
    return figure


def _draw_species(image: np.ndarray, species: str, rng: np.random.Generator) -> None:
    h, w = image.shape
    scale = min(h, w)
    if species == "vesicles":
        radius, cover = scale * rng.uniform(0.03, 0.08), rng.uniform(0.08, 0.25)
    elif species == "particles":
        radius, cover = max(1.5, scale * rng.uniform(0.008, 0.025)), rng.uniform(0.02, 0.08)
    else:
        radius, cover = max(1.5, scale * rng.uniform(0.01, 0.025)), rng.uniform(0.03, 0.1)
    n = int(cover * h * w / (math.pi * radius ** 2 * (4 if species == "rods" else 1))) + 2
    for cy, cx in rng.uniform((0, 0), (h, w), size=(n, 2)):
        r = radius * rng.uniform(0.7, 1.3)
        if species == "vesicles":
            d = blob_distance(r, r * rng.uniform(0.8, 1.0), rng.uniform(0, math.pi), 0.05, rng)
            membrane = exp(-(d / rng.uniform(0.8, 1.6)) ** 2)
            add(image, rng.uniform(-0.08, 0.1) * soft(d, 0.8) - rng.uniform(0.15, 0.3) * membrane, cy, cx)
        elif species == "particles":
            d = blob_distance(r, r * rng.uniform(0.75, 1.0), rng.uniform(0, math.pi), 0.12, rng)
            halo = exp(-((d - 1.5) / 1.0) ** 2)
            add(image, -rng.uniform(0.25, 0.45) * soft(d, 0.6) + 0.05 * halo, cy, cx)
        else:
            d = blob_distance(r, r * rng.uniform(2.5, 6.0), rng.uniform(0, math.pi), 0.04, rng)
            add(image, -rng.uniform(0.15, 0.3) * soft(d, 0.8), cy, cx)
