"""A built-in dataset of scientific-looking figures with copy-move forgeries.

With no Kaggle data, this is what the pipeline first trains and measures on, so it imitates the
real thing rather than a toy: western blots and gels, fluorescence micrographs, stained tissue,
electron micrographs and multi-panel figures, each full of repeats that are NOT forgeries
(similar cells, regular lanes, panel letters, scale bars, split-channel panels beside their
merge). A forgery copies one object-shaped region (a cell, band, particle, patch of tissue) to
one or more places of the same image, sometimes flipped, rotated, scaled or retouched.

Everything is drawn from per-case child seeds of `synth.seed`, so the same params give
byte-identical files and case i never depends on how many cases come before it.
"""
from __future__ import annotations

import errno
import functools
import json
import math
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold, threshold_otsu
from tqdm import tqdm

from stages.common.config import ParamsError, SynthParams
from stages.common.io import OutputError, write_csv
from stages.common.rle import AUTHENTIC, encode_instances

KINDS = ("blot", "fluorescence", "histology", "em", "panels")
MODES = ("RGB", "RGBA", "L")
MIN_SIDE = 48                       # smaller figures cannot hold labelled panels and separate copies

MIN_FORGED_FRACTION = 0.002         # the real data's forged area is roughly 0.2 % to 7 % of the image
MAX_FORGED_FRACTION = 0.07
TARGET_FRACTION = (0.004, 0.045)    # log-uniform aim, inside the limits so most first attempts pass
MIN_OBJECT_AREA = 30                # pixels; smaller blobs are specks, not objects
GAP = 2                             # pixels between copied regions, so each stays its own component
MIN_OBJECT_CONTRAST = 10.0          # grey levels an object must stand out from its background by
OBJECT_AREA_SPREAD = 0.8            # log-area deviation at which an object is e^-0.5 as likely
P_TEXTURE_PATCH = 0.2               # share of events that copy a patch of texture, not an object
FORGE_ATTEMPTS = 12
SOURCE_TRIES = 8
PLACEMENT_TRIES = 24
JPEG_QUALITY = (70, 95)
SCALE_RANGE = (0.8, 1.2)            # of a scaled copy
GAIN_RANGE, OFFSET_RANGE = (0.8, 1.2), (-12.0, 12.0)   # of a brightness-retouched copy
CASE_ID_START = 10001

TRAIN_IMAGES, TEST_IMAGES, TRAIN_MASKS = "train_images", "test_images", "train_masks"
META_COLUMNS = ("case_id", "split", "kind", "label", "width", "height", "mode", "jpeg", "n_instances",
                "forged_fraction")

# Optical densities (R, G, B) of the common stains: colour = exp(-sum(concentration * density)),
# so overlapping stains mix the way they do under a brightfield microscope.
HEMATOXYLIN = np.array([0.65, 0.70, 0.29], dtype=np.float32)
EOSIN = np.array([0.05, 0.8, 0.3], dtype=np.float32)    # a pinker eosin than the textbook vector
DAB = np.array([0.27, 0.57, 0.78], dtype=np.float32)

FLUOROPHORES = {
    "blue": (0.15, 0.35, 1.0),
    "green": (0.1, 1.0, 0.15),
    "red": (1.0, 0.12, 0.08),
    "magenta": (1.0, 0.1, 0.85),
    "grey": (1.0, 1.0, 1.0),
}
PROTEINS = ("GAPDH", "b-actin", "Tubulin", "p-ERK", "ERK1/2", "p-Akt", "Akt", "p53", "Bax", "Bcl-2",
            "LC3B", "Caspase-3", "HSP70", "Histone H3", "Vinculin", "c-Myc", "PARP", "Cyclin D1")
CONDITIONS = ("Control", "Vehicle", "siCtrl", "siRNA", "WT", "KO", "DMSO", "Drug", "0 h", "24 h", "48 h", "Mock")
CHANNEL_NAMES = ("DAPI", "GFP", "Merge")
FLUORESCENCE_SCHEMES = (("nuclei", "cytoplasm"), ("nuclei",), ("cytoplasm",), ("nuclei", "cytoplasm", "puncta"),
                        ("cytoplasm", "puncta"))
BLACK, WHITE = (0, 0, 0), (255, 255, 255)


@dataclass(frozen=True)
class Figure:
    image: np.ndarray   # RGB uint8 (H, W, 3)
    layout: np.ndarray  # uint8 {0, 1} (H, W): page, text, marks, scale bars; not picture content


@dataclass(frozen=True)
class Forgery:
    image: np.ndarray   # RGB uint8 (H, W, 3): the authentic pixels except under the copies
    masks: np.ndarray   # uint8 {0, 1} (N, H, W): one instance per event, the source and its copies
    regions: tuple[int, ...]  # separate blobs in each instance: its source and every copy


@dataclass(frozen=True)
class CasePlan:
    case_id: str
    split: str          # "train" or "test"
    kind: str
    forged: bool        # train: the case also gets a forged twin; test: the one image is forged
    seed: np.random.SeedSequence


@dataclass(frozen=True)
class SyntheticCase:
    plan: CasePlan
    mode: str
    jpeg_quality: int   # 0 where no JPEG was applied
    authentic: np.ndarray
    forgery: Forgery | None


@dataclass(frozen=True)
class GenerationSummary:
    root: Path
    meta: pd.DataFrame  # one row per written image, as in meta.csv
    seconds: float
    size_bytes: int


class ForgeryError(RuntimeError):
    """No forgery inside the area limits fits the image."""


# ================================================================ drawing primitives


def _field(h: int, w: int, feature_px: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field (zero mean, unit deviation) with features about `feature_px` across."""
    grid_h = max(2, math.ceil(h / feature_px) + 1)
    grid_w = max(2, math.ceil(w / feature_px) + 1)
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _grain(h: int, w: int, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Fine noise (unit deviation) correlated over `sigma_px`: film grain, chromatin, membrane texture."""
    noise = rng.standard_normal((h, w)).astype(np.float32)
    if sigma_px > 0:
        noise = cv2.GaussianBlur(noise, (0, 0), sigma_px)
    return noise / (noise.std() + 1e-6)


def _fibres(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Wavy streaks, like collagen fibres in stroma (unit deviation)."""
    length = max(5, min(h, w) // 12) | 1
    angle = rng.uniform(0, math.pi)
    kernel = np.zeros((length, length), np.float32)
    c, dx, dy = length // 2, math.cos(angle) * length / 2, math.sin(angle) * length / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    streaks = cv2.filter2D(rng.standard_normal((h, w)).astype(np.float32), -1, kernel / kernel.sum())
    # Displacing every pixel along a smooth random field bends the straight streaks into waves.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bend, feature = min(h, w) / 20, min(h, w) / 3
    streaks = cv2.remap(streaks, xx + bend * _field(h, w, feature, rng), yy + bend * _field(h, w, feature, rng),
                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    streaks = cv2.GaussianBlur(streaks, (0, 0), 0.8)
    return streaks / (streaks.std() + 1e-6)


def _blob_distance(ry: float, rx: float, angle: float, wobble: float, rng: np.random.Generator) -> np.ndarray:
    """Approximate signed distance in pixels (negative inside) to an irregular ellipse.

    The ellipse is centred in a square patch of odd side. Random low harmonics bend its outline, so
    no two cells or particles drawn with the same radii have the same shape.
    """
    ry, rx = max(ry, 1.0), max(rx, 1.0)
    half = math.ceil(max(ry, rx) * (1 + 2 * wobble) + 4)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = (xx * cos + yy * sin) / rx, (-xx * sin + yy * cos) / ry
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    boundary = np.ones_like(theta)
    for k in range(2, 6):
        boundary += wobble * rng.uniform(0, 1) * 2 / k * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    return (rho - boundary) * min(rx, ry)


def _soft(distance: np.ndarray, edge: float) -> np.ndarray:
    """Alpha from a signed distance, with a soft edge about `edge` pixels wide."""
    return 1.0 / (1.0 + np.exp(np.clip(distance / max(edge, 1e-3), -30, 30)))


def _add(canvas: np.ndarray, patch: np.ndarray, cy: float, cx: float, weight: float = 1.0) -> None:
    """Add `weight * patch`, centred at (cy, cx), into `canvas`, clipped at its borders."""
    ph, pw = patch.shape[:2]
    top, left = round(cy) - ph // 2, round(cx) - pw // 2
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + ph, canvas.shape[0]), min(left + pw, canvas.shape[1])
    if y0 < y1 and x0 < x1:
        canvas[y0:y1, x0:x1] += weight * patch[y0 - top:y1 - top, x0 - left:x1 - left]


def _scatter(h: int, w: int, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) points, half in loose clusters (cells grow in colonies), half uniform."""
    n_clustered = n // 2
    parents = rng.uniform((0, 0), (h, w), size=(max(1, n_clustered // 5), 2))
    clustered = parents[rng.integers(len(parents), size=n_clustered)] + rng.normal(0, spread, (n_clustered, 2))
    uniform = rng.uniform((0, 0), (h, w), size=(n - n_clustered, 2))
    return np.concatenate([clustered, uniform])


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _picture(image: np.ndarray, layout: np.ndarray | None = None) -> Figure:
    """A figure from a float (0..1) grey or RGB picture; `layout` marks page area, if any."""
    pixels = _to_uint8(image)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return Figure(pixels, np.zeros(pixels.shape[:2], np.uint8) if layout is None else layout)


def _font(height_px: float, bold: bool) -> tuple[int, float, int]:
    font = cv2.FONT_HERSHEY_DUPLEX if bold else cv2.FONT_HERSHEY_SIMPLEX
    thickness = 2 if bold and height_px >= 14 else 1
    return font, cv2.getFontScaleFromHeight(font, max(int(height_px), 5), thickness), thickness


def _text_width(text: str, height_px: float, bold: bool = False) -> int:
    font, scale, thickness = _font(height_px, bold)
    return cv2.getTextSize(text, font, scale, thickness)[0][0]


def _label(figure: Figure, text: str, x: float, y: float, height_px: float,
           colour: tuple[int, int, int], bold: bool = False) -> None:
    """Draw `text` with its baseline's left end at (x, y)."""
    font, scale, thickness = _font(height_px, bold)
    cv2.putText(figure.image, text, (int(x), int(y)), font, scale, colour, thickness, cv2.LINE_AA)
    cv2.putText(figure.layout, text, (int(x), int(y)), font, scale, 1, thickness + 1)


def _scale_bar(figure: Figure, units: tuple[str, ...], rng: np.random.Generator) -> None:
    """A scale bar in the bottom-right corner, white on dark pictures and black on light ones."""
    h, w = figure.layout.shape
    if min(h, w) < 64:
        return
    length, thick, margin = int(w * rng.uniform(0.12, 0.25)), max(2, h // 90), max(4, w // 28)
    x1, y1 = w - margin, h - margin
    x0 = x1 - length
    colour = (255, 255, 255) if figure.image[y1 - h // 8:y1, x0:x1].mean() < 128 else (0, 0, 0)
    cv2.rectangle(figure.image, (x0, y1 - thick), (x1, y1), colour, -1)
    cv2.rectangle(figure.layout, (x0 - 1, y1 - thick - 1), (x1 + 1, y1 + 1), 1, -1)
    if rng.random() < 0.6:
        _label(figure, str(rng.choice(units)), x0, y1 - thick - 4, max(7, h // 30), colour)


# ================================================================ figure kinds


def render_figure(kind: str, height: int, width: int, rng: np.random.Generator) -> Figure:
    """An authentic figure of `kind`: RGB uint8 pixels (height, width, 3) and where text was drawn."""
    if kind not in RENDERERS:
        raise ValueError(f"unknown figure kind {kind!r}; expected one of {', '.join(KINDS)}")
    if min(height, width) < 16:
        raise ValueError(f"a {height}x{width} figure is too small to draw")
    return RENDERERS[kind](int(height), int(width), rng)


# ---------------------------------------------------------------- blots and gels


def _render_blot(h: int, w: int, rng: np.random.Generator) -> Figure:
    """A bare blot or gel crop, or a labelled figure of blot strips where there is room for labels."""
    if min(h, w) < 96 or rng.random() < 0.4:
        return _picture(_membrane(h, w, int(rng.integers(4, 13)), int(rng.integers(2, 6)), rng.random() < 0.35, rng))
    return _blot_figure(h, w, rng)


def _membrane(h: int, w: int, n_lanes: int, n_rows: int, gel: bool, rng: np.random.Generator) -> np.ndarray:
    """A western blot film (dark bands on a light membrane) or a stained gel (light on dark), 0..1."""
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
    density = 1.0 - np.exp(-darkness * rng.uniform(1.2, 2.6))     # film saturates on strong bands
    density = cv2.GaussianBlur(density, (0, 0), rng.uniform(0.5, 1.2))
    shading = 0.03 * _field(h, w, max(h, w) / 2, rng)
    if gel:
        image = 0.07 + shading + density * rng.uniform(0.6, 0.9)
    else:
        image = (rng.uniform(0.82, 0.95) + shading) * (1.0 - 0.92 * density)
    return image + 0.012 * _grain(h, w, 0.7, rng)


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
    profile = np.exp(-0.5 * dy ** 2) + rng.uniform(0, 0.25) * np.exp(-np.maximum(dy, 0) / 3) * (dy > 0)
    across = np.exp(-np.abs(u) ** rng.uniform(3, 8))
    texture = 1 + 0.2 * _grain(y1 - y0, x1 - x0, 1.0, rng)
    darkness[y0:y1, x0:x1] += strength * profile * across * texture


def _blot_figure(h: int, w: int, rng: np.random.Generator) -> Figure:
    """Strips of blots stacked on a white page, protein names on the left, +/- lane labels on top."""
    text_h = max(7, min(h, w) // 26)
    header_rows = int(rng.integers(0, 3))
    header_h = int(text_h * (1.6 * header_rows + 0.4)) + 4
    n_strips = int(np.clip(rng.integers(2, 6), 1, (h - header_h) // (4 * text_h)))
    proteins = [str(p) for p in rng.choice(PROTEINS, n_strips, replace=False)]
    label_w = max(_text_width(p, text_h) for p in proteins) + 8
    kda_w = _text_width("100 kDa", text_h) + 8 if rng.random() < 0.4 else 4
    strip_w = w - label_w - kda_w
    if strip_w < 0.5 * w:
        return _picture(_membrane(h, w, int(rng.integers(4, 13)), int(rng.integers(2, 6)), False, rng))
    gap = max(3, text_h // 2)
    strip_h = (h - header_h - gap * (n_strips + 1)) // n_strips
    fewest_lanes = max(3, strip_w // 45)  # lanes stay narrower than about 45 px
    n_lanes = int(rng.integers(fewest_lanes, max(fewest_lanes, 10) + 1))
    page, layout = np.ones((h, w), np.float32), np.ones((h, w), np.uint8)
    tops = [header_h + gap + i * (strip_h + gap) for i in range(n_strips)]
    for top in tops:
        page[top:top + strip_h, label_w:label_w + strip_w] = _membrane(strip_h, strip_w, n_lanes, 1, False, rng)
        layout[top:top + strip_h, label_w:label_w + strip_w] = 0
    figure = _picture(page, layout)
    for top, protein in zip(tops, proteins):
        baseline = top + (strip_h + text_h) / 2
        _label(figure, protein, label_w - _text_width(protein, text_h) - 5, baseline, text_h, BLACK)
        if kda_w > 4:
            weight = f"{rng.choice((15, 25, 37, 50, 75, 100))} kDa"
            _label(figure, weight, label_w + strip_w + 4, baseline, text_h * 0.85, BLACK)
    _lane_header(figure, label_w, strip_w, n_lanes, header_rows, text_h, rng)
    return figure


def _lane_header(figure: Figure, left: int, width: int, n_lanes: int, n_rows: int, text_h: int,
                 rng: np.random.Generator) -> None:
    """Rows of +/- marks over the lanes, each row named on the left."""
    lane_w = width / n_lanes
    for row in range(n_rows):
        y = (row + 1) * 1.6 * text_h
        name = str(rng.choice(("siRNA", "Drug", "EGF", "LPS", "Dox")))
        _label(figure, name, left - _text_width(name, text_h) - 5, y, text_h, BLACK)
        for lane in range(n_lanes):
            mark = "+" if rng.random() < 0.5 else "-"
            _label(figure, mark, left + (lane + 0.5) * lane_w - _text_width(mark, text_h) / 2, y, text_h, BLACK)


# ---------------------------------------------------------------- fluorescence


def _render_fluorescence(h: int, w: int, rng: np.random.Generator) -> Figure:
    figure = _picture(_merge(_fluorescence_channels(h, w, rng)))
    _scale_bar(figure, ("10 um", "20 um", "50 um"), rng)
    return figure


def _fluorescence_channels(h: int, w: int, rng: np.random.Generator,
                           min_channels: int = 1) -> list[tuple[np.ndarray, tuple]]:
    """Per-channel intensity images (0..1, already blurred and noisy) with their display colours.

    Nuclei (DAPI-like) and cytoplasm or puncta stains of the same cells, so the channels line up
    the way a real multi-channel acquisition does.
    """
    schemes = [s for s in FLUORESCENCE_SCHEMES if len(s) >= min_channels]
    stains = schemes[int(rng.integers(len(schemes)))]
    radius = max(3.0, min(h, w) * rng.uniform(0.018, 0.045))
    n_cells = int(rng.uniform(0.1, 0.4) * h * w / (math.pi * (2.0 * radius) ** 2)) + 3
    layers = {stain: np.zeros((h, w), np.float32) for stain in ("nuclei", "cytoplasm", "puncta")}
    for cy, cx in _scatter(h, w, n_cells, 4 * radius, rng):
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
    distance = _blob_distance(r * rng.uniform(0.8, 1.25), r * rng.uniform(0.8, 1.25), angle, 0.08, rng)
    side = distance.shape[0]
    chromatin = np.clip(0.75 + 0.25 * _grain(side, side, max(0.8, r / 5), rng), 0, None)
    _add(layers["nuclei"], _soft(distance, 0.7) * chromatin, cy, cx, rng.uniform(0.45, 1.0) * (1.6 if mitotic else 1.0))
    body = _blob_distance(r * rng.uniform(1.8, 3.0), r * rng.uniform(1.6, 2.6), rng.uniform(0, math.pi), 0.25, rng)
    side = body.shape[0]
    texture = np.clip(0.7 + 0.3 * _grain(side, side, 1.5, rng), 0, None)
    offset = rng.normal(0, 0.4 * r, 2)
    _add(layers["cytoplasm"], _soft(body, 1.5) * texture, cy + offset[0], cx + offset[1], rng.uniform(0.15, 0.55))
    spot = _soft(_blob_distance(1.2, 1.2, 0.0, 0.0, rng), 0.6)
    for dy, dx in rng.normal(0, 1.2 * r, (int(rng.integers(0, 9)), 2)):
        _add(layers["puncta"], spot, cy + dy, cx + dx, rng.uniform(0.4, 1.0))


def _camera(layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optics blur, background glow, shot and read noise of one fluorescence channel."""
    image = cv2.GaussianBlur(layer, (0, 0), rng.uniform(0.6, 1.4)) + rng.uniform(0.01, 0.05)
    photons = rng.uniform(60, 400)
    image = rng.poisson(np.clip(image, 0, 2) * photons).astype(np.float32) / photons
    return np.clip(image + 0.01 * rng.standard_normal(layer.shape).astype(np.float32), 0, 1)


def _merge(channels: list[tuple[np.ndarray, tuple]]) -> np.ndarray:
    return sum(layer[:, :, None] * np.asarray(colour, np.float32) for layer, colour in channels)


# ---------------------------------------------------------------- histology


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


def _render_histology(h: int, w: int, rng: np.random.Generator) -> Figure:
    photograph = _ihc_photograph()
    if photograph is not None and rng.random() < 0.5:
        figure = _picture(_crop_photograph(photograph, h, w, rng))
    else:
        figure = _picture(_stained_tissue(h, w, rng))
    if rng.random() < 0.5:
        _scale_bar(figure, ("50 um", "100 um", "200 um"), rng)
    return figure


def _crop_photograph(photo: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A rescaled, rotated, recoloured crop (0..1), so no two figures share pixels."""
    photo = np.rot90(photo, int(rng.integers(4)))
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    ph, pw = photo.shape[:2]
    scale = max(rng.uniform(0.5, 1.3), (h + 1) / ph, (w + 1) / pw)
    size = (max(w, round(pw * scale)), max(h, round(ph * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    photo = cv2.resize(np.ascontiguousarray(photo), size, interpolation=interpolation)
    top, left = int(rng.integers(0, size[1] - h + 1)), int(rng.integers(0, size[0] - w + 1))
    crop = photo[top:top + h, left:left + w].astype(np.float32) / 255.0
    crop = crop ** rng.uniform(0.85, 1.15, 3).astype(np.float32)   # stain intensity differs between labs
    return crop + 0.01 * rng.standard_normal(crop.shape).astype(np.float32)


def _stained_tissue(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """H&E (pink stroma, purple nuclei) or IHC (brown DAB-positive cells on a blue counterstain), 0..1."""
    ihc = rng.random() < 0.4
    scale = min(h, w)
    tissue = _soft(-(_field(h, w, scale / 3, rng) + rng.uniform(0.6, 1.4)) * scale / 20, 1.5)
    stroma = np.clip(0.45 + 0.1 * _fibres(h, w, rng) + 0.12 * _field(h, w, scale / 8, rng)
                     + 0.06 * _field(h, w, scale / 30, rng), 0, None) * tissue
    radius = max(2.5, scale * rng.uniform(0.012, 0.03))
    nuclei, dab = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
    n_nuclei = int(rng.uniform(0.1, 0.35) * h * w / (math.pi * (2 * radius) ** 2))
    elongated = rng.uniform(0.2, 0.8)
    for cy, cx in _scatter(h, w, n_nuclei, 5 * radius, rng):
        stretch = rng.uniform(1.6, 2.8) if rng.random() < elongated else rng.uniform(0.9, 1.25)
        distance = _blob_distance(radius, radius * stretch, rng.uniform(0, math.pi), 0.1, rng)
        side = distance.shape[0]
        chromatin = np.clip(0.8 + 0.2 * _grain(side, side, 0.8, rng), 0, None)
        _add(nuclei, _soft(distance, 0.6) * chromatin, cy, cx, rng.uniform(0.6, 1.3))
        if ihc and rng.random() < 0.45:     # a DAB-positive cell: stained cytoplasm, darker membrane
            cell_r = radius * 2.2
            cell = _blob_distance(cell_r, cell_r * rng.uniform(0.75, 1.25), rng.uniform(0, math.pi), 0.1, rng)
            stain = _soft(cell, 1.2) * (0.45 + np.exp(-((cell + 1.0) / 1.5) ** 2))
            _add(dab, stain, cy, cx, rng.uniform(0.4, 1.0))
    cytoplasm = cv2.GaussianBlur(nuclei, (0, 0), 2 * radius)      # eosinophilic cytoplasm around nuclei
    hematoxylin = (nuclei * (0.7 if ihc else 1.0) + 0.12 * stroma * (1.6 if ihc else 1.0)) * tissue
    eosin = np.zeros_like(stroma) if ihc else (stroma + 1.5 * cytoplasm * tissue) * rng.uniform(0.5, 0.9)
    density = hematoxylin[:, :, None] * HEMATOXYLIN + eosin[:, :, None] * EOSIN + (dab * tissue)[:, :, None] * DAB
    rgb = cv2.GaussianBlur(np.exp(-density) * rng.uniform(0.93, 1.0, 3).astype(np.float32), (0, 0), 0.6)
    return rgb + 0.012 * rng.standard_normal(rgb.shape).astype(np.float32)


# ---------------------------------------------------------------- electron microscopy


def _render_em(h: int, w: int, rng: np.random.Generator) -> Figure:
    """Grey, grainy TEM: vesicles with dark membranes, dense particles, rods, and a scale bar."""
    scale = min(h, w)
    image = rng.uniform(0.5, 0.7) + 0.06 * _field(h, w, scale / 2.5, rng) + 0.03 * _field(h, w, scale / 12, rng)
    image = image.astype(np.float32)
    present = [s for s in ("vesicles", "particles", "rods") if rng.random() < 0.5] or ["vesicles"]
    for species in present:
        _draw_em_species(image, species, rng)
    figure = _picture(cv2.GaussianBlur(image + 0.04 * _grain(h, w, 0.6, rng), (0, 0), 0.5))
    band = max(12, h // 14) if h >= 128 and rng.random() < 0.35 else 0
    if band:
        figure.image[h - band:] = 0
        figure.layout[h - band:] = 1
        text = f"HV=80.0kV  Direct Mag: {rng.choice((8000, 20000, 40000, 60000))}x"
        if _text_width(text, band * 0.45) > w - 8:
            text = text.split("  ")[1]
        _label(figure, text, 4, h - band / 2 + band / 5, band * 0.45, WHITE)
    _scale_bar(Figure(figure.image[: h - band], figure.layout[: h - band]), ("100 nm", "200 nm", "500 nm", "1 um"), rng)
    return figure


def _draw_em_species(image: np.ndarray, species: str, rng: np.random.Generator) -> None:
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
            d = _blob_distance(r, r * rng.uniform(0.8, 1.0), rng.uniform(0, math.pi), 0.05, rng)
            membrane = np.exp(-(d / rng.uniform(0.8, 1.6)) ** 2)
            _add(image, rng.uniform(-0.08, 0.1) * _soft(d, 0.8) - rng.uniform(0.15, 0.3) * membrane, cy, cx)
        elif species == "particles":
            d = _blob_distance(r, r * rng.uniform(0.75, 1.0), rng.uniform(0, math.pi), 0.12, rng)
            halo = np.exp(-((d - 1.5) / 1.0) ** 2)
            _add(image, -rng.uniform(0.25, 0.45) * _soft(d, 0.6) + 0.05 * halo, cy, cx)
        else:
            d = _blob_distance(r, r * rng.uniform(2.5, 6.0), rng.uniform(0, math.pi), 0.04, rng)
            _add(image, -rng.uniform(0.15, 0.3) * _soft(d, 0.8), cy, cx)


# ---------------------------------------------------------------- multi-panel figures


def _render_panels(h: int, w: int, rng: np.random.Generator) -> Figure:
    """2 to 4 panels on white, lettered A, B, C..., with captions over some of them."""
    letter_h = max(7, min(h, w) // 22)
    gap, head = max(3, min(h, w) // 40), letter_h + 6
    rows, cols = _panel_grid(h, w, gap, head, rng)
    panel_h, panel_w = (h - gap - rows * (head + gap)) // rows, (w - gap * (cols + 1)) // cols
    page = _picture(np.ones((h, w), np.float32), np.ones((h, w), np.uint8))
    captions = rng.random() < 0.5
    for index, (panel, caption) in enumerate(_panel_contents(rows, cols, panel_h, panel_w, rng)):
        row, col = divmod(index, cols)
        top, left = gap + row * (head + panel_h + gap) + head, gap + col * (panel_w + gap)
        page.image[top:top + panel_h, left:left + panel_w] = panel.image
        page.layout[top:top + panel_h, left:left + panel_w] = panel.layout
        _label(page, "ABCDEFGH"[index], left, top - 4, letter_h, BLACK, bold=True)
        if captions and caption:
            caption_h = letter_h * 0.8
            x = left + (panel_w - _text_width(caption, caption_h)) / 2
            _label(page, caption, max(x, left + 1.6 * letter_h), top - 4, caption_h, BLACK)
    return page


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
    kinds = ("fluorescence", "histology", "em", "blot")
    same_kind = rng.random() < 0.6
    kind = str(rng.choice(kinds))
    if same_kind and kind == "fluorescence" and cols == 3 and rng.random() < 0.6:
        return [item for _ in range(rows) for item in _split_channels(panel_h, panel_w, rng)]
    conditions = [str(c) for c in rng.permutation(CONDITIONS)]
    return [(RENDERERS[kind if same_kind else str(rng.choice(kinds))](panel_h, panel_w, rng),
             conditions[index % len(conditions)]) for index in range(rows * cols)]


def _split_channels(h: int, w: int, rng: np.random.Generator) -> list[tuple[Figure, str]]:
    first, second = _fluorescence_channels(h, w, rng, min_channels=2)[:2]
    return [(_picture(_merge(channels)), name)
            for channels, name in zip(([first], [second], [first, second]), CHANNEL_NAMES)]


RENDERERS = {
    "blot": _render_blot,
    "fluorescence": _render_fluorescence,
    "histology": _render_histology,
    "em": _render_em,
    "panels": _render_panels,
}


# ================================================================ forging


@dataclass(frozen=True)
class Region:
    """A boolean mask whose top-left corner sits at (top, left) of the image."""
    top: int
    left: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def window(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.mask.shape[0]), slice(self.left, self.left + self.mask.shape[1])


@dataclass(frozen=True)
class CopyTransform:
    flip: int | None    # cv2.flip code: 1 horizontal, 0 vertical
    angle: float        # degrees, counter-clockwise
    scale: float
    gain: float
    offset: float


@dataclass(frozen=True)
class Paste:
    region: Region
    pixels: np.ndarray  # uint8 (h, w, 3), used where region.mask is set


@dataclass(frozen=True)
class CopyMoveEvent:
    source: Region
    copies: list[Paste]

    @property
    def area(self) -> int:
        return self.source.area + sum(copy.region.area for copy in self.copies)


@dataclass(frozen=True)
class Scene:
    """What forging needs to know about an image, computed once per attempt."""
    grey: np.ndarray        # float32 luminance
    contrast: np.ndarray    # float32 |luminance - local background|, where sources are drawn
    objects: list[Region]   # blobs that stand out from their background: cells, bands, particles
    avoid: np.ndarray       # bool: never copied nor pasted over (text, bars, and their surround)


def forge(image: np.ndarray, rng: np.random.Generator, params: SynthParams,
          avoid: np.ndarray | None = None) -> Forgery:
    """Copy `params.instances` object-shaped regions of `image`, each to `params.copies` new places.

    `avoid` (H, W) marks pixels that are neither copied nor pasted over (a figure's layout: page
    background, text, scale bars), which forgers leave alone. Raises ForgeryError when no forgery
    covering MIN_FORGED_FRACTION to MAX_FORGED_FRACTION of the image fits after FORGE_ATTEMPTS tries.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"forge expects an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    avoid = np.zeros(image.shape[:2], bool) if avoid is None else avoid.astype(bool)
    for _ in range(FORGE_ATTEMPTS):
        forgery = _attempt_forgery(image, avoid, rng, params)
        if forgery is not None:
            return forgery
    h, w = image.shape[:2]
    raise ForgeryError(f"no copy-move forgery of {MIN_FORGED_FRACTION:.1%} to {MAX_FORGED_FRACTION:.0%} of the "
                       f"area fits a {h}x{w} image after {FORGE_ATTEMPTS} attempts")


def _attempt_forgery(image: np.ndarray, avoid: np.ndarray, rng: np.random.Generator,
                     params: SynthParams) -> Forgery | None:
    h, w = image.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    budget = h * w * math.exp(rng.uniform(*np.log(TARGET_FRACTION)))
    n_events = int(rng.integers(params.instances[0], params.instances[1] + 1))
    copies = [int(rng.integers(params.copies[0], params.copies[1] + 1)) for _ in range(n_events)]
    areas = [max(MIN_OBJECT_AREA, budget / n_events / (1 + n)) for n in copies]
    scene = _scene(grey, avoid, max(areas))
    forged, blocked = image.copy(), scene.avoid.copy()
    masks, regions, total = [], [], 0
    for n_copies, object_area in zip(copies, areas):
        max_area = (MAX_FORGED_FRACTION * h * w - total) / (1 + n_copies) / SCALE_RANGE[1] ** 2
        event = _copy_move_event(image, scene, blocked, n_copies, object_area, max_area, rng, params)
        if event is None or total + event.area > MAX_FORGED_FRACTION * h * w:
            continue
        masks.append(_apply_event(event, forged, blocked))
        regions.append(1 + len(event.copies))
        total += event.area
    if not masks or total < MIN_FORGED_FRACTION * h * w:
        return None
    return Forgery(forged, np.stack(masks), tuple(regions))


def _scene(grey: np.ndarray, avoid: np.ndarray, object_area: float) -> Scene:
    # The median over a window several objects wide is the background under them. Objects are
    # what departs from it towards the "ink": dark on a light background (bands, nuclei, particles),
    # bright on a dark one (cells, gel bands), which ignores the bright gaps between dark bands.
    size = int(np.clip(6 * math.sqrt(object_area), 5, 255)) | 1
    background = cv2.medianBlur(grey, size)
    deviation = grey.astype(np.int16) - background.astype(np.int16)
    ink = np.where(background > 127, -deviation, deviation)
    avoid = cv2.dilate(avoid.astype(np.uint8), np.ones((2 * GAP + 3,) * 2, np.uint8)).astype(bool)
    contrast = np.abs(deviation).astype(np.float32)
    contrast[avoid] = 0
    return Scene(grey.astype(np.float32), contrast, _blobs(ink, avoid), avoid)


def _blobs(ink: np.ndarray, avoid: np.ndarray) -> list[Region]:
    """Connected regions that stand out from their background by an Otsu margin, holes filled."""
    positive = ink[ink > 0]
    if positive.size == 0 or positive.max() <= MIN_OBJECT_CONTRAST:
        return []
    threshold = max(float(threshold_otsu(positive)), MIN_OBJECT_CONTRAST)
    # Hysteresis lets an object grow along its fainter parts (a vesicle's membrane all the way round).
    labels, _ = ndimage.label(ndimage.binary_opening(apply_hysteresis_threshold(ink, threshold / 2, threshold)))
    h, w = ink.shape
    regions = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = found
        if rows.start == 0 or cols.start == 0 or rows.stop == h or cols.stop == w:
            continue    # cut by the image edge: its copy would show a straight side
        # Closing first turns a vesicle's broken membrane into a ring that filling makes whole;
        # dilating after follows annotators, who trace just outside an object's edge.
        blob = ndimage.binary_closing(np.pad(labels[found] == index, 2), iterations=2)
        blob = ndimage.binary_dilation(ndimage.binary_fill_holes(blob))[1:-1, 1:-1]
        region = _cropped(Region(rows.start - 1, cols.start - 1, blob))
        if region.area >= MIN_OBJECT_AREA and not avoid[region.window()][region.mask].any():
            regions.append(region)
    return regions


def _apply_event(event: CopyMoveEvent, forged: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Paste the copies into `forged`, block their surroundings, and return the instance mask."""
    mask = np.zeros(forged.shape[:2], np.uint8)
    _paint(mask, event.source, grow=0)
    _paint(blocked, event.source, grow=GAP)
    for copy in event.copies:
        window = forged[copy.region.window()]
        window[copy.region.mask] = copy.pixels[copy.region.mask]
        _paint(mask, copy.region, grow=0)
        _paint(blocked, copy.region, grow=GAP)
    return mask


def _copy_move_event(image: np.ndarray, scene: Scene, blocked: np.ndarray, n_copies: int, object_area: float,
                     max_area: float, rng: np.random.Generator, params: SynthParams) -> CopyMoveEvent | None:
    source = _pick_source(scene, blocked, object_area, max_area, rng)
    if source is None:
        return None
    blocked = blocked.copy()
    _paint(blocked, source, grow=GAP)
    surround = _surround_stats(scene.grey, source)
    copies = []
    for _ in range(n_copies):
        moved = _transformed_copy(image, source, _random_transform(rng, params))
        if moved is None:
            continue
        pixels, mask = moved
        place = _place(mask, blocked, scene.grey, surround, rng)
        if place is None:
            continue
        region = Region(place[0], place[1], mask)
        copies.append(Paste(region, pixels))
        _paint(blocked, region, grow=GAP)
    return CopyMoveEvent(source, copies) if copies else None


def _paint(canvas: np.ndarray, region: Region, grow: int) -> None:
    """Set the region's pixels, widened by `grow` pixels in every direction, clipped to the canvas."""
    mask = region.mask
    if grow:
        mask = cv2.dilate(np.pad(mask, grow).astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8)).astype(bool)
    top, left = region.top - grow, region.left - grow
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + mask.shape[0], canvas.shape[0]), min(left + mask.shape[1], canvas.shape[1])
    canvas[y0:y1, x0:x1] |= mask[y0 - top:y1 - top, x0 - left:x1 - left].astype(canvas.dtype)


def _pick_source(scene: Scene, blocked: np.ndarray, object_area: float, max_area: float,
                 rng: np.random.Generator) -> Region | None:
    """A free object, preferably of about `object_area` pixels and at most `max_area`, else a patch.

    Forgers mostly copy whole objects (a cell, a band) whatever their size, so the figure's own
    objects win over the area aimed at; a share of events copy a patch of tissue or background
    instead, and so does every event on a figure with no free object that fits.
    """
    if max_area < MIN_OBJECT_AREA:
        return None
    if rng.random() >= P_TEXTURE_PATCH:
        fitting = [r for r in scene.objects if r.area <= max_area and not blocked[r.window()][r.mask].any()]
        if fitting:
            penalty = 0.5 * (np.log([r.area / object_area for r in fitting]) / OBJECT_AREA_SPREAD) ** 2
            weights = np.exp(penalty.min() - penalty)
            return fitting[int(rng.choice(len(fitting), p=weights / weights.sum()))]
    # Squared contrast centres patches on detail (nuclei, fibres, particles), not on flat background.
    weights = np.where(blocked, 0.0, scene.contrast.astype(np.float64) ** 2 + 1e-3).ravel()
    if weights.sum() <= 0:
        return None
    for point in rng.choice(weights.size, size=SOURCE_TRIES, p=weights / weights.sum()):
        y, x = divmod(int(point), scene.grey.shape[1])
        region = _ellipse_region(scene.grey.shape, y, x, min(object_area, max_area), rng)
        if region is not None and not blocked[region.window()][region.mask].any():
            return region
    return None


def _ellipse_region(shape: tuple[int, int], y: int, x: int, object_area: float,
                    rng: np.random.Generator) -> Region | None:
    """An irregular ellipse of about `object_area` pixels at (y, x): a patch of tissue or texture."""
    radius, aspect = math.sqrt(object_area / math.pi), rng.uniform(1.0, 1.8)
    distance = _blob_distance(radius * math.sqrt(aspect), radius / math.sqrt(aspect), rng.uniform(0, math.pi), 0.1, rng)
    half = distance.shape[0] // 2
    region = _cropped(Region(y - half, x - half, distance < 0))
    inside = region.top >= 0 and region.left >= 0 and region.top + region.mask.shape[0] <= shape[0] \
        and region.left + region.mask.shape[1] <= shape[1]
    return region if inside and region.area else None


def _cropped(region: Region) -> Region:
    """The same region with its mask cropped to its bounding box."""
    rows, cols = np.flatnonzero(region.mask.any(axis=1)), np.flatnonzero(region.mask.any(axis=0))
    if rows.size == 0:
        return region
    mask = region.mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return Region(region.top + int(rows[0]), region.left + int(cols[0]), mask)


def _random_transform(rng: np.random.Generator, params: SynthParams) -> CopyTransform:
    flip = int(rng.integers(2)) if rng.random() < params.p_flip else None
    angle = float(rng.uniform(0, 360)) if rng.random() < params.p_rotate else 0.0
    scale = float(rng.uniform(*SCALE_RANGE)) if rng.random() < params.p_scale else 1.0
    retouch = rng.random() < params.p_brightness
    gain = float(rng.uniform(*GAIN_RANGE)) if retouch else 1.0
    offset = float(rng.uniform(*OFFSET_RANGE)) if retouch else 0.0
    return CopyTransform(flip, angle, scale, gain, offset)


def _transformed_copy(image: np.ndarray, source: Region, t: CopyTransform) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixels and mask of the source after the transform, cropped to the mask; None if it vanishes."""
    h, w = image.shape[:2]
    pad = 2     # context around the mask, so interpolation at its edge sees real neighbours
    y0, x0 = max(source.top - pad, 0), max(source.left - pad, 0)
    y1 = min(source.top + source.mask.shape[0] + pad, h)
    x1 = min(source.left + source.mask.shape[1] + pad, w)
    pixels = image[y0:y1, x0:x1]
    mask = np.zeros(pixels.shape[:2], np.uint8)
    mask[source.top - y0:source.top - y0 + source.mask.shape[0],
         source.left - x0:source.left - x0 + source.mask.shape[1]] = source.mask
    if t.flip is not None:
        pixels, mask = cv2.flip(pixels, t.flip), cv2.flip(mask, t.flip)
    if t.angle or t.scale != 1.0:
        pixels, mask = _warp(pixels, mask, t.angle, t.scale)
    moved = _cropped(Region(0, 0, _largest_component(mask)))
    if moved.area == 0:
        return None
    pixels = pixels[moved.window()]
    if t.gain != 1.0 or t.offset != 0.0:
        pixels = np.clip(pixels.astype(np.float32) * t.gain + t.offset + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels), moved.mask


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The biggest 8-connected blob of a mask: resampling can cut a thin sliver off a rotated copy,
    and a copy must stay one blob."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _warp(pixels: np.ndarray, mask: np.ndarray, angle: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate and scale about the centre onto a canvas that holds the whole result."""
    h, w = mask.shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ matrix.T
    low, high = corners.min(axis=0), corners.max(axis=0)
    matrix[:, 2] -= low
    size = (math.ceil(high[0] - low[0]), math.ceil(high[1] - low[1]))
    warped = cv2.warpAffine(pixels, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    warped_mask = cv2.warpAffine(mask.astype(np.float32), matrix, size, flags=cv2.INTER_LINEAR) >= 0.5
    return warped, warped_mask.astype(np.uint8)


def _ring(mask: np.ndarray, width: int = 3) -> Region:
    """The band `width` pixels wide around a mask, as a region relative to the mask's corner."""
    grown = cv2.dilate(np.pad(mask, width).astype(np.uint8), np.ones((2 * width + 1,) * 2, np.uint8)).astype(bool)
    grown[width:-width, width:-width] &= ~mask
    return Region(-width, -width, grown)


def _values_under(grey: np.ndarray, mask: np.ndarray, top: int, left: int) -> np.ndarray:
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + mask.shape[0], grey.shape[0]), min(left + mask.shape[1], grey.shape[1])
    return grey[y0:y1, x0:x1][mask[y0 - top:y1 - top, x0 - left:x1 - left]]


def _surround_stats(grey: np.ndarray, region: Region) -> tuple[float, float]:
    ring = _ring(region.mask)
    values = _values_under(grey, ring.mask, region.top + ring.top, region.left + ring.left)
    return (float(values.mean()), float(values.std())) if values.size else (0.0, 0.0)


def _place(mask: np.ndarray, blocked: np.ndarray, grey: np.ndarray, surround: tuple[float, float],
           rng: np.random.Generator) -> tuple[int, int] | None:
    """A free (top, left) whose surroundings look most like the source's, so the copy blends in."""
    h, w = grey.shape
    mh, mw = mask.shape
    if mh >= h or mw >= w:
        return None
    ring = _ring(mask)
    best, best_score = None, math.inf
    for top, left in zip(rng.integers(0, h - mh + 1, PLACEMENT_TRIES), rng.integers(0, w - mw + 1, PLACEMENT_TRIES)):
        if blocked[top:top + mh, left:left + mw][mask].any():
            continue
        values = _values_under(grey, ring.mask, int(top) + ring.top, int(left) + ring.left)
        score = abs(values.mean() - surround[0]) + 0.5 * abs(values.std() - surround[1]) if values.size else math.inf
        if score < best_score:
            best, best_score = (int(top), int(left)), score
    return best


# ================================================================ the dataset


def check_synth_params(params: SynthParams) -> None:
    """Raise ParamsError, naming the key, for synth params no dataset can be made from."""
    problems = []
    if params.n_cases < 0 or params.n_test < 0 or params.n_cases + params.n_test == 0:
        problems.append(f"n_cases ({params.n_cases}) and n_test ({params.n_test}) must be >= 0 with a positive sum")
    for key in ("forged_share", "test_forged_share", "p_flip", "p_rotate", "p_scale", "p_brightness", "p_jpeg"):
        if not 0.0 <= getattr(params, key) <= 1.0:
            problems.append(f"{key} is {getattr(params, key)}; expected a value in [0, 1]")
    if not MIN_SIDE <= params.min_side <= params.max_side:
        problems.append(f"min_side {params.min_side} and max_side {params.max_side}: "
                        f"need {MIN_SIDE} <= min_side <= max_side")
    for key in ("instances", "copies"):
        low, high = getattr(params, key)
        if not 1 <= low <= high:
            problems.append(f"{key} is [{low}, {high}]; expected 1 <= low <= high")
    for key, allowed in (("kinds", KINDS), ("modes", MODES)):
        weights = getattr(params, key)
        unknown = sorted(set(weights) - set(allowed))
        if unknown:
            problems.append(f"{key}: unknown {', '.join(unknown)}; expected some of {', '.join(allowed)}")
        if any(v < 0 for v in weights.values()) or sum(weights.values()) <= 0:
            problems.append(f"{key}: weights must be >= 0 with a positive sum, got {weights}")
    if problems:
        raise ParamsError("synth: " + "; ".join(problems))


def plan_cases(params: SynthParams) -> list[CasePlan]:
    """Every case's id, split, kind, label and seed: training cases first, then test cases."""
    plan_seed, *case_seeds = np.random.SeedSequence(params.seed).spawn(1 + params.n_cases + params.n_test)
    rng = np.random.default_rng(plan_seed)
    plans = []
    splits = (("train", params.n_cases, params.forged_share), ("test", params.n_test, params.test_forged_share))
    for split, n, share in splits:
        kinds = _allocate(params.kinds, n, rng)
        for kind, is_forged in zip(kinds, _forged_flags(kinds, share, rng)):
            index = len(plans)
            plans.append(CasePlan(str(CASE_ID_START + index), split, kind, bool(is_forged), case_seeds[index]))
    return plans


def _allocate(weights: dict[str, float], n: int, rng: np.random.Generator) -> list[str]:
    """`n` names in proportion to their weights, in random order.

    Stratified rather than drawn case by case, so even a 12-case dataset has every kind.
    """
    names = [name for name in weights if weights[name] > 0]
    quota = np.array([weights[name] for name in names]) / sum(weights[name] for name in names) * n
    counts = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return [str(name) for name in rng.permutation(np.repeat(names, counts))]


def _forged_flags(kinds: list[str], share: float, rng: np.random.Generator) -> np.ndarray:
    """Which cases are forged: `share` of them overall and, within one or two, of every kind.

    Systematic sampling along the cases sorted by kind gives each kind its share, so per-kind
    metrics are not skewed by a kind that happened to draw mostly authentic cases.
    """
    n = len(kinds)
    order = np.lexsort((rng.random(n), np.array(kinds)))
    marks = np.floor(np.arange(n + 1) * share + rng.random())
    flags = np.zeros(n, bool)
    flags[order] = np.diff(marks) > 0
    return flags


def make_case(plan: CasePlan, params: SynthParams) -> SyntheticCase:
    """Render, convert, compress and (for forged cases) forge one case from its own seed.

    The forgery is made from the authentic pixels as saved (grey for L, after JPEG), so the twins
    differ exactly under the mask and the pasted copies are never compressed a second time.
    """
    rng = np.random.default_rng(plan.seed)
    height, width = (int(v) for v in rng.integers(params.min_side, params.max_side + 1, size=2))
    modes = list(params.modes)
    weights = np.array([params.modes[m] for m in modes], dtype=float)
    mode = str(rng.choice(modes, p=weights / weights.sum()))
    jpeg_quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if rng.random() < params.p_jpeg else 0
    figure = render_figure(plan.kind, height, width, rng)
    authentic = _as_saved(figure.image, mode, jpeg_quality)
    try:
        forgery = forge(authentic, rng, params, avoid=figure.layout) if plan.forged else None
    except ForgeryError as e:
        raise ForgeryError(f"case {plan.case_id} ({plan.kind}): {e}") from None
    return SyntheticCase(plan, mode, jpeg_quality, authentic, forgery)


def _as_saved(rgb: np.ndarray, mode: str, jpeg_quality: int) -> np.ndarray:
    """The RGB pixels the PNG will decode to: grey for mode L, degraded by JPEG where asked."""
    if mode == "L":
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if jpeg_quality:
            grey = _jpeg_roundtrip(grey, jpeg_quality)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if jpeg_quality:
        bgr = _jpeg_roundtrip(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), jpeg_quality)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb


def _jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode a {pixels.shape} image")
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)


def _write_png(path: Path, rgb: np.ndarray, mode: str) -> None:
    if mode == "L":
        pixels = rgb[:, :, 0]
    elif mode == "RGBA":
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)     # opaque alpha, as in the real RGBA figures
    else:
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), pixels):
        raise OutputError(errno.EIO, f"cannot write {path}: OpenCV's PNG encoder failed")


def _write_case(case: SyntheticCase, root: Path) -> list[dict]:
    """Write the case's files and return its meta rows, one per image written."""
    plan, forgery = case.plan, case.forgery
    if plan.split == "test":
        image = forgery.image if forgery else case.authentic
        _write_png(root / TEST_IMAGES / f"{plan.case_id}.png", image, case.mode)
        return [_meta_row(case, forgery)]
    _write_png(root / TRAIN_IMAGES / "authentic" / f"{plan.case_id}.png", case.authentic, case.mode)
    rows = [_meta_row(case, None)]
    if forgery:
        _write_png(root / TRAIN_IMAGES / "forged" / f"{plan.case_id}.png", forgery.image, case.mode)
        np.save(root / TRAIN_MASKS / f"{plan.case_id}.npy", forgery.masks)
        rows.append(_meta_row(case, forgery))
    return rows


def _meta_row(case: SyntheticCase, forgery: Forgery | None) -> dict:
    h, w = case.authentic.shape[:2]
    return {
        "case_id": case.plan.case_id,
        "split": case.plan.split,
        "kind": case.plan.kind,
        "label": "forged" if forgery else "authentic",
        "width": w,
        "height": h,
        "mode": case.mode,
        "jpeg": bool(case.jpeg_quality),
        "n_instances": len(forgery.masks) if forgery else 0,
        "forged_fraction": round(float(forgery.masks.any(axis=0).mean()), 5) if forgery else 0.0,
    }


def _solution_row(case: SyntheticCase) -> dict:
    if case.forgery is None:
        return {"case_id": case.plan.case_id, "annotation": AUTHENTIC, "shape": AUTHENTIC}
    h, w = case.authentic.shape[:2]
    return {"case_id": case.plan.case_id, "annotation": encode_instances(case.forgery.masks),
            "shape": json.dumps([h, w])}


def generate_dataset(params: SynthParams, root: str | Path) -> GenerationSummary:
    """Write the whole dataset to `root`, replacing whatever was there.

    Files go to a hidden sibling folder that is renamed over `root` only when complete, so a killed
    run leaves the previous dataset (or none) and never half of a new one.
    """
    check_synth_params(params)
    started = time.perf_counter()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        meta = _write_dataset(params, staging)
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        _replace_folder(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return GenerationSummary(root, meta, time.perf_counter() - started, size)


def _write_dataset(params: SynthParams, folder: Path) -> pd.DataFrame:
    for sub in (TRAIN_IMAGES + "/authentic", TRAIN_IMAGES + "/forged", TRAIN_MASKS, TEST_IMAGES):
        (folder / sub).mkdir(parents=True)
    meta, solution = [], []
    for plan in tqdm(plan_cases(params), desc="synthesize", unit="case"):
        case = make_case(plan, params)
        meta += _write_case(case, folder)
        if plan.split == "test":
            solution.append(_solution_row(case))
    meta_frame = pd.DataFrame(meta, columns=list(META_COLUMNS))
    write_csv(folder / "solution.csv", pd.DataFrame(solution, columns=["case_id", "annotation", "shape"]))
    write_csv(folder / "meta.csv", meta_frame)
    return meta_frame


def _replace_folder(new: Path, target: Path) -> None:
    # Two renames, not a copy: the target is only ever whole-old or whole-new (or, if killed between
    # the renames, absent with the old one parked in a hidden folder beside it).
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        target.rename(old / target.name)
        new.rename(target)
        shutil.rmtree(old)
    else:
        new.rename(target)
