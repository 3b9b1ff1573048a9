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
On an upscaled figure the noise is the figure's own too, laid on the working size (`figure_noise`).

A copy pasted whole (shifted, mirrored or turned by quarter turns) into a figure saved without loss
repeats its source's pixels exactly, noise or none: the smooth body of a pasted tower, the plain
stretch of a panel cut from a photo whose compression had already smoothed it. Such copies are
grown too, at the figure's own size, over the pixels that equal their preimage (`grown_exactly`).
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from .config import ExtentParams
from .exact import ORIENTATIONS, fine_grain
from .keypoint import CopyMoveInstance, VerifiedCopy, WorkingImage, apply_transform, invert, local_ncc, overlaps_itself
from .masks import bounding_box, components_touching, dilated, disc, union, warp_mask

MIN_NOISE_STD = 0.1  # in units of the noise's local spread (fine_grain's): windows with less have no noise to compare
MAX_ROUNDS = 4  # rounds of growth, each looking as far again as the copy is wide
SPECKLE = 3  # disc opened away from the agreeing pixels: single pixels that agree by chance
# grown_exactly: a transform whose linear part lies within MAX_SNAP of a quarter turn or mirror is laid on whole
# pixels, at the rounded shift or one pixel off (refinement wobbles). A pixel repeats its preimage exactly when
# a whole EXACT_WINDOW around it does, and that window holds more than one grey level: single pixels and flat
# stretches repeat by chance.
MAX_SNAP = 0.05
EXACT_WINDOW = 5
EXACT_KERNEL = np.ones((EXACT_WINDOW, EXACT_WINDOW), np.uint8)
JPEG_BLOCK = 8
# Share of the instance's pixels (source and copies) that must repeat exactly under the laid transform: on CVIP's
# translated copies 0.29 to 0.50 (the copy's half, less what spills over its edge), on its other events 0.01 at most.
MIN_EXACT_SHARE = 0.1


def figure_noise(gray: np.ndarray, work: WorkingImage) -> np.ndarray | None:
    """The figure's noise (`fine_grain` of `gray`) laid on the working size, where the figure was
    upscaled to it; None where it was not, and the growth takes the working image's own.

    Upscaling smooths a noise of a grey level or two (a dark fluorescence background, a faint gel)
    into steps too small for the median to leave: on a validation figure worked on at 1.25 times its
    size, 16 % of a pasted dark panel's pixels kept any noise at the working size, 51 % at its own.
    """
    if work.pixel == 1.0:
        return None
    return cv2.resize(fine_grain(gray), work.shape[::-1], interpolation=cv2.INTER_LINEAR)


def grown(work: WorkingImage, copy: VerifiedCopy, params: ExtentParams,
          noise: np.ndarray | None = None) -> VerifiedCopy:
    """The copy grown over the pixels joined to it whose noise repeats its source's, and its source
    with it; the copy unchanged if the grown one would lie mostly on its own source.

    Each round looks only as far as the copy's own size beyond its box on each side, at that
    stretch and its source's (the noise of a whole megapixel figure would cost more than the rest
    of the growth), and another round follows while the copy reaches the edge of that stretch: a
    lamp found on a plain tower reaches down the tower in two or three rounds. `noise` is the
    figure's (`figure_noise`), where it was upscaled.
    """
    region = copy.copy
    for _ in range(MAX_ROUNDS):
        box = _widened(bounding_box(region, pad=0), work.shape)
        region = _grown_within(work, region, copy.transform, box, params, noise)
        if not _reaches_edge(region[box[1]:box[3], box[0]:box[2]], box, work.shape):
            break
    source = warp_mask(region, invert(copy.transform))
    if overlaps_itself(source, region):
        return copy
    return dataclasses.replace(copy, copy=region, source=source)


def _grown_within(work: WorkingImage, region: np.ndarray, transform: np.ndarray, box: tuple[int, int, int, int],
                  params: ExtentParams, noise: np.ndarray | None) -> np.ndarray:
    """`region` and the pixels of `box` joined to it whose noise repeats that of their preimage under `transform`."""
    height, width = work.shape
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], np.float64)
    preimage = apply_transform(invert(transform), corners)
    u0, v0 = np.maximum(np.floor(preimage.min(axis=0)).astype(int) - 1, 0)
    u1, v1 = np.minimum(np.ceil(preimage.max(axis=0)).astype(int) + 2, (width, height))
    if u1 <= u0 or v1 <= v0:
        return region
    # The source's noise, laid on the box: box pixel p is figure pixel p + (x0, y0), whose
    # preimage lies in the source's box at T^-1(p + (x0, y0)) - (u0, v0).
    between = _between(invert(transform), (x0, y0), (u0, v0))
    source_noise = cv2.warpAffine(_noise_in(work, noise, (u0, v0, u1, v1)), between, (x1 - x0, y1 - y0),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    # An upscaled figure spreads its noise over several working pixels: the window spans as many figure pixels.
    window = round(params.window * work.pixel) | 1
    with np.errstate(invalid="ignore"):
        agree = local_ncc(_noise_in(work, noise, box), source_noise, window, MIN_NOISE_STD) >= params.min_ncc
    candidates = region.copy()
    candidates[y0:y1, x0:x1] |= cv2.morphologyEx(agree.astype(np.uint8), cv2.MORPH_OPEN, disc(SPECKLE)) > 0
    return components_touching(candidates, region)


def _noise_in(work: WorkingImage, noise: np.ndarray | None, box: tuple[int, int, int, int]) -> np.ndarray:
    """The noise of `box` (x0, y0, x1, y1): cut from the figure's where it is given, else the working
    image's, computed for the box alone (the noise of a whole megapixel figure would cost more than the growth)."""
    x0, y0, x1, y1 = box
    return fine_grain(work.gray8[y0:y1, x0:x1]) if noise is None else np.ascontiguousarray(noise[y0:y1, x0:x1])


def _reaches_edge(local: np.ndarray, box: tuple[int, int, int, int], hw: tuple[int, int], margin: int = 1) -> bool:
    """True when `local` (a mask cut to `box`) comes within `margin` pixels of a side of `box` that
    is not the image's own."""
    x0, y0, x1, y1 = box
    return bool((x0 > 0 and local[:, :margin].any()) or (y0 > 0 and local[:margin].any())
                or (x1 < hw[1] and local[:, -margin:].any()) or (y1 < hw[0] and local[-margin:].any()))


def _widened(box: tuple[int, int, int, int], hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) widened on each side by its longer side, within the image."""
    x0, y0, x1, y1 = box
    pad = max(x1 - x0, y1 - y0)
    return max(0, x0 - pad), max(0, y0 - pad), min(hw[1], x1 + pad), min(hw[0], y1 + pad)


def grown_exactly(gray: np.ndarray, instance: CopyMoveInstance, spill: int) -> CopyMoveInstance:
    """The instance grown over the pixels joined to it that repeat their preimage exactly under one
    of its transforms laid on whole pixels (and over those preimages), and cleared of the pixels
    within `spill` of them that repeat under none: the paths' windows, cleaning and growth spill a
    few pixels over a copy's edge, and an exact copy shows where its edge lies. Unchanged where
    no transform repeats its pixels exactly (a rescaled or turned copy, a figure compressed after
    the paste). `gray` is the uint8 figure at the instance's size.

    The event's other copies are never cleared: beside an exact copy, a copy of the same source
    retouched in brightness, turned or rescaled repeats nothing, and a lane pasted next to its
    exact twin lies within `spill` of it (validation figure 10175: oF1 0.958 -> 0.880 when it was
    cleared). They are the copies of the transforms that are not laid and map the event mostly
    off its exact parts (`copy_elsewhere`; a transform that maps it onto them is a refinement
    that bent an exact copy off its axes).
    """
    mask = instance.mask
    snapped = [on_whole_pixels(gray, t, mask) for t in instance.transforms]
    laid = {tuple(t.ravel()): t for t in snapped if t is not None}
    if not laid:
        return instance
    box, parts, repeating = exact_parts(gray, mask, list(laid.values()), margin=spill + 2 * EXACT_WINDOW)
    x0, y0, x1, y1 = box
    found = mask[y0:y1, x0:x1]
    exact = union(parts, found.shape)
    # On the JPEG grid, a figure compressed after the paste repeats the copy's inner blocks exactly
    # and not those astride its edge: there, what does not repeat may still have been copied.
    if any(on_jpeg_grid(t) for t in laid.values()):
        kept = found | exact
    else:
        elsewhere = [copy_elsewhere(_between(t, box[:2], box[:2]), found, exact)
                     for t, snap in zip(instance.transforms, snapped) if snap is None]
        retouched = union([copy for copy in elsewhere if copy is not None], found.shape)
        # Each part dilated in its own box: a copy and its far-away source would sweep the stretch between them.
        beside = union([dilated(part, spill) for part in parts]) & ~repeating & ~retouched
        kept = (found | exact) & ~beside
    grown_mask = np.zeros_like(mask)
    grown_mask[y0:y1, x0:x1] = kept
    return dataclasses.replace(instance, mask=grown_mask)


def exact_parts(gray: np.ndarray, mask: np.ndarray, laid: list[np.ndarray],
                margin: int) -> tuple[tuple[int, int, int, int], list[np.ndarray], np.ndarray]:
    """A box (x0, y0, x1, y1) around `mask` and, within it, the exact parts of the event: for each
    whole-pixel transform in `laid`, the pixels joined to `mask` that repeat their preimage exactly
    under it, and those preimages; and the pixels that repeat under any of them, flat or not, or
    whose image does, complete `margin` pixels inside the box.

    The box is widened while an exact part comes within `margin` of its edge or its preimage leaves
    it: over a whole 15-megapixel figure, each transform's pixel maps and windows cost a second.
    """
    box = bounding_box(mask, pad=margin)
    while True:
        pairs, repeating = _exact_pairs_within(gray, mask, laid, box)
        parts = [part for pair in pairs for part in pair if part.any()]
        # A whole-pixel transform maps pixels one to one: a preimage smaller than its copy left the box.
        whole = all(copied.sum() == preimage.sum() for copied, preimage in pairs)
        if box == (0, 0, gray.shape[1], gray.shape[0]) or (
                whole and not any(_reaches_edge(part, box, gray.shape, margin) for part in parts)):
            return box, parts, repeating
        box = _widened(box, gray.shape)


def _exact_pairs_within(gray: np.ndarray, mask: np.ndarray, laid: list[np.ndarray],
                        box: tuple[int, int, int, int]) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """`exact_parts` worked out within `box` alone, in its coordinates: each transform's exact copy
    and its preimage, and what repeats."""
    x0, y0, x1, y1 = box
    varied, found = varied_windows(gray[y0:y1, x0:x1]), mask[y0:y1, x0:x1]
    pairs, repeating = [], np.zeros_like(found)
    for transform in laid:
        same = equal_to_preimage(gray, transform, box)
        backward = invert(_between(transform, box[:2], box[:2]))
        copied = components_touching(exact_region(varied, same), found)
        pairs.append((copied, warp_mask(copied, backward)))
        repeats = repeating_region(same)
        repeating |= repeats | warp_mask(repeats, backward)
    return pairs, repeating


def _between(transform: np.ndarray, source_corner, target_corner) -> np.ndarray:
    """`transform` from the pixels of a crop whose corner is `source_corner` (x, y) to those of a crop
    whose corner is `target_corner`."""
    local = transform.copy()
    local[:, 2] += transform[:, :2] @ np.asarray(source_corner, np.float64) - np.asarray(target_corner, np.float64)
    return local


def copy_elsewhere(transform: np.ndarray, mask: np.ndarray, exact: np.ndarray) -> np.ndarray | None:
    """What `transform` maps within `mask` (its copy there) where most of it lies outside `exact`:
    another copy of the event, not the exact one's refinement wobbling; None otherwise."""
    copy = mask & warp_mask(mask, transform)
    return copy if (copy & ~exact).sum() > 0.5 * copy.sum() else None


def on_jpeg_grid(laid: np.ndarray) -> bool:
    """True when the whole-pixel transform maps JPEG's 8x8 blocks onto blocks: a block and its image
    then decode alike, copied or not."""
    corners = laid[:, :2] @ np.array([[0, JPEG_BLOCK - 1], [0, JPEG_BLOCK - 1]]) + laid[:, 2:]
    return bool((corners.min(axis=1) % JPEG_BLOCK == 0).all())


def on_whole_pixels(gray: np.ndarray, transform: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """`transform` as a quarter turn or mirror and a whole-pixel shift: the one, among the rounded
    shift and its neighbours, under which the largest share of `mask` repeats exactly, if that
    share reaches MIN_EXACT_SHARE; None otherwise."""
    turn = next((m for m in ORIENTATIONS if np.abs(transform[:, :2] - m).max() <= MAX_SNAP), None)
    if turn is None:
        return None
    box = bounding_box(mask, pad=EXACT_WINDOW)
    x0, y0, x1, y1 = box
    varied, inside = varied_windows(gray[y0:y1, x0:x1]), mask[y0:y1, x0:x1]
    best, best_share = None, MIN_EXACT_SHARE
    for step in np.ndindex(3, 3):
        laid = np.hstack([turn, np.rint(transform[:, 2:]) + np.array(step)[:, None] - 1]).astype(np.float64)
        share = exact_region(varied, equal_to_preimage(gray, laid, box))[inside].mean()
        if share >= best_share:
            best, best_share = laid, share
    return best


def equal_to_preimage(gray: np.ndarray, laid: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """bool, within `box` (x0, y0, x1, y1): pixels whose grey level is exactly that of their
    preimage under the whole-pixel transform `laid`."""
    height, width = gray.shape
    x0, y0, x1, y1 = box
    # Only the box's preimage is read (widened to int16 for the border value): a small box in a
    # 15-megapixel figure would otherwise convert the whole figure for every transform tried.
    corners = apply_transform(invert(laid), np.array([[x0, y0], [x1 - 1, y1 - 1]], np.float64))
    u0, v0 = np.maximum(np.rint(corners.min(axis=0)).astype(int), 0)
    u1, v1 = np.minimum(np.rint(corners.max(axis=0)).astype(int) + 1, (width, height))
    if u1 <= u0 or v1 <= v0:
        return np.zeros((y1 - y0, x1 - x0), bool)
    local = _between(laid, (u0, v0), (x0, y0))
    # On whole pixels the nearest neighbour is exact; the border value marks preimages outside the figure.
    preimage = cv2.warpAffine(gray[v0:v1, u0:u1].astype(np.int16), local, (x1 - x0, y1 - y0), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    return preimage == gray[y0:y1, x0:x1]


def varied_windows(gray: np.ndarray) -> np.ndarray:
    """bool: the centres of the EXACT_WINDOWs that hold more than one grey level of `gray`."""
    return cv2.dilate(gray, EXACT_KERNEL) > cv2.erode(gray, EXACT_KERNEL)


def exact_region(varied: np.ndarray, same: np.ndarray) -> np.ndarray:
    """The pixels of `same` in an EXACT_WINDOW that lies wholly in `same` and is `varied`
    (`varied_windows`): single pixels and flat stretches repeat by chance."""
    return _around(_whole_windows(same) & varied) & same


def repeating_region(same: np.ndarray) -> np.ndarray:
    """The pixels of `same` in an EXACT_WINDOW that lies wholly in it, flat or not."""
    return _around(_whole_windows(same)) & same


def _whole_windows(same: np.ndarray) -> np.ndarray:
    """The centres of the EXACT_WINDOWs that lie wholly in `same`."""
    return cv2.erode(same.astype(np.uint8), EXACT_KERNEL, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def _around(centres: np.ndarray) -> np.ndarray:
    """The pixels of the EXACT_WINDOWs around `centres`."""
    return cv2.dilate(centres.astype(np.uint8), EXACT_KERNEL) > 0
