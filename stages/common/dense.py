"""Dense copy-move detection: a rotation-invariant feature at every few pixels, matched to itself.

Keypoints miss what has few corners: a rectangle of blot band, a smooth lane, a blurred cell, a
whole panel whose keypoints fall to the ratio test among its many look-alikes. Dense-field
detectors (Cozzolino, Poggi & Verdoliva, IEEE TIFS 2015) find these, because every pixel votes.
This is a fast version of that idea, and it hands its finds to the same verification and events as
the keypoint path (stages/common/copymove.py), so every detection still says what it is.

1. Features. On a grid of `stride` pixels, at a working size of at most `max_pixels`: the disc of
   `radius` pixels around each point, described by its ring means and the magnitudes of the first
   angular harmonics of its outer rings, all relative to the disc's own mean and contrast. Those
   are the same under any rotation and under reflection (a harmonic's magnitude ignores its phase),
   and under a brightness or contrast change. Discs flatter than `min_std` are left out.
2. Nearest neighbour. Each point's nearest feature (KD-tree) at least `min_displacement` away.
3. Dense linear fitting. A copy moves a whole neighbourhood by one transform, so within a window
   of (2 * fit_radius + 1)^2 grid points the matches of a copy fit one affine map to within a
   pixel; chance matches do not. Points whose window fits within `max_fit_error` (RMS, working
   pixels) are consistent.
4. Regions. Connected consistent points, at least `min_region_area` pixels, each give a similarity
   (or a reflection composed with one) fitted by RANSAC to their matches, and a source region.
   They are returned at the caller's working size, as proposals for dense verification.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import DenseParams
from .keypoint import (WorkingImage, apply_transform, flann_neighbours, homogeneous, overlaps_itself, plausible_scale,
                       reflection)
from .masks import clean_mask, warp_mask

N_RINGS = 4  # ring means, centre to rim
HARMONICS = (1, 2)  # angular harmonics whose magnitudes describe the outer rings
KNN = 8  # neighbours a seed looks at; the nearest ones often lie within min_displacement in smooth areas
SEED_STEP = 8  # one grid point in this many asks the KD-tree; PatchMatch spreads its answer
PATCHMATCH_ITERATIONS = 2
MIN_FIT_SHARE = 0.6  # share of a fitting window that must hold matched points
RANSAC_THRESHOLD = 2.0  # working pixels of the dense field


@dataclass(frozen=True)
class DenseProposal:
    """A region whose neighbourhood moved as one, at the caller's working size."""

    transform: np.ndarray  # 2x3 source -> copy
    source: np.ndarray  # bool (h, w)
    n_points: int  # consistent grid points behind it


@dataclass(frozen=True)
class DenseField:
    """Grid points, their features and where their nearest look-alike sits, at the dense size."""

    points: np.ndarray  # (N, 2) float32 x y
    target: np.ndarray  # (N, 2) float32 x y of the match; NaN where none
    grid_index: np.ndarray  # (N, 2) int row col on the grid
    grid_shape: tuple[int, int]


def dense_proposals(work: WorkingImage, params: DenseParams) -> list[DenseProposal]:
    """Regions of `work` that look copied, with their transforms, at `work`'s size; [] when disabled."""
    if not params.enabled or min(work.shape) < 2 * params.radius + 1:
        return []
    scale = min(1.0, float(np.sqrt(params.max_pixels / (work.shape[0] * work.shape[1]))))
    gray = work.gray if scale == 1.0 else cv2.resize(work.gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    field = match_field(gray, params)
    consistent = consistent_points(field, params)
    to_work = np.array([[1 / scale, 0, 0.5 / scale - 0.5], [0, 1 / scale, 0.5 / scale - 0.5], [0, 0, 1]])
    min_points = max(4, round(params.min_region_area * scale**2 / params.stride**2))
    found = (proposal(field, members, to_work, work.shape, params) for members in regions(field, consistent, min_points))
    return [p for p in found if p is not None]


def ring_kernels(radius: int) -> tuple[np.ndarray, list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """The disc, the ring weights and the (cos, sin) harmonic kernels of the outer rings, each summing
    to one over its support so that responses are means."""
    # In float64, rounded to float32 at the end: NumPy picks its float32 hypot, arctan2, cos and
    # sin kernels by CPU, and their last bits would make the answer depend on the processor.
    yy, xx = np.mgrid[-radius: radius + 1, -radius: radius + 1].astype(np.float64)
    r, theta = np.hypot(xx, yy), np.arctan2(yy, xx)
    whole = (r <= radius + 0.5).astype(np.float64)
    width = (radius + 0.5) / N_RINGS
    rings = [np.clip(1.0 - np.abs(r - (k + 0.5) * width) / width, 0.0, 1.0) * whole for k in range(N_RINGS)]
    harmonics = [(f32(ring * np.cos(m * theta) / ring.sum()), f32(ring * np.sin(m * theta) / ring.sum()))
                 for ring in rings[1:] for m in HARMONICS]
    return f32(whole / whole.sum()), [f32(ring / ring.sum()) for ring in rings], harmonics


def features(gray: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotation- and reflection-invariant features (h, w, d) of every pixel's disc, and the disc's
    standard deviation (h, w), which normalises them."""
    whole, rings, harmonics = ring_kernels(radius)

    def response(kernel):
        return cv2.filter2D(gray, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)

    mean = response(whole)
    square = cv2.filter2D(gray * gray, cv2.CV_32F, whole, borderType=cv2.BORDER_REFLECT)
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))
    parts = [response(ring) - mean for ring in rings]
    parts += [magnitude(response(c), response(s)) for c, s in harmonics]
    return np.stack(parts, axis=2) / np.maximum(std, 1e-3)[:, :, None], std


def magnitude(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sqrt(a^2 + b^2) from exactly rounded operations, the same on every CPU (np.hypot's float32
    kernel is not)."""
    return np.sqrt(a * a + b * b)


def f32(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32)


def match_field(gray: np.ndarray, params: DenseParams) -> DenseField:
    """Each textured grid point's best match at least params.min_displacement away, by PatchMatch.

    The features of every pixel are the candidates, so a copy moved by an odd number of pixels is
    matched exactly, not a grid step off. Seeds come from a KD-tree over the grid (every SEED_STEP-th
    point asks); PatchMatch then hands each point its neighbours' offsets and searches at random
    around its own, which spreads a right match over the whole copy and follows a rotation's
    slowly turning field (Barnes et al. 2009, as used by Cozzolino et al. 2015).
    """
    feats, std = features(gray, params.radius)
    s, r = params.stride, params.radius
    h, w = gray.shape
    ys, xs = np.mgrid[r: h - r: s, r: w - r: s]
    grid = np.stack([xs, ys], axis=-1)
    textured = std[ys, xs] >= params.min_std
    valid = std >= params.min_std
    offsets, cost = seed_offsets(feats, grid, textured, params)
    # Only textured points are matched: the work runs on them alone, the grid only carries offsets
    # between neighbours. Costs are squared distances: cheaper, same order.
    rows, cols = np.nonzero(textured)
    px, py = grid[rows, cols, 0].astype(np.int32), grid[rows, cols, 1].astype(np.int32)
    flat, usable_target = feats.reshape(h * w, -1), valid.ravel()
    base = flat[py * w + px]
    best = cost[rows, cols] ** 2
    min_move2 = params.min_displacement**2

    def evaluate(candidate: np.ndarray) -> None:
        """Keep `candidate` (N, 2) offsets where they match better."""
        tx, ty = px + candidate[:, 0], py + candidate[:, 1]
        inside = (tx >= r) & (tx < w - r) & (ty >= r) & (ty < h - r)
        target = np.where(inside, ty * w + tx, 0)
        usable = inside & usable_target[target] & (candidate[:, 0] ** 2 + candidate[:, 1] ** 2 >= min_move2)
        diff = base - flat[target]
        c = np.where(usable, np.einsum("ij,ij->i", diff, diff), np.inf)
        better = c < best
        offsets[rows[better], cols[better]] = candidate[better]
        best[better] = c[better]

    rng = np.random.default_rng(0)
    for iteration in range(PATCHMATCH_ITERATIONS):
        # Neighbours' offsets at halving distances (jump flooding): a seed reaches the whole copy in
        # one round, where one-cell steps would need as many rounds as the copy is wide. Rounds
        # alternate the direction offsets travel, as PatchMatch alternates its scan order.
        sign = 1 if iteration % 2 == 0 else -1
        jump = 1 << int(np.log2(max(1, min(textured.shape) // 2)))
        while jump >= 1:
            for axis in (0, 1):
                evaluate(np.roll(offsets, sign * jump, axis=axis)[rows, cols])
            jump //= 2
        radius = max(h, w)
        while radius >= 1:
            evaluate(offsets[rows, cols] + rng.integers(-radius, radius + 1, (len(rows), 2), dtype=np.int32))
            radius //= 2
    cost = np.full(textured.shape, np.inf)
    cost[rows, cols] = best
    found = np.isfinite(cost) & textured
    rows, cols = np.nonzero(found)
    points = grid[rows, cols].astype(np.float32)
    return DenseField(points, points + offsets[rows, cols], np.stack([rows, cols], axis=1), textured.shape)


def seed_offsets(feats: np.ndarray, grid: np.ndarray, textured: np.ndarray,
                 params: DenseParams) -> tuple[np.ndarray, np.ndarray]:
    """Starting offsets (gh, gw, 2) int and their costs (inf where unset): for every SEED_STEP-th
    textured grid point, its nearest grid feature at least params.min_displacement away."""
    offsets = np.zeros(grid.shape, np.int32)
    cost = np.full(grid.shape[:2], np.inf)
    rows, cols = np.nonzero(textured)
    if len(rows) < 2:
        return offsets, cost
    data = feats[grid[rows, cols, 1], grid[rows, cols, 0]].astype(np.float32)
    ask = np.arange(0, len(rows), SEED_STEP)
    dist, index = flann_neighbours(data[ask], data, min(KNN, len(rows)))
    here = grid[rows[ask], cols[ask]]
    moves = grid[rows[index], cols[index]] - here[:, None, :]
    dist[np.hypot(moves[..., 0], moves[..., 1]) < params.min_displacement] = np.inf
    best = np.argmin(dist, axis=1)
    pick = np.arange(len(ask))
    offsets[rows[ask], cols[ask]] = moves[pick, best]
    cost[rows[ask], cols[ask]] = dist[pick, best]
    return offsets, cost


def consistent_points(field: DenseField, params: DenseParams) -> np.ndarray:
    """bool (N,): the point's window of matches fits one affine map within params.max_fit_error.

    The least-squares fit of every window at once, from box-filtered moments (dense linear fitting).
    """
    h, w = field.grid_shape
    matched = np.isfinite(field.target[:, 0])
    rows, cols = field.grid_index[matched].T
    grid = {name: np.zeros((h, w)) for name in ("m", "x", "y", "u", "v")}
    grid["m"][rows, cols] = 1.0
    # Coordinates in grid steps keep the moments small and the normal equations well conditioned.
    x, y = cols.astype(np.float64), rows.astype(np.float64)
    u, v = median_offsets(field, matched, params.stride).T
    for name, values in (("x", x), ("y", y), ("u", u), ("v", v)):
        grid[name][rows, cols] = values
    size = (2 * params.fit_radius + 1,) * 2

    def total(a):
        return cv2.boxFilter(a, cv2.CV_64F, size, normalize=False, borderType=cv2.BORDER_CONSTANT)

    m, gx, gy, gu, gv = (grid[k] for k in ("m", "x", "y", "u", "v"))
    s1, sx, sy, sxx, sxy, syy = total(m), total(gx), total(gy), total(gx * gx), total(gx * gy), total(gy * gy)
    normal = np.stack([np.stack([sxx, sxy, sx], -1), np.stack([sxy, syy, sy], -1), np.stack([sx, sy, s1], -1)], -2)
    ok = s1 >= MIN_FIT_SHARE * size[0] * size[1]
    error = np.full((h, w), np.inf)
    if ok.any():
        a = normal[ok] + 1e-6 * np.eye(3)
        sse = np.zeros(int(ok.sum()))
        for g in (gu, gv):
            rhs = np.stack([total(gx * g)[ok], total(gy * g)[ok], total(g)[ok]], -1)
            theta = np.linalg.solve(a, rhs[..., None])[..., 0]
            sse += total(g * g)[ok] - (theta * rhs).sum(-1)
        error[ok] = params.stride * np.sqrt(np.maximum(sse, 0.0) / s1[ok])
    consistent = np.zeros(len(field.points), bool)
    consistent[matched] = error[rows, cols] <= params.max_fit_error
    return consistent


def median_offsets(field: DenseField, matched: np.ndarray, stride: int) -> np.ndarray:
    """(M, 2) float64 targets of the matched points, in grid steps, after a 5x5 median of the offset
    field: a few wrong matches inside a copy must not break its fit (Cozzolino et al. filter too)."""
    h, w = field.grid_shape
    rows, cols = field.grid_index[matched].T
    moved = []
    for axis in (0, 1):
        grid = np.zeros((h, w), np.float32)
        grid[rows, cols] = field.target[matched, axis] - field.points[matched, axis]
        moved.append(cv2.medianBlur(grid, 5)[rows, cols])
    return (field.points[matched] + np.stack(moved, axis=1)).astype(np.float64) / stride


def regions(field: DenseField, consistent: np.ndarray, min_points: int) -> list[np.ndarray]:
    """Indices of the consistent points of each connected region of at least `min_points`."""
    h, w = field.grid_shape
    grid = np.zeros((h, w), np.uint8)
    rows, cols = field.grid_index[consistent].T
    grid[rows, cols] = 1
    grid = cv2.medianBlur(grid, 3) | grid  # a lone gap in a copy is not a border
    _, labels = cv2.connectedComponents(grid, connectivity=8)
    point_labels = np.zeros(len(field.points), np.int32)
    point_labels[consistent] = labels[rows, cols]
    counts = np.bincount(point_labels, minlength=labels.max() + 1)
    return [np.flatnonzero(point_labels == label) for label in range(1, len(counts)) if counts[label] >= min_points]


def proposal(field: DenseField, members: np.ndarray, to_work: np.ndarray, work_hw: tuple[int, int],
             params: DenseParams) -> DenseProposal | None:
    """The region's similarity (with a reflection where the matches mirror) and source mask at the
    working size; None when no plausible transform explains most of its matches."""
    src = apply_transform(to_work[:2], field.points[members])
    dst = apply_transform(to_work[:2], field.target[members])
    threshold = RANSAC_THRESHOLD * to_work[0, 0]
    affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold)
    if affine is None:
        return None
    flip = reflection(work_hw[1]) if np.linalg.det(affine[:, :2]) < 0 else np.eye(3)
    similarity, flags = cv2.estimateAffinePartial2D(apply_transform(flip[:2], src), dst, method=cv2.RANSAC,
                                                    ransacReprojThreshold=threshold)
    if similarity is None or flags.sum() < 0.5 * len(members):
        return None
    transform = (homogeneous(similarity) @ flip)[:2]
    if not plausible_scale(transform):
        return None
    inliers = src[flags.ravel().astype(bool)]
    source = np.zeros(work_hw, np.uint8)
    # A feature matches only where its whole disc was copied: the region reaches a radius past its points.
    half = max(1, round(params.stride * to_work[0, 0] / 2 + 0.5 * params.radius * to_work[0, 0]))
    for x, y in np.round(inliers).astype(int):
        cv2.rectangle(source, (x - half, y - half), (x + half, y + half), 1, -1)
    source = clean_mask(source.astype(bool), params.min_region_area)
    if not source.any():
        return None
    if overlaps_itself(source, warp_mask(source, transform)):
        return None
    return DenseProposal(transform=transform, source=source, n_points=len(inliers))
