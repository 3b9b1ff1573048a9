"""The registry of figure kinds: a new kind is a module with `render(h, w, rng) -> Figure` and a line here."""
from __future__ import annotations

import numpy as np

from . import blot, em, fluorescence, histology, panels
from .canvas import Figure

RENDERERS = {
    "blot": blot.render,
    "fluorescence": fluorescence.render,
    "histology": histology.render,
    "em": em.render,
    "panels": panels.render,
}
KINDS = tuple(RENDERERS)


def render_figure(kind: str, height: int, width: int, rng: np.random.Generator) -> Figure:
    """An authentic figure of `kind`: RGB uint8 pixels (height, width, 3), where text was drawn, and
    where its pictures, lanes and panels are."""
    if kind not in RENDERERS:
        raise ValueError(f"unknown figure kind {kind!r}; expected one of {', '.join(KINDS)}")
    if min(height, width) < 16:
        raise ValueError(f"a {height}x{width} figure is too small to draw")
    return RENDERERS[kind](int(height), int(width), rng)
