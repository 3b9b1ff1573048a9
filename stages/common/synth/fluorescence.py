"""Fluorescence micrographs: nuclei, cytoplasm and puncta stains of the same cells, merged in colour."""
from __future__ import annotations

import math

import numpy as np

from .canvas import Figure, picture, scale_bar
from .raster import add, blob_distance, gaussian, grain, scatter, soft

FLUOROPHORES = {
    "blue": (0.15, 0.35, 1.0),
    "green": (0.1, 1.0, 0.15),
    "red": (1.0, 0.12, 0.08),
    "magenta": (1.0, 0.1, 0.85),
    "grey": (1.0, 1.0, 1.0),
}
SCHEMES = (("nuclei", "cytoplasm"), ("nuclei",), ("cytoplasm",), ("nuclei", "cytoplasm", "puncta"),
           ("cytoplasm", "puncta"))


def render(h: int, w: int, rng: np.random.Generator) -> Figure:
    figure = picture(merge(channels(h, w, rng)))
    scale_bar(figure, ("10 um", "20 um", "50 um"), rng)
    return figure


def channels(h: int, w: int, rng: np.random.Generator, min_channels: int = 1) -> list[tuple[np.ndarray, tuple]]:
    """Per-channel intensity images (0..1, already blurred and noisy) with their display colours.

    Nuclei (DAPI-like) and cytoplasm or puncta stains of the same cells, so the channels line up
    the way a real multi-channel acquisition does.
    """
    schemes = [s for s in SCHEMES if len(s) >= min_channels]
    stains = schemes[int(rng.integers(len(schemes)))]
    radius = max(3.0, min(h, w) * rng.uniform(0.018, 0.045))
    n_cells = int(rng.uniform(0.1, 0.4) * h * w / (math.pi * (2.0 * radius) ** 2)) + 3
    layers = {stain: np.zeros((h, w), np.float32) for stain in ("nuclei", "cytoplasm", "puncta")}
    for cy, cx in scatter(h, w, n_cells, 4 * radius, rng):
        _draw_cell(layers, cy, cx, radius, rng)
    others = [str(c) for c in rng.permutation(("green", "red"))] + ["magenta"]
    names = ["blue" if stain == "nuclei" else others.pop(0) for stain in stains]
    if len(stains) == 1 and rng.random() < 0.3:
        names = ["grey"]
    return [(_camera(layers[stain], rng), FLUOROPHORES[name]) for stain, name in zip(stains, names)]


def _draw_cell(layers: dict[str, np.ndarray], cy: float, cx: float, radius: float, rng: np.random.Generator) -> None:
    mitotic = rng.random() < 0.05       # condensed, bright, small
    r = radius * (0.6 if mitotic else 1.0)
    angle = rng.uniform(0, math.pi)
    distance = blob_distance(r * rng.uniform(0.8, 1.25), r * rng.uniform(0.8, 1.25), angle, 0.08, rng)
    side = distance.shape[0]
    chromatin = np.clip(0.75 + 0.25 * grain(side, side, max(0.8, r / 5), rng), 0, None)
    add(layers["nuclei"], soft(distance, 0.7) * chromatin, cy, cx, rng.uniform(0.45, 1.0) * (1.6 if mitotic else 1.0))
    body = blob_distance(r * rng.uniform(1.8, 3.0), r * rng.uniform(1.6, 2.6), rng.uniform(0, math.pi), 0.25, rng)
    side = body.shape[0]
    texture = np.clip(0.7 + 0.3 * grain(side, side, 1.5, rng), 0, None)
    offset = rng.normal(0, 0.4 * r, 2)
    add(layers["cytoplasm"], soft(body, 1.5) * texture, cy + offset[0], cx + offset[1], rng.uniform(0.15, 0.55))
    spot = soft(blob_distance(1.2, 1.2, 0.0, 0.0, rng), 0.6)
    for dy, dx in rng.normal(0, 1.2 * r, (int(rng.integers(0, 9)), 2)):
        add(layers["puncta"], spot, cy + dy, cx + dx, rng.uniform(0.4, 1.0))


def _camera(layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optics blur, background glow, shot and read noise of one fluorescence channel."""
    image = gaussian(layer, rng.uniform(0.6, 1.4)) + rng.uniform(0.01, 0.05)
    photons = rng.uniform(60, 400)
    image = rng.poisson(np.clip(image, 0, 2) * photons).astype(np.float32) / photons
    return np.clip(image + 0.01 * rng.standard_normal(layer.shape).astype(np.float32), 0, 1)


def merge(layers: list[tuple[np.ndarray, tuple]]) -> np.ndarray:
    return sum(layer[:, :, None] * np.asarray(colour, np.float32) for layer, colour in layers)
