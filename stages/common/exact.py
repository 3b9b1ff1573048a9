"""Exact copies: regions pasted elsewhere whole, shifted, mirrored or turned by quarter turns.

A pasted copy repeats its source's fine grain (sensor noise, film grain, compression texture)
over the whole box, smooth parts included: a rectangle of blot, a lane, the empty stretch of a
panel. Things drawn or photographed twice never do. So the grain of a figure, correlated with
itself under each of the eight axis-aligned orientations, peaks at the transform of every such
copy, however large or smooth it is; the FFT gives the correlation at every shift at once.
Keypoints and the dense field miss exactly these copies: they have few corners, and their
look-alikes (the other lanes, the other bands) describe alike.

1. Grain. The image minus its blur, divided by its local spread so that smooth and busy areas
   vote alike, and clipped so that no edge outvotes a region. Flat areas have none.
2. Peaks. For each orientation, the correlation at every shift; local maxima that stand
   `min_peak` robust standard deviations above all shifts are candidate transforms.
3. Regions. For each candidate, the local correlation of the grain with its transformed self;
   where it reaches `ncc_threshold` is the source region.

The proposals are returned at the caller's working size and go through the same verification
as the dense path's (stages/common/copymove.py): a rotated or rescaled copy is the dense and
keypoint paths' to find.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import fft, ndimage

from .config import ExactParams
from .dense import MAX_SELF_OVERLAP, DenseProposal
from .keypoint import clean_mask, homogeneous, local_ncc, scale_matrix, warp_mask

SPREAD_WINDOW = 15  # the grain is divided by its spread over this window ...
NOISE_FLOOR = 0.5  # ... where it is above this many grey levels ...
MIN_NOISY_SHARE = 0.5  # ... and this share of the window's pixels have noise: drawn areas have little
GRAIN_CLIP = 3.0
NCC_WINDOW = 9  # side of the window in which grain and copy are correlated
PEAKS_PER_ORIENTATION = 6
PEAK_SPACING = 5  # a peak is the largest correlation within this many shifts
POINT_AREA = 16  # pixels of region per supporting point, so n_points compares with the dense path's
# The eight ways to lay a picture on its axes: (x, y) -> M (x, y) + shift.
ORIENTATIONS = tuple(np.array(m) for m in ([[1, 0], [0, 1]], [[-1, 0], [0, 1]], [[1, 0], [0, -1]],
                                           [[-1, 0], [0, -1]], [[0, 1], [1, 0]], [[0, -1], [1, 0]],
                                           [[0, 1], [-1, 0]], [[0, -1], [-1, 0]]))


def exact_proposals(gray: np.ndarray, work_hw: tuple[int, int], min_displacement: float,
                    params: ExactParams) -> list[DenseProposal]:
    """Copies in the uint8 image `gray` that carry their source's grain, at the working size
    `work_hw`; `min_displacement` is in working pixels. [] when the path is disabled."""
    if not params.enabled:
        return []
    scale = min(1.0, float(np.sqrt(params.max_pixels / gray.size)))
    small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grain = fine_grain(small)
    to_work = scale_matrix(work_hw, small.shape)
    reach = min_displacement / to_work[0, 0]
    proposals = []
    for m in ORIENTATIONS:
        oriented, shift = orient(grain, m)
        for d in correlation_peaks(grain, oriented, params.min_peak, reach if shift is None else 0.0):
            transform = np.hstack([m, (m @ d + (0 if shift is None else shift))[:, None]]).astype(np.float64)
            found = copied_source(grain, oriented, d, transform, reach, params)
            if found is not None and not maps_onto_itself(found, transform):
                work_transform = (to_work @ homogeneous(transform) @ np.linalg.inv(to_work))[:2]
                source = cv2.resize(found.astype(np.uint8), work_hw[::-1], interpolation=cv2.INTER_NEAREST) > 0
                proposals.append(DenseProposal(transform=work_transform, source=source,
                                               n_points=int(found.sum()) // POINT_AREA))
    return proposals


def maps_onto_itself(source: np.ndarray, transform: np.ndarray) -> bool:
    """A region laid mostly onto itself is a symmetric object or a texture, not a copy."""
    copy = warp_mask(source, transform)
    return (copy & source).sum() > MAX_SELF_OVERLAP * min(copy.sum(), source.sum())


def fine_grain(gray: np.ndarray) -> np.ndarray:
    """The noise of the imaged areas, in units of its local spread, clipped; 0 elsewhere.

    What a 3x3 median removes is noise: a median keeps edges and smooth shading, so a band's
    outline or a panel's border leaves nothing. A drawn area (a label, a scale bar, a margin) is
    flat but for its strokes, so few of its pixels have any noise; it is left out, or every
    repeated letter would be a copy.
    """
    image = gray.astype(np.float32)
    noise = image - cv2.medianBlur(gray, 3).astype(np.float32)
    window = (SPREAD_WINDOW, SPREAD_WINDOW)
    spread = np.sqrt(cv2.blur(noise * noise, window, borderType=cv2.BORDER_REFLECT))
    noisy_share = cv2.blur((np.abs(noise) >= NOISE_FLOOR).astype(np.float32), window, borderType=cv2.BORDER_REFLECT)
    imaged = (noisy_share >= MIN_NOISY_SHARE) & (spread >= NOISE_FLOOR)
    normalised = np.where(imaged, noise / np.maximum(spread, NOISE_FLOOR), 0.0)
    return np.clip(normalised, -GRAIN_CLIP, GRAIN_CLIP).astype(np.float32)


def orient(grain: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The grain laid by orientation `m`, with the shift t such that oriented(u) = grain(m u + t);
    None for the identity, whose correlation with itself has its own rules (see correlation_peaks)."""
    if (m == np.eye(2)).all():
        return grain, None
    h, w = grain.shape
    out_w, out_h = np.abs(m.T @ [w - 1, h - 1]).astype(int) + 1
    corners = np.array([[0, out_w - 1, 0, out_w - 1], [0, 0, out_h - 1, out_h - 1]])
    shift = -(m @ corners).min(axis=1)
    ys, xs = np.mgrid[:out_h, :out_w]
    mapped = m @ np.stack([xs.ravel(), ys.ravel()])
    x, y = mapped + shift[:, None]
    return grain[y, x].reshape(out_h, out_w), shift


def correlation_peaks(grain: np.ndarray, oriented: np.ndarray, min_peak: float, reach: float) -> list[np.ndarray]:
    """Shifts d (x, y), strongest first, at which sum_x grain(x) * oriented(x + d) stands out.

    `reach` > 0 marks the grain against itself: shifts shorter than it are the image itself, and
    d and -d are one pair, so only one of them is returned.
    """
    (h, w), (oh, ow) = grain.shape, oriented.shape
    size = (fft.next_fast_len(h + oh), fft.next_fast_len(w + ow))
    spectrum = np.conj(fft.rfft2(grain, size, workers=1)) * fft.rfft2(oriented, size, workers=1)
    corr = np.fft.fftshift(fft.irfft2(spectrum, size, workers=1))
    dy, dx = np.mgrid[:size[0], :size[1]]
    dy, dx = dy - size[0] // 2, dx - size[1] // 2
    if reach > 0:
        corr[(np.hypot(dx, dy) < reach) | (dy < 0) | ((dy == 0) & (dx < 0))] = 0.0
    centre = np.median(corr)
    spread = 1.4826 * np.median(np.abs(corr - centre)) + 1e-9
    z = (corr - centre) / spread
    peaks = (z >= min_peak) & (z == ndimage.maximum_filter(z, PEAK_SPACING))
    rows, cols = np.nonzero(peaks)
    best = np.argsort(-z[rows, cols], kind="stable")[:PEAKS_PER_ORIENTATION]
    return [np.array([dx[r, c], dy[r, c]]) for r, c in zip(rows[best], cols[best])]


def copied_source(grain: np.ndarray, oriented: np.ndarray, d: np.ndarray, transform: np.ndarray, reach: float,
                  params: ExactParams) -> np.ndarray | None:
    """The pixels x whose grain the oriented grain repeats at x + d, as a cleaned mask; None if too few.

    Pixels that `transform` moves less than `reach` are left out: near the axis of a mirror or the
    centre of a turn, a pixel's neighbours stand in for its copy.
    """
    h, w = grain.shape
    moved = np.zeros_like(grain)
    ys, xs = slice(max(0, -d[1]), min(h, oriented.shape[0] - d[1])), slice(max(0, -d[0]), min(w, oriented.shape[1] - d[0]))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return None
    moved[ys, xs] = oriented[ys.start + d[1]:ys.stop + d[1], xs.start + d[0]:xs.stop + d[0]]
    ncc = local_ncc(grain, moved, NCC_WINDOW, 0.1)
    yy, xx = np.mgrid[:h, :w]
    moves = np.hypot(*(np.tensordot(transform[:, :2] - np.eye(2), [xx, yy], axes=1) + transform[:, 2, None, None]))
    with np.errstate(invalid="ignore"):
        region = clean_mask((ncc >= params.ncc_threshold) & (moves >= reach), params.min_region_area)
    return region if region.any() else None
