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
from scipy import fft
from scipy.spatial import cKDTree

from .config import ExactParams
from .dense import DenseProposal
from .keypoint import homogeneous, local_ncc, overlaps_itself, scale_matrix, window_mean, window_moments
from .masks import CLEAN_REACH, clean_mask, components_of_area, pixels, warp_mask

SPREAD_WINDOW = 15  # the grain is divided by its spread over this window ...
NOISE_FLOOR = 0.5  # ... where it is above this many grey levels ...
MIN_NOISY_SHARE = 0.5  # ... and this share of the window's pixels have noise: drawn areas have little
OVERLAY_MARGIN = 2  # pixels around pure black or white that count as drawn over the picture
MIN_MARK = 6  # pure pixels joined in a mark drawn over the picture ...
NEAR_END = 16  # ... or fewer, where the picture around them (its 5x5 median) lies this near that end: its own noise
GRAIN_CLIP = 3.0
STROKE_LEVELS = 12.0  # a residual this many times its surroundings' median |residual| is a drawn stroke
NCC_WINDOW = 9  # side of the window in which grain and copy are correlated
PEAKS_PER_ORIENTATION = 6
PEAK_SPACING = 5  # a peak is the largest correlation within this many shifts
POINT_AREA = 16  # pixels of region per supporting point, so n_points compares with the dense path's
BLOCK = 6  # side of the blocks matched one by one, for copies too small to raise a correlation peak
BLOCK_MIN_STD = 4.0  # grey levels off the block's plane: flatter blocks say nothing about where they came from
MAX_BLOCKS = 120_000  # textured blocks looked up, evenly spread over the image
KEY_DIMS = 12  # principal components of a block's key ...
KEY_DISTANCE = 0.05  # ... and how near a key must be for the block to be compared in full
LOOKUP_DIMS = 8  # the leading components the KD-tree searches: in all 12 it visits twice the leaves ...
LOOKUPS = 6  # ... for this many nearest keys, those within KEY_DISTANCE in all 12 then compared in full
MATCH_DISTANCE = 0.2  # between unit-norm blocks (a correlation of 0.98)
MIN_BLOCK_VOTES = 8  # block pairs that must agree on one transform
MAX_BLOCK_CANDIDATES = 12
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
    oriented = [orient(grain, m) for m in ORIENTATIONS]
    # The eight orientations come in two shapes, so at most two FFT sizes: the grain's spectrum at each serves four.
    sizes = [padded_size(grain.shape, image.shape) for image, _ in oriented]
    spectra = {size: np.conj(fft.rfft2(grain, size, workers=1)) for size in set(sizes)}
    candidates = {(o, tuple(d)) for o, ((image, shift), size) in enumerate(zip(oriented, sizes))
                  for d in correlation_peaks(spectra[size], size, image, params.min_peak, reach if shift is None else 0.0)}
    candidates |= {(o, tuple(ORIENTATIONS[o].T @ (b - _shift(oriented[o][1])))) for o, b in block_matches(small, reach)}
    moments = window_moments(grain, NCC_WINDOW)  # every candidate correlates with the same grain
    proposals = []
    for o, d in sorted(candidates):
        (image, shift), m, d = oriented[o], ORIENTATIONS[o], np.array(d)
        transform = np.hstack([m, (m @ d + _shift(shift))[:, None]]).astype(np.float64)
        found = copied_source(grain, moments, image, d, transform, reach, params)
        if found is not None and not overlaps_itself(found, warp_mask(found, transform)):
            work_transform = (to_work @ homogeneous(transform) @ np.linalg.inv(to_work))[:2]
            source = cv2.resize(found.astype(np.uint8), work_hw[::-1], interpolation=cv2.INTER_NEAREST) > 0
            proposals.append(DenseProposal(transform=work_transform, source=source,
                                           n_points=int(found.sum()) // POINT_AREA))
    return proposals


def _shift(shift: np.ndarray | None) -> np.ndarray:
    return np.zeros(2, int) if shift is None else shift


def block_matches(gray: np.ndarray, reach: float) -> list[tuple[int, np.ndarray]]:
    """(orientation index, b): transforms x -> M x + b that many small blocks agree on exactly.

    Correlation peaks need a copy of some size; a pasted cell of 15 px is found block by block.
    Each textured BLOCK x BLOCK block, less its plane (detrended) and at unit norm, is looked up by a key
    that no reorientation changes (orientation_free_keys); the nearest few are then compared
    under each orientation, and a pair within MATCH_DISTANCE votes for the transform that maps
    one onto the other. Exact copies agree to rounding; look-alikes differ by their own noise.
    """
    blocks = np.lib.stride_tricks.sliding_window_view(gray.astype(np.float32), (BLOCK, BLOCK))
    rows, cols = np.mgrid[:blocks.shape[0], :blocks.shape[1]]
    spread = detrended_spread(gray).ravel()
    # A block is drawn on where any of its pixels is: the overlay dilated towards each block's top-left corner.
    drawn = cv2.dilate(overlay(gray).astype(np.uint8), np.ones((BLOCK, BLOCK), np.uint8), anchor=(0, 0))
    drawn = drawn[:1 - BLOCK, :1 - BLOCK].ravel() > 0
    keep = np.flatnonzero((spread >= BLOCK_MIN_STD) & ~drawn)
    if len(keep) > MAX_BLOCKS:
        keep = keep[np.linspace(0, len(keep) - 1, MAX_BLOCKS).astype(int)]
    if len(keep) < 2:
        return []
    # Only the kept blocks are copied out of the window view: reshaping the view copies them all.
    kept_rows, kept_cols = rows.ravel()[keep], cols.ravel()[keep]
    unit = detrended(blocks[kept_rows, kept_cols].reshape(-1, BLOCK * BLOCK)) / (spread[keep, None] * BLOCK)
    centres = np.stack([kept_cols, kept_rows], axis=1) + (BLOCK - 1) / 2
    keys = orientation_free_keys(unit)
    # Every block is in the tree, every other row and column asks it: a copy of any shift still
    # has most of its blocks asked, at a quarter of the cost.
    asking = np.flatnonzero((kept_rows % 2 == 0) & (kept_cols % 2 == 0))
    lookup = keys[:, :LOOKUP_DIMS]
    dist, near = cKDTree(lookup, balanced_tree=False).query(lookup[asking], k=LOOKUPS + 1, distance_upper_bound=KEY_DISTANCE)
    query = np.broadcast_to(asking[:, None], near.shape)
    found = np.isfinite(dist) & (near != query)
    i, j = query[found], near[found]
    apart = np.linalg.norm(centres[i] - centres[j], axis=1) >= reach
    alike = np.linalg.norm(keys[i] - keys[j], axis=1) <= KEY_DISTANCE
    i, j = i[apart & alike], j[apart & alike]
    votes = []  # (orientation, bx, by) of every agreeing pair
    for o, permutation in enumerate(BLOCK_PERMUTATIONS):
        close = np.linalg.norm(unit[j] - unit[i][:, permutation], axis=1) <= MATCH_DISTANCE
        b = np.round(centres[j[close]] - centres[i[close]] @ ORIENTATIONS[o].T).astype(int)
        votes.append(np.column_stack([np.full(len(b), o), b]))
    keys, counts = np.unique(np.vstack(votes), axis=0, return_counts=True)
    # Most votes first; ties broken by the key, highest first.
    order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0], counts))[::-1]
    best = [k for k in order if counts[k] >= MIN_BLOCK_VOTES][:MAX_BLOCK_CANDIDATES]
    return [(int(keys[k, 0]), keys[k, 1:]) for k in best]


def fine_grain(gray: np.ndarray) -> np.ndarray:
    """The noise of the imaged areas, in units of its local spread, clipped; 0 elsewhere.

    What a 3x3 median removes is noise: a median keeps edges and smooth shading, so a band's
    outline or a panel's border leaves nothing. A drawn area (a label, a scale bar, a margin) is
    flat but for its strokes, so few of its pixels have any noise; it is left out, or every
    repeated letter would be a copy.
    """
    image = gray.astype(np.float32)
    noise = image - cv2.medianBlur(gray, 3).astype(np.float32)
    noise[strokes(noise)] = 0.0
    spread = np.sqrt(window_mean(noise * noise, SPREAD_WINDOW))
    noisy_share = window_mean((np.abs(noise) >= NOISE_FLOOR).astype(np.float32), SPREAD_WINDOW)
    imaged = (noisy_share >= MIN_NOISY_SHARE) & (spread >= NOISE_FLOOR) & ~overlay(gray)
    normalised = np.where(imaged, noise / np.maximum(spread, NOISE_FLOOR), 0.0)
    return np.clip(normalised, -GRAIN_CLIP, GRAIN_CLIP).astype(np.float32)


def strokes(noise: np.ndarray) -> np.ndarray:
    """Pixels whose residual stands far above the noise around them, and their neighbours.

    A thin line or an antialiased letter is what a 3x3 median removes whole, so its residual is
    its stroke, not noise, and every repetition of the letter would repeat it. Noise is measured
    robustly (the local median of |residual|), so the strokes do not raise it.
    """
    magnitude = np.abs(noise)
    # In quarter grey levels: cv2's large median takes uint8, and whole levels are too coarse for faint noise.
    quarters = np.minimum(np.rint(4 * magnitude), 255).astype(np.uint8)
    level = np.maximum(cv2.medianBlur(quarters, SPREAD_WINDOW).astype(np.float32) / 4, NOISE_FLOOR)
    far = (magnitude > STROKE_LEVELS * level).astype(np.uint8)
    return cv2.dilate(far, np.ones((3, 3), np.uint8)) > 0


def overlay(gray: np.ndarray) -> np.ndarray:
    """Pixels at or next to pure black or white drawn over the picture: scale bars, arrows and
    lettering are drawn in them, and every panel's bar is the same pixels.

    A pure pixel is the picture's own where it lies scattered (fewer than MIN_MARK joined) in a
    picture that is itself within NEAR_END grey levels of that end: a dark fluorescence ground
    touches 0 here and there through its noise, and counted as drawn those pixels would take the
    noise around them along (on a validation figure, 2 % of a dark panel's pixels at 0 marked 40 %
    of the panel as drawn). Thin lettering breaks into pieces of a few pure pixels too, but on a
    ground far from its end.
    """
    pure = (gray == 0) | (gray == 255)
    scattered = pure & ~components_of_area(pure.astype(np.uint8), MIN_MARK)
    near_end = np.abs(cv2.medianBlur(gray, 5).astype(np.int16) - gray) <= NEAR_END
    drawn = pure & ~(scattered & near_end)
    return cv2.dilate(drawn.astype(np.uint8), np.ones((2 * OVERLAY_MARGIN + 1,) * 2, np.uint8)) > 0


def orient(grain: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The grain laid by orientation `m`, with the shift t such that oriented(u) = grain(m u + t);
    None for the identity, whose correlation with itself has its own rules (see correlation_peaks)."""
    if (m == np.eye(2)).all():
        return grain, None
    # Each orientation flips the grain's axes, after exchanging them where m does: slicing lays
    # it out in one copy, where looking every pixel up through m took thirty times as long.
    laid = grain if m[0, 0] else grain.T
    oriented = np.ascontiguousarray(laid[::m[0, 1] + m[1, 1], ::m[0, 0] + m[1, 0]])
    out_h, out_w = oriented.shape
    corners = np.array([[0, out_w - 1, 0, out_w - 1], [0, 0, out_h - 1, out_h - 1]])
    return oriented, -(m @ corners).min(axis=1)


def padded_size(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """The FFT size at which two images correlate at every shift without wrapping around."""
    return fft.next_fast_len(a[0] + b[0]), fft.next_fast_len(a[1] + b[1])


def correlation_peaks(grain_spectrum: np.ndarray, size: tuple[int, int], oriented: np.ndarray, min_peak: float,
                      reach: float) -> list[np.ndarray]:
    """Shifts d (x, y), strongest first, at which sum_x grain(x) * oriented(x + d) stands out;
    `grain_spectrum` is the grain's conjugate spectrum at `size`, the grain's and `oriented`'s padded_size.

    `reach` > 0 marks the grain against itself: shifts shorter than it are the image itself, and
    d and -d are one pair, so only one of them is returned.
    """
    spectrum = grain_spectrum * fft.rfft2(oriented, size, workers=1)
    corr = np.fft.fftshift(fft.irfft2(spectrum, size, workers=1)).astype(np.float32)
    if reach > 0:
        leave_out_own_shifts(corr, reach)
    sample = corr[::4, ::4]  # the robust statistics of 1 shift in 16 are those of all of them
    centre = np.median(sample)
    spread = 1.4826 * np.median(np.abs(sample - centre)) + 1e-9
    z = (corr - centre) / spread
    peaks = (z >= min_peak) & (z == cv2.dilate(z, np.ones((PEAK_SPACING, PEAK_SPACING), np.uint8)))
    x, y = pixels(peaks)
    best = np.argsort(-z[y, x], kind="stable")[:PEAKS_PER_ORIENTATION]
    zero_shift = np.array([size[1] // 2, size[0] // 2])  # where fftshift put it
    return [np.array([x[i], y[i]]) - zero_shift for i in best]


def leave_out_own_shifts(corr: np.ndarray, reach: float) -> None:
    """Zero, in the grain's fftshifted correlation with itself, the shifts shorter than `reach`
    and one of each pair d, -d (those with dy < 0, or dy = 0 and dx < 0): only the disc of
    short shifts is measured, not every shift."""
    cy, cx = corr.shape[0] // 2, corr.shape[1] // 2
    corr[:cy] = 0.0
    corr[cy, :cx] = 0.0
    r = int(np.ceil(reach))
    below, left, right = min(r, corr.shape[0] - 1 - cy), min(r, cx), min(r, corr.shape[1] - 1 - cx)
    dy, dx = np.mgrid[:below + 1, -left:right + 1]
    corr[cy:cy + below + 1, cx - left:cx + right + 1][np.hypot(dx, dy) < reach] = 0.0


def copied_source(grain: np.ndarray, moments: tuple[np.ndarray, np.ndarray], oriented: np.ndarray, d: np.ndarray,
                  transform: np.ndarray, reach: float, params: ExactParams) -> np.ndarray | None:
    """The pixels x whose grain the oriented grain repeats at x + d, as a cleaned mask; None if too few.
    `moments` are the grain's window_moments over NCC_WINDOW.

    Pixels that `transform` moves less than `reach` are left out: near the axis of a mirror or the
    centre of a turn, a pixel's neighbours stand in for its copy.
    """
    h, w = grain.shape
    ys, xs = slice(max(0, -d[1]), min(h, oriented.shape[0] - d[1])), slice(max(0, -d[0]), min(w, oriented.shape[1] - d[0]))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return None
    # Only where the grain and its moved self overlap can they agree, so all the work is done on
    # the overlap and a margin around it: every window that touches the overlap is whole within
    # a window's width, beyond which the moved grain is 0 in the crop as in the image (so the
    # grain's own moments, taken over the whole image, serve in the crop); and the cleaning
    # changes nothing further than its reach from the pixels that agree.
    margin = NCC_WINDOW + CLEAN_REACH
    y0, y1 = max(0, ys.start - margin), min(h, ys.stop + margin)
    x0, x1 = max(0, xs.start - margin), min(w, xs.stop + margin)
    moved = np.zeros((y1 - y0, x1 - x0), grain.dtype)
    moved[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] = \
        oriented[ys.start + d[1]:ys.stop + d[1], xs.start + d[0]:xs.stop + d[0]]
    with np.errstate(invalid="ignore"):
        crop_moments = tuple(moment[y0:y1, x0:x1] for moment in moments)
        agree = (local_ncc(grain[y0:y1, x0:x1], moved, NCC_WINDOW, 0.1, crop_moments) >= params.ncc_threshold)
    agree = agree.astype(np.uint8)
    # Chance agreement is scattered and one opening removes it; most candidates end here, cheaply.
    if cv2.morphologyEx(agree, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).sum() < params.min_region_area:
        return None
    cols, rows = pixels(agree)
    near = np.hypot(*((transform[:, :2] - np.eye(2)) @ [cols + x0, rows + y0] + transform[:, 2:])) < reach
    agree[rows[near], cols[near]] = 0
    cleaned = clean_mask(agree.astype(bool), params.min_region_area)
    if not cleaned.any():
        return None
    region = np.zeros(grain.shape, bool)
    region[y0:y1, x0:x1] = cleaned
    return region


def detrended(flat: np.ndarray) -> np.ndarray:
    """Flattened blocks less their mean and their best-fitting plane: on a smooth slope every
    block is the same ramp, and only what is left over (texture, noise) tells blocks apart."""
    centred = flat - flat.mean(axis=1, keepdims=True)
    return centred - (centred @ BLOCK_PLANE.T) @ BLOCK_PLANE


def detrended_spread(gray: np.ndarray) -> np.ndarray:
    """The standard deviation of every BLOCK x BLOCK block less its plane (that of `detrended`),
    indexed by the block's top-left corner, from sums over sliding windows: flattening every
    block of the image first would cost more than all the rest of the lookup.

    The planes are orthonormal and sum to zero, so the detrended energy is the block's energy
    less its mean's and its projections on the two planes'.
    """
    image = gray.astype(np.float64)

    def window_sum(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)[:1 - BLOCK, :1 - BLOCK]

    ones = np.ones((BLOCK, BLOCK))
    energy = window_sum(image * image, ones) - window_sum(image, ones) ** 2 / BLOCK**2
    for plane in BLOCK_PLANE:
        energy -= window_sum(image, plane.reshape(BLOCK, BLOCK).astype(np.float64)) ** 2
    return np.sqrt(np.maximum(energy, 0.0) / BLOCK**2).astype(np.float32)


def _block_plane() -> np.ndarray:
    """The two unit ramps (along x, along y) of a flattened block, centred on it."""
    ys, xs = np.mgrid[:BLOCK, :BLOCK]
    plane = np.stack([xs.ravel() - (BLOCK - 1) / 2, ys.ravel() - (BLOCK - 1) / 2]).astype(np.float32)
    return plane / np.linalg.norm(plane, axis=1, keepdims=True)


def orientation_free_keys(unit: np.ndarray) -> np.ndarray:
    """A key of each flattened block that the eight orientations leave alone: the values of each
    ring of positions that they permute among themselves, sorted, reduced to KEY_DIMS components."""
    keys = np.concatenate([np.sort(unit[:, ring], axis=1) for ring in BLOCK_RINGS], axis=1)
    centred = keys - keys.mean(axis=0)
    _, _, basis = np.linalg.svd(centred[:: max(1, len(keys) // 4096)], full_matrices=False)
    return centred @ basis[:KEY_DIMS].T


def _block_rings() -> tuple[np.ndarray, ...]:
    """Positions of a block grouped by their unordered distances from the centre along x and y."""
    c = (BLOCK - 1) / 2
    ys, xs = np.mgrid[:BLOCK, :BLOCK]
    a, b = np.abs(xs - c).ravel(), np.abs(ys - c).ravel()
    ring = np.minimum(a, b) * BLOCK + np.maximum(a, b)
    return tuple(np.flatnonzero(ring == r) for r in np.unique(ring))


def _block_permutation(m: np.ndarray) -> np.ndarray:
    """Indices that lay a flattened block by orientation m about its centre: laid[u] = block[perm[u]]."""
    c = (BLOCK - 1) / 2
    ys, xs = np.mgrid[:BLOCK, :BLOCK]
    # laid(u) = block(M^-1 u), with M^-1 = M^T for these orientations
    x, y = np.round(m.T @ np.stack([xs.ravel() - c, ys.ravel() - c]) + c).astype(int)
    return y * BLOCK + x


BLOCK_PLANE = _block_plane()
BLOCK_PERMUTATIONS = tuple(_block_permutation(m) for m in ORIENTATIONS)
BLOCK_RINGS = _block_rings()
