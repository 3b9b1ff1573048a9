"""Binary-mask operations the detectors share: boxes, discs, dilation, union, warping, cleaning.

Masks are 2-D bool (or 0/1 uint8) arrays at one image's size. Operations that only change pixels
near a mask work on its bounding box: a copy is often small beside its figure, and whole-figure
morphology for it cost more than the rest of its verification.
"""
from __future__ import annotations

import cv2
import numpy as np

CLOSE_KERNEL, OPEN_KERNEL = 5, 3  # clean_mask: gaps closed and specks opened away at these disc sizes
CLEAN_REACH = CLOSE_KERNEL + OPEN_KERNEL  # clean_mask changes nothing further than this from a mask's pixels
SPARSE_SHARE = 10  # components_of_area lists the pixels of a mask with under one in this many set


def clean_mask(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Close gaps, fill holes (flat cell interiors fail the texture test), open away specks,
    and drop components smaller than `min_area`.

    Only the mask's bounding box, padded beyond the kernels' reach, is worked on: the result is
    the same, and filling holes in a whole image for a small region costs more than the rest.
    """
    cleaned = np.zeros(mask.shape, bool)
    if not mask.any():
        return cleaned
    x0, y0, x1, y1 = bounding_box(mask, pad=CLEAN_REACH)
    cleaned[y0:y1, x0:x1] = _clean_box(mask[y0:y1, x0:x1], min_area)
    return cleaned


def _clean_box(mask: np.ndarray, min_area: int) -> np.ndarray:
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, disc(CLOSE_KERNEL))
    filled = filled_holes(closed)
    opened = cv2.morphologyEx(filled, cv2.MORPH_OPEN, disc(OPEN_KERNEL))
    return components_of_area(opened, min_area)


def components_of_area(mask: np.ndarray, min_area: int) -> np.ndarray:
    """The 8-connected components of the uint8 0/1 mask with at least `min_area` pixels, as a bool mask.

    A sparse mask (the chance agreement the exact path cleans, a pixel in a thousand) is measured
    by listing its pixels: OpenCV's per-component statistics visit every pixel of the box and cost
    3.5 times as much there. A dense one is measured by those statistics, which then cost less.
    """
    if cv2.countNonZero(mask) * SPARSE_SHARE >= mask.size:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_area)
        return np.isin(labels, keep[keep != 0])
    n_labels, labels = cv2.connectedComponents(mask, connectivity=8)
    x, y = pixels(mask)
    label = labels[y, x]
    large = np.bincount(label, minlength=n_labels)[label] >= min_area
    kept = np.zeros(mask.shape, bool)
    kept[y[large], x[large]] = True
    return kept


def pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): the columns and rows of the set pixels of a bool or uint8 mask, row by row as
    np.nonzero lists them, at a tenth of its cost on a megapixel mask; empty for an empty mask."""
    found = cv2.findNonZero(mask.view(np.uint8))
    if found is None:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    x, y = found.reshape(-1, 2).T
    return x, y


def filled_holes(mask: np.ndarray) -> np.ndarray:
    """The uint8 0/1 mask with its holes filled: every background pixel that no 4-connected path
    of background joins to the border (what scipy's binary_fill_holes does, a tenth of its cost)."""
    background = np.pad(mask, 1)
    cv2.floodFill(background, None, (0, 0), 2)
    return (background[1:-1, 1:-1] != 2).astype(np.uint8)


def components_touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[seed & mask])
    return np.isin(labels, touching[touching != 0])


def bounding_box(mask: np.ndarray, pad: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) around the mask's pixels, widened by `pad` within the image; the mask must not be empty."""
    # Row and column reductions, not np.nonzero: verifying a small copy in a large figure would
    # otherwise spend most of its time listing the figure's pixels.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (max(0, cols[0] - pad), max(0, rows[0] - pad), min(w, cols[-1] + 1 + pad), min(h, rows[-1] + 1 + pad))


def disc(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def dilated(mask: np.ndarray, radius: int) -> np.ndarray:
    """bool: the non-empty mask grown by a disc of `radius` pixels.

    Only the mask's bounding box, padded by the radius, can change, and a wide disc costs in
    proportion to the pixels it sweeps: dilating whole figures took a tenth of the detector's
    time in a profile of twelve figures.
    """
    x0, y0, x1, y1 = bounding_box(mask, pad=radius)
    grown = np.zeros(mask.shape, bool)
    grown[y0:y1, x0:x1] = cv2.dilate(mask[y0:y1, x0:x1].astype(np.uint8), disc(2 * radius + 1)) > 0
    return grown


def union(masks: list[np.ndarray], hw: tuple[int, int] | None = None) -> np.ndarray:
    """bool: where any of the masks is set; for no masks, all False of shape `hw` (which must then be given)."""
    return np.logical_or.reduce(masks) if masks else np.zeros(hw, bool)


def warp_mask(mask: np.ndarray, transform: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    return cv2.warpAffine(mask.astype(np.uint8), transform, (w, h), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def merge_overlapping(masks: list[np.ndarray], max_iou: float) -> list[list[int]]:
    """Greedy, best first: a mask overlapping a kept group above `max_iou` joins it; the groups
    hold positions in `masks`.

    Overlap is intersection over the smaller mask, so a detection of one copy inside a
    detection of the whole event joins that event instead of becoming an event of its own.
    """
    groups: list[list[int]] = []
    unions: list[np.ndarray] = []
    for i, m in enumerate(masks):
        for g, u in zip(groups, unions):
            if overlap(m, u) > max_iou:
                g.append(i)
                u |= m
                break
        else:
            groups.append([i])
            unions.append(m.copy())
    return groups


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller mask's area."""
    inter = np.logical_and(a, b).sum()
    return float(inter) / max(1, min(a.sum(), b.sum()))
