"""The object path: whole blobs matched to each other, for small objects copied at any turn.

A cell of 20 px carries one to three SIFT keypoints, too few for a transform, and the dense
field's discs straddle its edge, half on a background the copy does not share. Taken whole,
though, it is a maximally stable extremal region (MSER) of the figure, and so is its copy: the
same blob, turned, perhaps mirrored, scaled and re-lit.

1. Blobs. MSERs of the working image, dark and bright, of `min_area` pixels up to `max_share` of
   the image, textured inside and not drawn in strokes: glyphs of one font are alike to the
   pixel, so a "0" matches every other "0" as well as a copy would, and on the training figures
   every blob match that fooled verification was such a stroke. Nested near-duplicates (one blob
   at several thresholds) are one.
2. Polar images. Each blob is sampled on rings about its centroid out to `reach` of its own radius,
   at its own scale, and brought to zero mean and unit contrast: a turn of the blob is a cyclic
   shift of its polar image, a reflection reverses it, a scale and a change of light cancel.
3. Look-alikes. The magnitudes of each ring's angular harmonics ignore that shift and reversal;
   each blob's nearest blobs by them, far enough away and of a plausible size, are candidates.
4. Turns. A candidate pair's polar images are correlated at every cyclic shift, as they are and
   reversed; the best shift is the turn. Pairs that correlate above `min_ncc`, and are among
   each other's clear best matches (the generalised ratio test, `rival_ratio`: a source pasted
   three times has three), become proposals: a similarity about the two centroids, and the blob
   as the source region. Pairs that are pieces of copies the other paths found are left out.

The proposals go to the same dense verification as the other paths (stages/common/copymove.py):
their transform is refined densely, and the copy must carry its source's fine grain.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from .config import ObjectParams
from .dense import DenseProposal
from .keypoint import (INK_SOLID_SHARE, STROKE_WIDTH, VerifiedCopy, WorkingImage, apply_transform, invert, overlaps_itself,
                       plausible_scale)
from .masks import disc, union, warp_mask

RINGS, ANGLES = 6, 64  # samples of a polar image: rings from the centroid out, angles round it
HARMONICS = 8  # angular harmonics per ring in a blob's description
MSER_DELTA = 4  # grey levels a region's threshold moves while its area is judged stable
MIN_BLOB_STD = 6.0  # grey levels inside a blob: flatter ones carry no grain to verify
NESTED = 0.15  # blobs whose centroids and radii differ by under this share of the radius are one
RIM, RIM_SHARE = 2, 0.25  # pixels, or share of its radius, of surroundings a blob's region takes in
NEIGHBOURS = 6  # look-alikes each blob asks for
POINT_AREA = 16  # pixels of blob per supporting point, so n_points compares with the other paths'


@dataclass(frozen=True)
class Blobs:
    """Blobs of the working image, with their polar images."""

    cores: list[np.ndarray]  # (m, 2) int x y: each blob's own pixels
    centres: np.ndarray  # (n, 2) float x y
    radii: np.ndarray  # (n,) equivalent radius, sqrt(area / pi)
    polar: np.ndarray  # (n, RINGS, ANGLES) float32: less each ring's mean, unit norm


@dataclass(frozen=True)
class BlobPair:
    """Blob `copy` as a turned (maybe mirrored and scaled) image of blob `source`."""

    source: int
    copy: int
    ncc: float  # correlation of their polar images at the best turn
    transform: np.ndarray  # 2x3 source -> copy


@dataclass(frozen=True)
class LookAlikes:
    """The figure's blobs and the pairs of them that look like one object turned (steps 1 to 4):
    all the object path finds before the other paths' copies are known."""

    blobs: Blobs
    pairs: list[BlobPair]  # at params.min_ncc or above, and among each other's clear best matches


def look_alikes(work: WorkingImage, min_displacement: float, params: ObjectParams) -> LookAlikes | None:
    """Blobs of `work` that look like turned, mirrored or scaled copies of others; None when
    disabled or where there are not two blobs."""
    if not params.enabled:
        return None
    blobs = find_blobs(work, params)
    if len(blobs.radii) < 2:
        return None
    return LookAlikes(blobs, distinctive(candidate_pairs(blobs, min_displacement), blobs, params.rival_ratio,
                                         params.min_ncc))


def object_proposals(work: WorkingImage, found: LookAlikes | None, params: ObjectParams,
                     known: list[VerifiedCopy]) -> list[DenseProposal]:
    """The look-alike pairs (`look_alikes`) as proposals, best first.

    Pairs that add nothing to the copies the other paths verified (`known`) are left out: those
    whose blobs both lie mostly inside them, and pieces of a known copy (`explained`). Either
    would only split a known event into more blobs, and a band matched to its look-alike in the
    next lane could make a pasted lane read as a pattern.
    """
    if found is None:
        return []
    blobs = found.blobs
    region = union([c.region for c in known], work.shape)
    moves = known_moves(known)
    cores = Regions.of(blobs.cores)  # every blob's pixels looked up at once: blob by blob took 10 ms more
    inside = 2 * cores.per_region(region[cores.points[:, 1], cores.points[:, 0]].astype(np.int64)) > cores.sizes
    pairs = [pair for pair in found.pairs
             if not (inside[pair.source] and inside[pair.copy]) and not explained(pair, blobs, moves)]
    proposals = []
    for pair in sorted(pairs, key=lambda pair: -pair.ncc)[: params.max_proposals]:
        source = blob_mask(blobs.cores[pair.source], blobs.radii[pair.source], work.shape)
        if not overlaps_itself(source, warp_mask(source, pair.transform)):
            proposals.append(DenseProposal(transform=pair.transform, source=source,
                                           n_points=int(source.sum()) // POINT_AREA))
    return proposals


def known_moves(known: list[VerifiedCopy]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(transform, region) of every known copy, each way round: its transform and the inverse."""
    return [(t, copy.region) for copy in known for t in (copy.transform, invert(copy.transform))]


def explained(pair: BlobPair, blobs: Blobs, moves: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """True when a known copy's move (`known_moves`) takes one blob of the pair onto the other,
    and that blob lies at the copy's region: the pair is a piece of that copy."""
    return any(moves_onto(blobs, a, b, t) and touches(blobs, a, region)
               for t, region in moves for a, b in ((pair.source, pair.copy), (pair.copy, pair.source)))


def moves_onto(blobs: Blobs, a: int, b: int, transform: np.ndarray) -> bool:
    return bool(np.hypot(*(apply_transform(transform, blobs.centres[a][None])[0] - blobs.centres[b])) < blobs.radii[b])


def touches(blobs: Blobs, blob: int, region: np.ndarray) -> bool:
    """True when `region` comes within the blob's radius of its edge (its bounding box, so widened)."""
    x, y = np.round(blobs.centres[blob]).astype(int)
    reach = int(np.ceil(2 * blobs.radii[blob]))
    return bool(region[max(0, y - reach): y + reach + 1, max(0, x - reach): x + reach + 1].any())


def find_blobs(work: WorkingImage, params: ObjectParams) -> Blobs:
    h, w = work.shape
    mser = cv2.MSER_create(delta=MSER_DELTA, min_area=params.min_area, max_area=int(params.max_share * h * w))
    found, _ = mser.detectRegions(work.gray8)
    regions = Regions.of(found)
    centres = regions.per_region(regions.points.astype(np.float64)) / regions.sizes[:, None]
    radii = np.sqrt(regions.sizes / np.pi)
    keep = np.flatnonzero(textured(work.gray8, regions) & ~regions_in_strokes(regions))
    keep = keep[distinct(centres[keep], radii[keep])]
    return Blobs(cores=[found[i] for i in keep], centres=centres[keep], radii=radii[keep],
                 polar=polar_images(work.gray, centres[keep], radii[keep] * params.reach))


@dataclass(frozen=True)
class Regions:
    """MSERs as one array of their pixels: region i is points[starts[i]: starts[i] + sizes[i]]."""

    points: np.ndarray  # (m, 2) int x y
    starts: np.ndarray  # (n,) int
    sizes: np.ndarray  # (n,) int

    @classmethod
    def of(cls, regions: tuple[np.ndarray, ...]) -> Regions:
        sizes = np.array([len(r) for r in regions], np.int64)
        points = np.concatenate(regions) if regions else np.zeros((0, 2), np.int32)
        return cls(points=points, starts=np.cumsum(sizes) - sizes, sizes=sizes)

    def per_region(self, values: np.ndarray, reduce: np.ufunc = np.add) -> np.ndarray:
        """`reduce` of per-pixel `values` over each region."""
        return reduce.reduceat(values, self.starts) if len(self.sizes) else np.zeros((0, *values.shape[1:]), values.dtype)


def textured(gray8: np.ndarray, regions: Regions) -> np.ndarray:
    """bool (n,): regions whose grey levels vary by at least MIN_BLOB_STD (computed exactly, in integers)."""
    values = gray8[regions.points[:, 1], regions.points[:, 0]].astype(np.int64)
    n, total, squares = regions.sizes, regions.per_region(values), regions.per_region(values ** 2)
    return n * squares - total ** 2 >= MIN_BLOB_STD ** 2 * n ** 2


def regions_in_strokes(regions: Regions) -> np.ndarray:
    """bool (n,): regions drawn in strokes, which one erosion by a STROKE_WIDTH disc leaves under
    INK_SOLID_SHARE of (as stages/common/keypoint.py `in_strokes` judges one mask).

    MSERs nest, so no one mask holds them all; instead each is drawn into its own slot of one
    canvas, STROKE_WIDTH clear of the next, and one erosion of the canvas erodes every region.
    """
    if not len(regions.sizes):
        return np.zeros(0, bool)
    low, high = regions.per_region(regions.points, np.minimum), regions.per_region(regions.points, np.maximum)
    corners, canvas_shape = shelf_layout(high - low + 1 + 2 * STROKE_WIDTH)
    at = regions.points + np.repeat(corners + STROKE_WIDTH - low, regions.sizes, axis=0)
    canvas = np.zeros(canvas_shape, np.uint8)
    canvas[at[:, 1], at[:, 0]] = 1
    kept = cv2.erode(canvas, disc(STROKE_WIDTH))[at[:, 1], at[:, 0]]
    return regions.per_region(kept.astype(np.int64)) < INK_SOLID_SHARE * regions.sizes


def shelf_layout(sizes: np.ndarray, width: int = 2048) -> tuple[np.ndarray, tuple[int, int]]:
    """Top-left corners (n, 2) x y of boxes of `sizes` (n, 2) w h laid side by side on shelves,
    tallest first, and the (h, w) of the canvas they fill. A shelf takes boxes while they start
    within `width`; the last may reach past it, by less than the widest box."""
    order = np.argsort(-sizes[:, 1], kind="stable")
    widths, heights = sizes[order, 0], sizes[order, 1]
    start = np.cumsum(widths) - widths
    shelf = start // width
    tallest = np.zeros(shelf[-1] + 1 if len(shelf) else 0, sizes.dtype)
    np.maximum.at(tallest, shelf, heights)
    corners = np.empty_like(sizes)
    corners[order] = np.stack([start - shelf * width, (np.cumsum(tallest) - tallest)[shelf]], axis=1)
    return corners, (int(tallest.sum()), width + int(widths.max(initial=0)))


def distinct(centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Indices of the blobs left once each is dropped that a smaller kept one nearly repeats: centres
    and radii within NESTED of its radius (MSER finds one blob at several thresholds)."""
    # The ball is a hair wider than NESTED: the tree's distances round differently from np.hypot,
    # which decides below, so no neighbour is lost at the edge.
    near = cKDTree(centres).query_ball_point(centres, NESTED * radii * (1 + 1e-9)) if len(radii) else []
    order = np.argsort(radii, kind="stable")
    kept = np.zeros(len(radii), bool)
    for i in order:
        kept[i] = not any(kept[j] and abs(radii[j] - radii[i]) < NESTED * radii[i]
                          and np.hypot(*(centres[j] - centres[i])) < NESTED * radii[i] for j in near[i])
    return order[kept[order]]


def blob_mask(points: np.ndarray, radius: float, hw: tuple[int, int]) -> np.ndarray:
    """bool (h, w): the blob with its holes filled and a rim of its surroundings, which lets the
    drawn-content test (stages/common/keypoint.py `is_graphic`) see the paper a label sits on."""
    mask = np.zeros(hw, np.uint8)
    mask[points[:, 1], points[:, 0]] = 1
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(mask, contours, -1, 1, thickness=cv2.FILLED)
    rim = max(RIM, round(RIM_SHARE * radius))
    return cv2.dilate(mask, disc(2 * rim + 1)) > 0


def polar_images(gray: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(n, RINGS, ANGLES) samples of `gray` on rings about each centre, less each ring's mean, at unit norm.

    What is left once the ring means go is how the blob varies round its centre, which fixes its
    turn; the radial profile alone is much the same for every round, smooth blob.
    """
    if len(radii) == 0:
        return np.zeros((0, RINGS, ANGLES), np.float32)
    rings = (np.arange(RINGS) + 0.5) / RINGS
    angles = 2 * np.pi * np.arange(ANGLES) / ANGLES
    r = radii[:, None, None] * rings[None, :, None]
    map_x = (centres[:, 0, None, None] + r * np.cos(angles)).astype(np.float32)
    map_y = (centres[:, 1, None, None] + r * np.sin(angles)).astype(np.float32)
    samples = cv2.remap(gray, map_x.reshape(-1, ANGLES), map_y.reshape(-1, ANGLES), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT).reshape(map_x.shape)
    samples -= samples.mean(axis=2, keepdims=True)
    return samples / np.maximum(np.linalg.norm(samples, axis=(1, 2), keepdims=True), 1e-6)


def candidate_pairs(blobs: Blobs, min_displacement: float) -> list[BlobPair]:
    """Each blob's nearest look-alikes by their harmonics' magnitudes, far enough apart to be
    two objects and at their best turn, where its scale is plausible."""
    spectra = np.fft.rfft(blobs.polar, axis=2)
    described = np.abs(spectra[:, :, :HARMONICS]).reshape(len(blobs.radii), -1)
    _, neighbours = cKDTree(described).query(described, k=min(NEIGHBOURS + 1, len(described)))
    i, j = np.repeat(np.arange(len(described)), neighbours.shape[1]), neighbours.ravel()
    i, j = np.minimum(i, j), np.maximum(i, j)  # each pair once, either way round
    i, j = np.divmod(np.unique(i * len(described) + j), len(described))
    apart = np.hypot(*(blobs.centres[j] - blobs.centres[i]).T)
    far = (i != j) & (apart >= np.maximum(min_displacement, blobs.radii[i] + blobs.radii[j]))
    i, j = i[far], j[far]
    ncc, shift, mirrored = best_turns(spectra[i], spectra[j])
    transforms = turn_transforms(blobs, i, j, shift, mirrored)
    plausible = np.flatnonzero(plausible_scale(transforms))
    return [BlobPair(int(i[k]), int(j[k]), float(ncc[k]), transforms[k]) for k in plausible]


def distinctive(pairs: list[BlobPair], blobs: Blobs, rival_ratio: float, min_ncc: float) -> list[BlobPair]:
    """The pairs of at least `min_ncc` whose blobs are among each other's clear best matches, by
    the generalised ratio test of keypoint matching (g2NN), on blobs; every pair is a rival.

    With a blob's look-alikes sorted by polar distance (1 - ncc) d1 <= d2 <= ..., its matches are
    those up to the first clear jump, the first k with d_k <= rival_ratio * d_(k+1). A pasted cell
    has a jump after its source, a source pasted three times one after its three copies, and a
    cell in a field of round cells, whose look-alikes are all much as far, none. A blob with a
    single look-alike has nothing to compare it with and keeps it. A look-alike that lies on a
    nearer one is that object again (MSER finds one blob at several thresholds), not another.
    Only the blobs of pairs of `min_ncc` are judged; the other pairs are their rivals.
    """
    strong = [pair for pair in pairs if pair.ncc >= min_ncc]
    partners: dict[int, list[tuple[float, int]]] = {blob: [] for pair in strong for blob in (pair.source, pair.copy)}
    for pair in pairs:
        for blob, other in ((pair.source, pair.copy), (pair.copy, pair.source)):
            if blob in partners:
                partners[blob].append((1.0 - pair.ncc, other))
    centres, radii = blobs.centres.tolist(), blobs.radii.tolist()

    def elsewhere(a: int, b: int) -> bool:  # blob a lies off blob b
        return math.dist(centres[a], centres[b]) >= radii[b]

    matched = {blob: clear_matches(found, elsewhere, rival_ratio) for blob, found in partners.items()}
    return [pair for pair in strong if pair.copy in matched[pair.source] and pair.source in matched[pair.copy]]


def clear_matches(found: list[tuple[float, int]], elsewhere: Callable[[int, int], bool], rival_ratio: float) -> set[int]:
    """The blobs among `found` ((distance, blob) look-alikes of one blob) up to the first clear jump;
    a look-alike that is not `elsewhere` than a nearer one is left out."""
    objects: list[tuple[float, int]] = []
    for distance, other in sorted(found):
        if all(elsewhere(other, kept) for _, kept in objects):
            if objects and objects[-1][0] <= rival_ratio * distance:
                return {kept for _, kept in objects}
            objects.append((distance, other))
    return {objects[0][1]} if len(objects) == 1 else set()


def best_turns(source: np.ndarray, copy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For pairs of polar spectra (n, RINGS, ANGLES // 2 + 1): the correlation at the best cyclic
    shift s (copy[t + s] = source[t]), as it is or mirrored (source[-t]), the shift, sub-sample,
    and whether it is mirrored."""
    # The spectrum of the reversed sequence x[-t] is the conjugate of that of x (x is real).
    straight = np.fft.irfft(np.conj(source) * copy, n=ANGLES, axis=2).sum(axis=1)
    mirrored = np.fft.irfft(source * copy, n=ANGLES, axis=2).sum(axis=1)
    scores = np.stack([straight, mirrored], axis=1)  # (n, 2, ANGLES)
    best = scores.reshape(len(scores), -1).argmax(axis=1)
    flip, shift = np.divmod(best, ANGLES)
    rows = scores[np.arange(len(scores)), flip]
    return rows[np.arange(len(rows)), shift], subsample_peaks(rows, shift), flip.astype(bool)


def subsample_peaks(scores: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The peak of the parabola through each row's best cyclic shift and its two neighbours."""
    rows = np.arange(len(scores))
    left, centre, right = scores[rows, shift - 1], scores[rows, shift], scores[rows, (shift + 1) % ANGLES]
    curvature = left - 2 * centre + right
    offset = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
    return shift + offset


def turn_transforms(blobs: Blobs, source: np.ndarray, copy: np.ndarray, shift: np.ndarray,
                    mirrored: np.ndarray) -> np.ndarray:
    """(n, 2, 3) similarities taking each blob `source` onto blob `copy`, turned by `shift` samples
    round: about the centroids, scaled by the radii, composed with a reflection where mirrored."""
    theta = 2 * np.pi * shift / ANGLES
    cos, sin = np.cos(theta), np.sin(theta)
    flip = np.where(mirrored, -1.0, 1.0)  # angle t -> -t about the centroid, before the turn
    turn = (blobs.radii[copy] / blobs.radii[source])[:, None, None] * np.stack(
        [np.stack([cos, -sin * flip], axis=1), np.stack([sin, cos * flip], axis=1)], axis=1)
    offset = blobs.centres[copy] - np.einsum("nij,nj->ni", turn, blobs.centres[source])
    return np.concatenate([turn, offset[:, :, None]], axis=2)
