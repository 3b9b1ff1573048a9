"""Stained tissue: crops of scikit-image's IHC photograph, or procedural H&E and IHC sections."""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from .canvas import Figure, picture, scale_bar
from .raster import add, blob_distance, exp, fibres, field, gaussian, grain, power, resize, scatter, soft

# Optical densities (R, G, B) of the common stains: colour = exp(-sum(concentration * density)),
# so overlapping stains mix the way they do under a brightfield microscope.
HEMATOXYLIN = np.array([0.65, 0.70, 0.29], dtype=np.float32)
EOSIN = np.array([0.05, 0.8, 0.3], dtype=np.float32)    # a pinker eosin than the textbook vector
DAB = np.array([0.27, 0.57, 0.78], dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _ihc_photograph() -> np.ndarray | None:
    """The IHC photograph inside scikit-image's wheel; None (and a warning) where it is missing."""
    try:
        from skimage import data
        return data.immunohistochemistry()
    except Exception as e:  # a missing file surfaces as OSError, ModuleNotFoundError (pooch), ...
        warnings.warn(f"skimage.data.immunohistochemistry() unavailable ({type(e).__name__}: {e}); "
                      "histology figures are all procedural")
        return None


def render(h: int, w: int, rng: np.random.Generator, photograph: bool = True) -> Figure:
    """A crop of the IHC photograph or a procedural section; only procedural ones without `photograph`."""
    photo = _ihc_photograph() if photograph else None
    if photo is not None and rng.random() < 0.5:
        figure = picture(_crop_photograph(photo, h, w, rng))
    else:
        figure = picture(_stained_tissue(h, w, rng))
    if rng.random() < 0.5:
        scale_bar(figure, ("50 um", "100 um", "200 um"), rng)
    return figure


def _crop_photograph(photo: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A rescaled, rotated, recoloured crop (0..1), so no two figures share pixels."""
    photo = np.rot90(photo, int(rng.integers(4)))
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    ph, pw = photo.shape[:2]
    scale = max(rng.uniform(0.5, 1.3), (h + 1) / ph, (w + 1) / pw)
    size_h, size_w = max(h, round(ph * scale)), max(w, round(pw * scale))
    photo = resize(photo.astype(np.float32) / 255.0, size_h, size_w)
    top, left = int(rng.integers(0, size_h - h + 1)), int(rng.integers(0, size_w - w + 1))
    crop = np.clip(photo[top:top + h, left:left + w], 0, 1)
    crop = power(crop, rng.uniform(0.85, 1.15, 3).astype(np.float32))   # stain intensity differs between labs
    return crop + 0.01 * rng.standard_normal(crop.shape).astype(np.float32)


def _stained_tissue(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """H&E (pink stroma, purple nuclei) or IHC (brown DAB-positive cells on a blue counterstain), 0..1."""
    ihc = rng.random() < 0.4
    scale = min(h, w)
    tissue = soft(-(field(h, w, scale / 3, rng) + rng.uniform(0.6, 1.4)) * scale / 20, 1.5)
    stroma = np.clip(0.45 + 0.1 * fibres(h, w, rng) + 0.12 * field(h, w, scale / 8, rng)
                     + 0.06 * field(h, w, scale / 30, rng), 0, None) * tissue
    radius = max(2.5, scale * rng.uniform(0.012, 0.03))
    nuclei, dab = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    n_nuclei = int(rng.uniform(0.1, 0.35) * h * w / (math.pi * (2 * radius) ** 2))
    elongated = rng.uniform(0.2, 0.8)
    for cy, cx in scatter(h, w, n_nuclei, 5 * radius, rng):
        stretch = rng.uniform(1.6, 2.8) if rng.random() < elongated else rng.uniform(0.9, 1.25)
        distance = blob_distance(radius, radius * stretch, rng.uniform(0, math.pi), 0.1, rng)
        side = distance.shape[0]
        chromatin = np.clip(0.8 + 0.2 * grain(side, side, 0.8, rng), 0, None)
        add(nuclei, soft(distance, 0.6) * chromatin, cy, cx, rng.uniform(0.6, 1.3))
        if ihc and rng.random() < 0.45:     # a DAB-positive cell: stained cytoplasm, darker membrane
            cell_r = radius * 2.2
            cell = blob_distance(cell_r, cell_r * rng.uniform(0.75, 1.25), rng.uniform(0, math.pi), 0.1, rng)
            stain = soft(cell, 1.2) * (0.45 + exp(-((cell + 1.0) / 1.5) ** 2))
            add(dab, stain, cy, cx, rng.uniform(0.4, 1.0))
    cytoplasm = gaussian(nuclei, 2 * radius)      # eosinophilic cytoplasm around nuclei
    hematoxylin = (nuclei * (0.7 if ihc else 1.0) + 0.12 * stroma * (1.6 if ihc else 1.0)) * tissue
    eosin = np.zeros_like(stroma) if ihc else (stroma + 1.5 * cytoplasm * tissue) * rng.uniform(0.5, 0.9)
    density = hematoxylin[:, :, None] * HEMATOXYLIN + eosin[:, :, None] * EOSIN + (dab * tissue)[:, :, None] * DAB
    rgb = gaussian(exp(-density) * rng.uniform(0.93, 1.0, 3).astype(np.float32), 0.6)
    return rgb + 0.012 * rng.standard_normal(rgb.shape).astype(np.float32)
