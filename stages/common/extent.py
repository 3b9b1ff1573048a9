"""How far a copy reaches: every pixel around it that carries its source's noise.

Each path marks a copy where its own evidence lies: keypoints, the coarse correlation of textured
pixels, a blob's outline. A pasted region reaches further, over smooth stretches none of them
sees (the plain body of a pasted object, the grass around a pasted bush, the empty part of a
patch), and it carries its source's noise there too. So each copy of a kept event is grown over
the pixels joined to it whose noise correlates with the noise at their preimage.

The noise is exact.py's `fine_grain` (what a 3x3 median removes, with strokes and drawn areas
left out), not the image less its blur: that keeps edges, and the edges look-alikes share (the
border of every blot strip, the outline of every lane) would chain a copy across the figure.
The correlation window is wide (params.window working pixels, widened on an upscaled figure to
span as many of its own), so chance agreement among a few pixels does not pass for a copy's edge.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from .config import ExtentParams
from .exact import fine_grain
from .keypoint import VerifiedCopy, WorkingImage, apply_transform, invert, local_ncc, overlaps_itself
from .masks import bounding_box, components_touching, disc, warp_mask

MIN_NOISE_STD = 0.1  # in units of the noise's local spread (fine_grain's): windows with less have no noise to compare
MAX_ROUNDS = 4  # rounds of growth, each looking as far again as the copy is wide
SPECKLE = 3  # disc opened away from the agreeing pixels: single pixels that agree by chance


def grown(work: WorkingImage, copy: VerifiedCopy, params: ExtentParams) -> VerifiedCopy:
    """The copy grown over the pixels joined to it whose noise repeats its source's, and its source
    with it; the copy unchanged if the grown one would lie mostly on its own source.

    Each round looks only as far as the copy's own size beyond its box on each side, at that
    stretch and its source's (the noise of a whole megapixel figure would cost more than the rest
    of the growth), and another round follows while the copy reaches the edge of that stretch: a
    lamp found on a plain tower reaches down the tower in two or three rounds.
    """
    region = copy.copy
    for _ in range(MAX_ROUNDS):
        box = _widened(bounding_box(region, pad=0), work.shape)
        region = _grown_within(work, region, copy.transform, box, params)
        if not _reaches_edge(region, box, work.shape):
            break
    source = warp_mask(region, invert(copy.transform))
    if overlaps_itself(source, region):
        return copy
    return dataclasses.replace(copy, copy=region, source=source)


def _grown_within(work: WorkingImage, region: np.ndarray, transform: np.ndarray, box: tuple[int, int, int, int],
                  params: ExtentParams) -> np.ndarray:
    """`region` and the pixels of `box` joined to it whose noise repeats that of their preimage under `transform`."""
    height, width = work.shape
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    preimage = apply_transform(invert(transform), corners)
    u0, v0 = np.maximum(np.floor(preimage.min(axis=0)).astype(int) - 1, 0)
    u1, v1 = np.minimum(np.ceil(preimage.max(axis=0)).astype(int) + 2, (width, height))
    if u1 <= u0 or v1 <= v0:
        return region
    noise = fine_grain(work.gray8[y0:y1, x0:x1])
    # The source's noise, laid on the box: box pixel p is figure pixel p + (x0, y0), whose
    # preimage lies in the source's box at T^-1(p + (x0, y0)) - (u0, v0).
    backward = invert(transform)
    between = backward.copy()
    between[:, 2] += backward[:, :2] @ (x0, y0) - (u0, v0)
    source_noise = cv2.warpAffine(fine_grain(work.gray8[v0:v1, u0:u1]), between, (x1 - x0, y1 - y0),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    # An upscaled figure spreads its noise over several working pixels: the window spans as many figure pixels.
    window = round(params.window * work.pixel) | 1
    with np.errstate(invalid="ignore"):
        agree = (local_ncc(noise, source_noise, window, MIN_NOISE_STD) >= params.min_ncc).astype(np.uint8)
    candidates = region.copy()
    candidates[y0:y1, x0:x1] |= cv2.morphologyEx(agree, cv2.MORPH_OPEN, disc(SPECKLE)) > 0
    return components_touching(candidates, region)


def _reaches_edge(region: np.ndarray, box: tuple[int, int, int, int], hw: tuple[int, int]) -> bool:
    """True when `region` touches a side of `box` that is not the image's own."""
    x0, y0, x1, y1 = box
    return bool((x0 > 0 and region[y0:y1, x0].any()) or (y0 > 0 and region[y0, x0:x1].any())
                or (x1 < hw[1] and region[y0:y1, x1 - 1].any()) or (y1 < hw[0] and region[y1 - 1, x0:x1].any()))


def _widened(box: tuple[int, int, int, int], hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) widened on each side by its longer side, within the image."""
    x0, y0, x1, y1 = box
    pad = max(x1 - x0, y1 - y0)
    return max(0, x0 - pad), max(0, y0 - pad), min(hw[1], x1 + pad), min(hw[0], y1 + pad)

