"""Classical copy-move detection: match a figure against itself, then verify every copy densely.

The first places of the Recod.ai/LUC competition were not segmentation networks; they matched
each figure against itself. This module does that with OpenCV alone. It needs no training, and it
explains its answer: this region was copied there, by this transform.

1. Keypoints. SIFT on the grayscale image at a working size, with RootSIFT descriptors, and
   each descriptor again as it would read in the mirrored image (SIFT is not flip-invariant).
2. Matching. Every keypoint against all others and their mirrors, by the generalised 2NN test,
   so that a source copied three times matches all three copies, while a keypoint with a whole
   family of look-alikes (letters, lattices) matches nothing.
3. Transforms. Matches that agree at both ends are grouped, a similarity (composed with a
   reflection for mirrored matches) is fitted to each group by iterated RANSAC, or read off the
   two keypoint frames where a small object offers a single matched spot; each transform then
   claims every near-best neighbour it explains (guided matching). params.min_inliers of those
   spots suffice; a transform with fewer (a small turned object may offer one or two) needs its
   copy's grain to peak sharply at it (params.grain_peak, see step 4).
4. Dense verification. The image is warped by each transform; a local zero-mean normalised
   cross-correlation (NCC) marks the copied pixels near the inlier keypoints. The region must be
   textured, large enough, distinct from its source, not drawn (text, scale bars), and must
   carry its source's fine grain: authentic figures repeat things too (bands cast from one
   template, look-alike cells), but each repeat has its own noise, while a copy carries its
   source's noise along. Noise decorrelates within a pixel, so a copy's grain correlation also
   falls sharply one pixel off (its peak), while that of look-alikes, which share only the
   grain of their edges, barely moves.
5. Events. Verified copies that share a region are one copy-move event, returned as one
   instance (the source plus every copy); events that continue periodically or spread over many
   places are patterns (blot lanes, lattices) and are dropped.

Pixel sizes (params.min_displacement, params.min_region_area and the constants below) are at the
working size: the long side is brought down to params.max_side, and small images are upscaled to
`keypoint.min_side` (or a thin strip's short side to `keypoint.min_short_side`) so that a copied object spans more than a few correlation windows. Masks and
transforms are returned at the original size.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .config import KeypointParams
from .masks import bounding_box, clean_mask, components_touching, disc, dilated, union, warp_mask

# Working size.
MIN_IMAGE_SIDE = 16  # an image narrower than this cannot hold a verifiable copy: authentic
MAX_UPSCALE = 2.0  # small images are upscaled towards `keypoint.min_side` by at most this factor: beyond it
# interpolation invents no texture, and on 64x74 figures a long side of about 128 found the most copies
# Keypoints and matching.
MAX_KEYPOINTS = 5000  # strongest SIFT keypoints; a copy's keypoints have its source's responses
DESCRIPTOR_SCALE = 0.6  # share of SIFT's own window that describes a keypoint (see detect_keypoints)
FLANN_KDTREE, FLANN_TREES, FLANN_CHECKS, FLANN_SEED = 1, 4, 32, 0
KNN = 10  # neighbours the g2NN test looks at; a keypoint with more look-alikes matches nothing
# Transforms.
CLUSTER_RADIUS_FRACTION = 0.05  # matches this close (share of the long side) at both ends are grouped
MIN_CLUSTER_RADIUS = 16.0
MIN_SEED_SPOTS = 2  # spots RANSAC needs to fit a similarity
GUIDED_RANK = 3  # neighbours a proposed transform may claim as inliers (see guided_inliers)
SCALE_RANGE = (0.4, 2.5)  # similarity scales outside this are not plausible copies
MAX_CLUSTERS = 20  # transforms verified densely per image, best supported first
# Dense verification.
NCC_WINDOW = 7  # side of the local correlation window
SEED_RADIUS = 0.5  # the seed of a copy: the inliers' hull and discs of this many SIFT sizes ...
MIN_SEARCH_MARGIN = 16  # ... and the copy is sought this far around it, or as far as it is wide
ECC_ITERATIONS = 30
MAX_REFINE_SHIFT = 4.0  # pixels the dense refinement may move any part of the copy
MAX_SELF_OVERLAP = 0.3  # a region mapped mostly onto itself is a symmetric object, not a copy
FINE_SIGMA = 1.0  # the fine grain is what a blur of this sigma removes ...
FINE_NCC_MIN = 0.55  # ... and a copy must reproduce it at least this well (see fine_correlation)
RESCALE_TOLERANCE = 0.05  # a copy within this share of its source's size is not rescaled (refinement wobbles)
GRAPHIC_BIN = 2  # grey levels per histogram bin in is_graphic: a drawn tone, not a smooth imaged one
GRAPHIC_SHARE = 0.6  # a region whose two commonest levels hold this share is drawn, not imaged
INK_SHARE = 0.3  # (copies hold 0.54 at most, labels 0.65 or more), as is one whose ink holds this share
STROKE_WIDTH = 5  # in strokes thinner than this, that one erosion wipes out ...
INK_SOLID_SHARE = 0.3  # ... leaving less than this share of the ink (a saturated cell keeps 0.65)
PURE_INK, INK_MARGIN = 2, 24  # lettering reaches within PURE_INK of black and white; its ink lies within INK_MARGIN
LETTERING_SHARE = 0.1  # ... of each, and holds this share of the region at each end
# Anti-aliasing and a JPEG's ringing spread thin ink away from its end (is_thin_lettering): within THIN_INK_MARGIN
# of one end lies the plain margin, PLAIN_MARGIN_SHARE of the region at least, and of the other the ink,
# THIN_INK_SHARE (labels at quality 75: 0.08 to 0.16; a turned copy with a black ground: 0.31 margin), in
# strokes one erosion leaves under THIN_STROKE_SHARE of (labels: none; two lamps' bright rims on a dark bush: 0.2).
THIN_INK_MARGIN, PLAIN_MARGIN_SHARE, THIN_INK_SHARE, THIN_STROKE_SHARE = 48, 0.45, 0.04, 0.05
TONE_SPIKE = 2.0  # a drawn tone's level holds this many times the pixels of the levels beside it (is_drawn_tone)
PERIODIC_SHARE = 0.3  # share of one more step of the transform that matches, marking a lattice
PERIODIC_MIN_STEP = 0.2  # share of the source that one more step must keep in the image to be judged
# Share of the copy's grain correlation that a lattice's next step reaches (a pasted lane's
# next step: 0.06; a facade's next window: 0.3 or more).
STEP_GRAIN_SHARE = 0.2
PATTERN_PEAK_SHARE = 0.9  # a periodic copy whose grain peaks this share of its event's best makes the event a pattern
# Events.
MERGE_OVERLAP = 0.2  # regions sharing this share of the smaller one belong to one event
MAX_EVENT_BLOBS = 6  # the competition's events have 2 to 5 blobs; more is a repeated pattern
# A blob under this share of its event's largest is a sliver a copy's mask leaves beside a neighbouring
# lane or panel, not another paste: a copy at half its source's size still has a quarter of its area.
SLIVER_SHARE = 1 / 16
INLIER_SCALE = 4.0  # inliers at which the score's evidence term reaches 1 - 1/e


@dataclass(frozen=True, eq=False)
class CopyMoveInstance:
    """One copy-move event: the source and all its copies, with the evidence for it."""

    mask: np.ndarray  # bool (H, W) at the original size: the source and every copy
    score: float  # in [0, 1]: fine-grain correlation times keypoint evidence
    transforms: tuple[np.ndarray, ...]  # 2x3 affine maps source -> copy at the original size, one per verified pair
    n_inliers: int  # keypoint spots supporting the transforms, summed over them


@dataclass(frozen=True)
class Keypoints:
    """SIFT keypoints at the working size, with RootSIFT descriptors of the image and its mirror."""

    points: np.ndarray  # (N, 2) float32, x y
    sizes: np.ndarray  # (N,) float32, SIFT support diameter
    angles: np.ndarray  # (N,) float32, SIFT orientation in degrees, clockwise on screen
    descriptors: np.ndarray  # (N, 128) float32, unit L2 norm
    mirrored: np.ndarray  # (N, 128) float32: the same keypoints in the horizontally mirrored image


@dataclass(frozen=True)
class Neighbours:
    """Each keypoint's nearest descriptors, nearest first."""

    dist: np.ndarray  # (N, k) float32; inf for the keypoint itself and anything too close to it
    target: np.ndarray  # (N, k) keypoint index of the neighbour
    mirrored: np.ndarray  # (N, k) bool: the neighbour's mirrored descriptor is the one that matched


@dataclass(frozen=True)
class Matches:
    """Keypoint pairs that look alike: the content at `dst` may be a copy of that at `src`."""

    src: np.ndarray  # (M,) keypoint indices
    dst: np.ndarray  # (M,) keypoint indices
    mirrored: bool  # dst looks like the mirror image of src


@dataclass(frozen=True)
class Cluster:
    """Keypoint pairs explained by one transform."""

    transform: np.ndarray  # 2x3 source -> copy at the working size
    src: np.ndarray  # inlier keypoint indices on the source
    dst: np.ndarray  # inlier keypoint indices on the copy
    mirrored: bool
    n_inliers: int  # distinct source spots


@dataclass(frozen=True)
class VerifiedCopy:
    """A cluster whose copy held densely, as masks at the working size."""

    source: np.ndarray  # bool (h, w)
    copy: np.ndarray  # bool (h, w)
    transform: np.ndarray  # 2x3 source -> copy, after dense refinement
    n_inliers: int
    score: float
    grain_peak: float  # fine-grain correlation at the transform, less its best one pixel off (see grain_peak)
    periodic: bool  # the pattern continues one more step of the transform

    @property
    def region(self) -> np.ndarray:
        return self.source | self.copy


@dataclass(frozen=True)
class WorkingImage:
    """The image at the working size, in the forms the dense checks compare."""

    gray8: np.ndarray  # uint8 (h, w)
    gray: np.ndarray  # float32 (h, w)
    fine: np.ndarray  # float32 (h, w): gray minus its FINE_SIGMA blur, the grain a copy carries along
    pixel: float = 1.0  # working pixels per figure pixel: over 1 where a small figure was upscaled

    @classmethod
    def of(cls, gray8: np.ndarray, pixel: float = 1.0) -> WorkingImage:
        gray = gray8.astype(np.float32)
        return cls(gray8=gray8, gray=gray, fine=gray - cv2.GaussianBlur(gray, (0, 0), FINE_SIGMA), pixel=max(1.0, pixel))

    @property
    def shape(self) -> tuple[int, int]:
        return self.gray8.shape

    @cached_property
    def edges(self) -> np.ndarray:
        """How much the image without its grain changes at each pixel (`edge_strength`): where a
        copy's inside is flat (copymove.py `flat_grain`)."""
        return edge_strength(self.gray - self.fine)


def edge_strength(image: np.ndarray) -> np.ndarray:
    """How much a float32 image changes at each pixel: its gradient's magnitude (Sobel) where it
    slopes, and its Laplacian's where it bends, at the ridge of a thin stroke, which has no slope."""
    dx = cv2.Sobel(image, cv2.CV_32F, 1, 0)
    dy = cv2.Sobel(image, cv2.CV_32F, 0, 1)
    return np.sqrt(dx * dx + dy * dy) + np.abs(cv2.Laplacian(image, cv2.CV_32F))


# ---------------------------------------------------------------- public API


def keypoint_copies(work: WorkingImage, params: KeypointParams) -> list[VerifiedCopy]:
    """The copies the keypoint path verifies in `work`, before they are grouped into events.

    The whole training-free detector, this path and the dense one, is
    stages/common/copymove.py `detect_copy_move`.
    """
    keypoints = detect_keypoints(work.gray8, params.sift_contrast)
    if len(keypoints.points) < 2:
        return []
    clusters = find_clusters(keypoints, work.shape, params)
    return [c for c in (verify_cluster(work, keypoints, cluster, params) for cluster in clusters) if c is not None]


def evidence_map(instances: list[CopyMoveInstance], hw: tuple[int, int]) -> np.ndarray:
    """float32 (H, W) in [0, 1]: each pixel's best score among the instances that cover it.

    The Mask R-CNN's fourth input channel under `model.evidence: keypoint`.
    """
    evidence = np.zeros(hw, np.float32)
    for inst in instances:
        np.maximum(evidence, np.where(inst.mask, np.float32(inst.score), np.float32(0.0)), out=evidence)
    return evidence


def image_score(instances: list[CopyMoveInstance]) -> float:
    """How forged the image looks, for ROC curves: the best instance score, 0 when there is none."""
    return max((inst.score for inst in instances), default=0.0)


# ---------------------------------------------------------------- working size


def working_scale(height: int, width: int, max_side: int, min_side: int, min_short_side: int) -> float:
    """Scale to the working size: long side down to `max_side`, or up towards `min_side`; then a
    strip whose short side would fall below `min_short_side` is lifted towards it, within the
    pixels of a `max_side` square, by at most MAX_UPSCALE (an 85x517 blot strip gave SIFT 3 keypoints)."""
    long_side, short_side = max(height, width), min(height, width)
    scale = 1.0
    if long_side > max_side:
        scale = max_side / long_side
    elif long_side < min_side:
        scale = min(MAX_UPSCALE, min_side / long_side, max_side / long_side)
    if short_side * scale < min_short_side:
        budget = max_side / np.sqrt(height * width)
        scale = max(scale, min(MAX_UPSCALE, min_short_side / short_side, budget))
    return float(scale)


def working_image(gray: np.ndarray, params: KeypointParams) -> WorkingImage:
    """The uint8 grayscale figure at the working size (`working_scale`), in the forms the dense checks compare."""
    scale = working_scale(*gray.shape, params.max_side, params.min_side, params.min_short_side)
    return WorkingImage.of(resize_gray(gray, scale), pixel=scale)


def scale_matrix(work_hw: tuple[int, int], original_hw: tuple[int, int]) -> np.ndarray:
    """3x3 map from original to working pixel coordinates, pixel centres aligned as cv2.resize does."""
    sy, sx = work_hw[0] / original_hw[0], work_hw[1] / original_hw[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def to_gray(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"detect_copy_move expects a uint8 array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"detect_copy_move expects an RGB (H, W, 3) or grayscale (H, W) image, got shape {image.shape}")


def resize_gray(gray: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return gray
    height, width = gray.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC)


# ---------------------------------------------------------------- keypoints and matching


def detect_keypoints(gray: np.ndarray, contrast_threshold: float = 0.02) -> Keypoints:
    """SIFT on `gray`, each keypoint described as it is and as it reads in the mirrored image.

    Copied objects are small (a cell, a band), and SIFT's descriptor window reaches well past
    their edge, into background that differs between source and copy. Describing over
    DESCRIPTOR_SCALE of the window keeps more descriptors inside the object: on 320x384 test
    figures with a 28x20 px copied ellipse it doubles the correct matches without adding false ones.
    """
    sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS, contrastThreshold=contrast_threshold)
    detected = sift.detect(gray, None)
    if len(detected) < 2:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                         np.zeros((0, 128), np.float32), np.zeros((0, 128), np.float32))
    narrowed = [cv2.KeyPoint(k.pt[0], k.pt[1], k.size * DESCRIPTOR_SCALE, k.angle, k.response, k.octave, k.class_id)
                for k in detected]
    described, descriptors = sift.compute(gray, narrowed)
    if descriptors is None or len(described) != len(detected):
        raise RuntimeError("SIFT dropped keypoints while describing them; cannot pair them with their sizes")
    return Keypoints(
        points=np.array([k.pt for k in described], dtype=np.float32),
        sizes=np.array([k.size for k in detected], dtype=np.float32),
        angles=np.array([k.angle for k in described], dtype=np.float32),
        descriptors=root_sift(descriptors),
        mirrored=root_sift(mirror_descriptors(descriptors)),
    )


def mirror_descriptors(descriptors: np.ndarray) -> np.ndarray:
    """SIFT descriptors of the same keypoints in the horizontally mirrored image.

    A descriptor is a 4x4 grid of 8-bin orientation histograms in the keypoint's own frame.
    Mirroring the image (x -> w-1-x, angle -> 180-angle) reverses the order of the grid's rows
    in that frame and turns orientation bin o into -o. Permuting costs nothing, where describing
    the mirrored keypoints in cv2.flip(gray, 1) costs a second Gaussian pyramid (a fifth of the
    detector's time); the two agree up to sub-pixel resampling (see tests/test_keypoint.py).
    """
    grid = descriptors.reshape(-1, 4, 4, 8)
    return grid[:, ::-1][:, :, :, -np.arange(8) % 8].reshape(-1, 128).copy()


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """L1-normalise, then square-root: Euclidean distance becomes the Hellinger kernel, which
    compares histograms better. The result has unit L2 norm."""
    d = descriptors.astype(np.float32)
    return np.sqrt(d / np.maximum(d.sum(axis=1, keepdims=True), 1e-7))


def find_neighbours(keypoints: Keypoints, min_displacement: float) -> Neighbours:
    """Each keypoint's KNN nearest descriptors among all keypoints and their mirrors, leaving out
    itself and anything within `min_displacement` of it."""
    n = len(keypoints.points)
    database = np.vstack([keypoints.descriptors, keypoints.mirrored])
    k = min(KNN + 2, 2 * n)  # room for the keypoint itself and a twin at the same spot
    dist, index = flann_neighbours(keypoints.descriptors, database, k)
    target, mirrored = index % n, index >= n
    separation = np.linalg.norm(keypoints.points[target] - keypoints.points[:, None, :], axis=2)
    dist[separation < min_displacement] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")
    return Neighbours(*(np.take_along_axis(a, order, axis=1) for a in (dist, target, mirrored)))


def flann_neighbours(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (n, k), of every query's k nearest rows of `database` (float32),
    nearest first; inf and 0 where FLANN found fewer.

    FLANN's randomised kd-trees are 5x faster than brute force at 5000 keypoints and lost no
    copy in our tests (near-identical descriptors are found exactly). They draw on OpenCV's
    RNG: reseeding it makes each image's answer independent of whatever ran before. The index
    answers in arrays: a matcher's DMatch objects cost a tenth of the search to unpack.
    """
    cv2.setRNGSeed(FLANN_SEED)
    index = cv2.flann_Index(database, {"algorithm": FLANN_KDTREE, "trees": FLANN_TREES})
    found, squared = index.knnSearch(queries, k, params={"checks": FLANN_CHECKS})
    missing = found < 0
    return np.where(missing, np.inf, np.sqrt(squared)).astype(np.float32), np.where(missing, 0, found).astype(np.int64)


def g2nn_matches(neighbours: Neighbours, ratio: float) -> tuple[Matches, Matches]:
    """Plain and mirrored self-matches by the generalised 2NN test.

    With a keypoint's neighbour distances sorted d1 <= d2 <= ..., the matches are the neighbours
    up to the first clear jump, the first k with d_k < ratio * d_(k+1). One copy gives a jump
    after d1, three copies after d3, and a keypoint whose neighbours all look alike has no jump
    within KNN neighbours and matches nothing.
    """
    dist = neighbours.dist
    n, k = dist.shape
    jump = (dist[:, :-1] < ratio * dist[:, 1:]) & np.isfinite(dist[:, 1:])
    first_jump = np.where(jump.any(axis=1), jump.argmax(axis=1), -1)
    accepted = np.arange(k)[None, :] <= first_jump[:, None]
    query = np.broadcast_to(np.arange(n)[:, None], (n, k))
    return tuple(
        Matches(src=neighbours.target[keep], dst=query[keep], mirrored=flag)
        for flag in (False, True)
        for keep in [accepted & (neighbours.mirrored == flag)]
    )


# ---------------------------------------------------------------- transforms


def find_clusters(keypoints: Keypoints, shape: tuple[int, int], params: KeypointParams) -> list[Cluster]:
    """Transforms that keypoint spots agree on, best supported first (verify_cluster asks for more
    evidence of those with fewer than params.min_inliers spots)."""
    radius = max(MIN_CLUSTER_RADIUS, CLUSTER_RADIUS_FRACTION * max(shape))
    neighbours = find_neighbours(keypoints, params.min_displacement)
    clusters = [
        guided_inliers(seed, neighbours, keypoints.points, params.ransac_threshold, radius)
        for matches in g2nn_matches(neighbours, params.ratio)
        for src, dst in group_matches(matches, keypoints.points, radius)
        for seed in fit_transforms(src, dst, keypoints, matches.mirrored, shape[1], params.ransac_threshold)
    ]
    return sorted(clusters, key=lambda c: c.n_inliers, reverse=True)[:MAX_CLUSTERS]


def group_matches(matches: Matches, points: np.ndarray, radius: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Matches that may share one transform, as (src, dst) index arrays, one direction per pair.

    Two matches are linked when their sources and their copies both lie within `radius`, and a
    match is linked with its reverse (A->B with B->A), so a group holds both directions of one
    source-copy pair. Each group is then turned to face one way (sources near the sources of its
    largest one-way part) and duplicates are dropped: fitting both directions at once would let a
    half turn about the midpoint explain any single pair twice over.
    """
    if len(matches.src) == 0:
        return []
    ends = np.hstack([points[matches.src], points[matches.dst]])
    near = cKDTree(ends).query_pairs(radius, p=np.inf, output_type="ndarray").reshape(-1, 2)
    position = {pair: i for i, pair in enumerate(zip(matches.src.tolist(), matches.dst.tolist()))}
    reverse = np.array([(i, position[(d, s)]) for (s, d), i in position.items() if (d, s) in position],
                       dtype=np.int64).reshape(-1, 2)
    one_way = _components(near, len(ends))
    groups = _components(np.vstack([near, reverse]), len(ends))
    oriented = []
    for label in np.unique(groups):
        members = np.flatnonzero(groups == label)
        largest = np.bincount(one_way[members]).argmax()
        reference = ends[members[one_way[members] == largest]].mean(axis=0)
        as_is = np.abs(ends[members] - reference).sum(axis=1)
        swapped = np.abs(ends[members][:, [2, 3, 0, 1]] - reference).sum(axis=1)
        turn = swapped < as_is
        src, dst = matches.src[members], matches.dst[members]
        pairs = np.unique(np.stack([np.where(turn, dst, src), np.where(turn, src, dst)], axis=1), axis=0)
        oriented.append((pairs[:, 0], pairs[:, 1]))
    return oriented


def _components(edges: np.ndarray, n: int) -> np.ndarray:
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def fit_transforms(src: np.ndarray, dst: np.ndarray, keypoints: Keypoints, mirrored: bool, width: int,
                   threshold: float) -> list[Cluster]:
    """Iterated RANSAC on one group: fit a similarity, keep its inliers, remove them, repeat.

    A mirrored match is fitted as a similarity from the reflected source to the copy, and the
    reflection is folded into the transform. A group of a single spot (a small object often
    has no more) proposes the similarity of its keypoint frames instead: position, scale and
    orientation. Proposals need no more support here: guided_inliers counts their support.
    """
    points = keypoints.points
    reflect = reflection(width) if mirrored else np.eye(3)
    if count_spots(points[src]) == 1:
        transform = frame_transform(keypoints, src[0], dst[0], reflect)
        return [Cluster(transform, src, dst, mirrored, 1)] if plausible_scale(transform) else []
    clusters = []
    remaining = np.arange(len(src))
    while len(remaining) >= MIN_SEED_SPOTS:
        p, q = points[src[remaining]], points[dst[remaining]]
        similarity, flags = cv2.estimateAffinePartial2D(apply_transform(reflect[:2], p), q, method=cv2.RANSAC,
                                                        ransacReprojThreshold=threshold, maxIters=2000,
                                                        confidence=0.995)
        if similarity is None:
            break
        inliers = flags.ravel().astype(bool)
        n_inliers = count_spots(p[inliers])
        if n_inliers < MIN_SEED_SPOTS:
            break
        transform = (homogeneous(similarity) @ reflect)[:2]
        if plausible_scale(transform):
            kept = remaining[inliers]
            clusters.append(Cluster(transform, src[kept], dst[kept], mirrored, n_inliers))
        remaining = remaining[~inliers]
    return clusters


def frame_transform(keypoints: Keypoints, src: int, dst: int, reflect: np.ndarray) -> np.ndarray:
    """The similarity (after `reflect`) taking keypoint `src`'s frame onto keypoint `dst`'s."""
    p = apply_transform(reflect[:2], keypoints.points[src][None])[0]
    angle = keypoints.angles[src] if reflect[0, 0] > 0 else 180.0 - keypoints.angles[src]
    turn = np.deg2rad(keypoints.angles[dst] - angle)
    scale = keypoints.sizes[dst] / keypoints.sizes[src]
    linear = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    similarity = np.hstack([linear, (keypoints.points[dst] - linear @ p)[:, None]])
    return (homogeneous(similarity) @ reflect)[:2]


def guided_inliers(cluster: Cluster, neighbours: Neighbours, points: np.ndarray, tolerance: float,
                   reach: float) -> Cluster:
    """The cluster with every pair its transform explains among the top GUIDED_RANK neighbours.

    On a small object, SIFT windows reach into background that differs between source and copy,
    so a true counterpart is often the nearest descriptor without passing the ratio test. Once a
    transform is known, a neighbour sitting where it predicts is evidence too (guided matching).
    Only keypoints within `reach` of the cluster's own are asked, so that chance agreement
    elsewhere in the image cannot inflate the count.
    """
    rank = min(GUIDED_RANK, neighbours.dist.shape[1])
    query = np.broadcast_to(np.arange(len(points))[:, None], (len(points), rank))
    target = neighbours.target[:, :rank]
    usable = np.isfinite(neighbours.dist[:, :rank]) & (neighbours.mirrored[:, :rank] == cluster.mirrored)
    src, dst = [cluster.src], [cluster.dst]
    # The asking keypoint may sit on the copy (its neighbour on the source) or on the source.
    for source_end, copy_end, anchors in ((target, query, cluster.dst), (query, target, cluster.src)):
        asked = usable & _within(points, points[anchors], reach)[query]
        s, d = source_end[asked], copy_end[asked]
        fits = _residual(cluster.transform, points[s], points[d]) < tolerance
        src.append(s[fits])
        dst.append(d[fits])
    pairs = np.unique(np.stack([np.concatenate(src), np.concatenate(dst)], axis=1), axis=0)
    return Cluster(cluster.transform, pairs[:, 0], pairs[:, 1], cluster.mirrored, count_spots(points[pairs[:, 0]]))


def count_spots(points: np.ndarray) -> int:
    """Distinct positions: SIFT gives a spot one keypoint per dominant orientation."""
    return len(np.unique(np.round(points), axis=0))


def _within(points: np.ndarray, anchors: np.ndarray, reach: float) -> np.ndarray:
    distance, _ = cKDTree(anchors).query(points, distance_upper_bound=reach)
    return np.isfinite(distance)


def reflection(width: int) -> np.ndarray:
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def homogeneous(transform: np.ndarray) -> np.ndarray:
    return np.vstack([transform, [0.0, 0.0, 1.0]])


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    return (points @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def invert(transform: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(transform)


def _residual(transform: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return np.linalg.norm(apply_transform(transform, src) - dst, axis=1)


def transform_scale(transform: np.ndarray) -> float | np.ndarray:
    """How much larger the copy is than its source, by length; one per transform of a (n, 2, 3) stack."""
    return np.sqrt(np.abs(np.linalg.det(transform[..., :2])))


def plausible_scale(transform: np.ndarray) -> bool | np.ndarray:
    """Whether the transform's scale is that of a copy; one answer per transform of a (n, 2, 3) stack."""
    scale = transform_scale(transform)
    return (SCALE_RANGE[0] <= scale) & (scale <= SCALE_RANGE[1])


# ---------------------------------------------------------------- dense verification


def verify_cluster(work: WorkingImage, keypoints: Keypoints, cluster: Cluster,
                   params: KeypointParams) -> VerifiedCopy | None:
    """The copied region and its source if the transform holds densely, else None.

    The copy is every well-correlated component touching the inlier keypoints (the seed), sought
    within a margin around them as wide as the seed itself: keypoints say where a copy is, the
    dense correlation says how far it extends. It is rejected if it is too small, maps onto
    itself (a symmetric object), does not carry its source's fine grain (a look-alike with its
    own noise), or is drawn rather than imaged (text, scale bars). Whether it continues one step
    further (a lattice) is recorded, to be judged with its whole event.
    """
    seed = _seed(work.shape, keypoints.points[cluster.dst], keypoints.sizes[cluster.dst])
    margin = max(MIN_SEARCH_MARGIN, round(np.sqrt(seed.sum() / np.pi)))
    search = dilated(seed, margin)
    box = bounding_box(search, pad=NCC_WINDOW)
    copy = copied_region(work, cluster.transform, seed, search, box, params)
    if copy.sum() < params.min_region_area:
        return None
    # The keypoint fit can be a pixel off at the object's edge, and a dense fit can drift on a
    # small region; the fine grain, which decorrelates within a pixel, tells which is right.
    candidates = [(cluster.transform, copy)]
    refined = refine_transform(work, cluster.transform, copy, params.max_anisotropy)
    if refined is not cluster.transform:
        candidates.append((refined, copied_region(work, refined, seed, search, box, params)))
    grain, transform, copy = max(((fine_correlation(work, t, c), t, c) for t, c in candidates
                                  if c.sum() >= params.min_region_area), key=lambda g: g[0])
    source = warp_mask(copy, invert(transform))
    if min(copy.sum(), source.sum()) < params.min_region_area or overlaps_itself(source, copy):
        return None
    if grain < FINE_NCC_MIN or is_graphic(work.gray8, source | copy):
        return None
    peak = grain_peak(work, transform, copy, grain)
    if cluster.n_inliers < params.min_inliers and peak < params.grain_peak:
        return None
    return verified_copy(work, source, copy, transform, cluster.n_inliers, grain, peak, params)


def verified_copy(work: WorkingImage, source: np.ndarray, copy: np.ndarray, transform: np.ndarray, n_inliers: int,
                  grain: float, peak: float, params: KeypointParams) -> VerifiedCopy:
    """A copy that passed its checks, scored by its grain times the evidence of its inliers, with
    whether its pattern continues one more step (judged with its whole event)."""
    evidence = 1.0 - np.exp(-n_inliers / INLIER_SCALE)
    return VerifiedCopy(source=source, copy=copy, transform=transform, n_inliers=n_inliers,
                        score=float(np.clip(grain * evidence, 0.0, 1.0)), grain_peak=peak,
                        periodic=is_periodic(work, transform, source, copy, grain, params))


def overlaps_itself(source: np.ndarray, copy: np.ndarray) -> bool:
    """A region laid mostly onto itself is a symmetric object or a texture, not a copy."""
    return (copy & source).sum() > MAX_SELF_OVERLAP * min(copy.sum(), source.sum())


def local_ncc(a: np.ndarray, b: np.ndarray, window: int, min_std: float,
              a_moments: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Zero-mean normalised cross-correlation of `a` and `b` in a sliding window, from box filters.

    Where either side's local standard deviation is below `min_std` the correlation means nothing
    (flat areas correlate with anything up to noise) and is NaN, which fails every threshold.
    `a_moments`, window_moments(a, window), spare their two filters where one `a` meets many `b`.
    """
    mu_a, var_a = window_moments(a, window) if a_moments is None else a_moments
    mu_b, var_b = window_moments(b, window)
    cov = window_mean(a * b, window) - mu_a * mu_b
    textured = np.minimum(var_a, var_b) >= max(min_std**2, 1e-6)
    # Divided in place where textured: gathering and scattering the textured pixels by a boolean
    # index cost more than the division itself.
    ncc = np.full(a.shape, np.nan, dtype=np.float32)
    return np.divide(cov, np.sqrt(var_a * var_b), out=ncc, where=textured)


def window_moments(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and variance of `x` in a sliding window."""
    mean = window_mean(x, window)
    return mean, np.maximum(window_mean(x * x, window) - mean * mean, 0.0)


def window_mean(x: np.ndarray, window: int) -> np.ndarray:
    return cv2.blur(x, (window, window), borderType=cv2.BORDER_REFLECT)


def correlation_in(image: np.ndarray, transform: np.ndarray, box: tuple[int, int, int, int],
                   min_std: float) -> np.ndarray:
    """local_ncc between `image` and `image` warped by `transform` (pixel x against its
    preimage), inside `box` = (x0, y0, x1, y1); NaN where the window's preimage leaves the image."""
    x0, y0, x1, y1 = box
    ncc = local_ncc(image[y0:y1, x0:x1], preimage_in(image, transform, box), NCC_WINDOW, min_std)
    ncc[~_preimage_inside(image.shape, transform, box)] = np.nan
    return ncc


def preimage_in(image: np.ndarray, transform: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """What `transform` moves onto each pixel of `box` = (x0, y0, x1, y1): `image` at the pixel's preimage."""
    x0, y0, x1, y1 = box
    shifted = transform.copy()
    shifted[:, 2] -= (x0, y0)
    return cv2.warpAffine(image, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _preimage_inside(shape: tuple[int, int], transform: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
    pre = apply_transform(invert(transform), np.stack([xs.ravel(), ys.ravel()], axis=1))
    h, w = shape
    inside = (pre[:, 0] >= 0) & (pre[:, 0] <= w - 1) & (pre[:, 1] >= 0) & (pre[:, 1] <= h - 1)
    window = np.ones((NCC_WINDOW, NCC_WINDOW), np.uint8)
    return cv2.erode(inside.reshape(xs.shape).astype(np.uint8), window, borderType=cv2.BORDER_REPLICATE) > 0


def copied_region(work: WorkingImage, transform: np.ndarray, seed: np.ndarray, search: np.ndarray,
                  box: tuple[int, int, int, int], params: KeypointParams) -> np.ndarray:
    """Where, within `search`, the image correlates with its preimage under `transform`: the
    cleaned components of NCC >= params.ncc_threshold (on textured pixels) that touch the seed."""
    x0, y0, x1, y1 = box
    ncc = correlation_in(work.gray, transform, box, params.min_texture_std)
    inside = clean_mask((ncc >= params.ncc_threshold) & search[y0:y1, x0:x1], params.min_region_area)
    copy = np.zeros(work.shape, dtype=bool)
    copy[y0:y1, x0:x1] = components_touching(inside, seed[y0:y1, x0:x1])
    return copy


def refine_transform(work: WorkingImage, transform: np.ndarray, copy: np.ndarray, max_anisotropy: float) -> np.ndarray:
    """The transform aligned densely (ECC) between `copy` and its source.

    A transform fitted to a handful of keypoints on a small object is off by a pixel or so at the
    object's edge, enough to lose fine texture. Returns the input itself if ECC fails, or moves
    any pixel of the copy more than MAX_REFINE_SHIFT, or is not near a similarity (see below).
    """
    x0, y0, x1, y1 = bounding_box(copy, pad=NCC_WINDOW)
    offset = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    backward = invert(transform)
    # ECC maps template (crop) coordinates into the input image: crop x -> T^-1(x + offset);
    # its mask lies on the input, so it is the source.
    warp = (homogeneous(backward) @ offset)[:2].astype(np.float32)
    source = warp_mask(copy, backward).astype(np.uint8)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, ECC_ITERATIONS, 1e-4)
    try:
        _, warp = cv2.findTransformECC(work.gray[y0:y1, x0:x1], work.gray, warp, cv2.MOTION_AFFINE, criteria,
                                       source, 1)
    except cv2.error:  # no convergence, or a degenerate region
        return transform
    refined = invert((homogeneous(warp.astype(np.float64)) @ np.linalg.inv(offset))[:2])
    pixels = np.argwhere(copy)[:, ::-1].astype(np.float32)
    if np.max(_residual(refined, apply_transform(backward, pixels), pixels)) > MAX_REFINE_SHIFT:
        return transform
    # A copy is moved rigidly: a similarity, perhaps mirrored. An affine map that stretches one
    # way more than the other has bent a look-alike onto its twin (on CVIP's originals, 0.77 against
    # 0.95), so it is no better evidence than the keypoints' own similarity.
    singular = np.linalg.svd(refined[:, :2], compute_uv=False)
    if singular[0] > max_anisotropy * singular[1]:
        return transform
    return refined


def fine_correlation(work: WorkingImage, transform: np.ndarray, copy: np.ndarray) -> float:
    """Median correlation of the fine grain (noise, fine texture) between the copy and its source,
    over the copy's pixels that have any grain (saturated ones have none); 0 if none has.

    The coarse correlation cannot tell a copy from a look-alike: two bands cast from one template
    correlate at 0.95 even with independent noise. But a copy carries its source's noise along,
    and a look-alike has its own. On the test figures the fine grain of true copies correlates at
    0.57 or more (0.8 or more without JPEG), that of template-cast blot bands at 0.5 or less (0.35
    or less without JPEG).

    A copy shrunk from its source carries the source's grain averaged, and the source's pixels,
    moved onto the copy, average it much as the resize did; a copy enlarged from its source spreads
    each pixel's grain over several, which no source pixel predicts. So a copy larger than its
    source (by over RESCALE_TOLERANCE) is judged the other way round: its source against it. On
    CVIP's photos whose copy was shrunk to half its size, judging the enlarged side lost half of
    them (oF1 0.47; 0.72 judged this way).
    """
    if transform_scale(transform) > 1.0 + RESCALE_TOLERANCE:
        inverse = invert(transform)
        source = warp_mask(copy, inverse)
        return fine_correlation(work, inverse, source) if source.any() else 0.0
    x0, y0, x1, y1 = bounding_box(copy, pad=NCC_WINDOW)
    ncc = correlation_in(work.fine, transform, (x0, y0, x1, y1), min_std=0.0)[copy[y0:y1, x0:x1]]
    ncc = ncc[np.isfinite(ncc)]
    return float(np.median(ncc)) if len(ncc) else 0.0


def grain_peak(work: WorkingImage, transform: np.ndarray, copy: np.ndarray, grain: float, step: float = 1.0) -> float:
    """How much the copy's fine-grain correlation (`grain`, at `transform`) exceeds its best `step` pixels off.

    Noise decorrelates within a pixel, shape does not: a copy's grain correlation peaks sharply
    at its transform, while two look-alikes (bands cast from one template, round cells) share
    the grain of their edges, which barely changes a pixel off. On the training figures the
    median peak of true copies is 0.25, that of look-alikes in authentic figures 0.02.
    """
    off = [fine_correlation(work, moved_by(transform, step * dx, step * dy), copy)
           for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    return grain - max(off)


def moved_by(transform: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`transform`, then a shift by (dx, dy)."""
    moved = transform.copy()
    moved[:, 2] += (dx, dy)
    return moved


def is_graphic(gray8: np.ndarray, region: np.ndarray) -> bool:
    """Text, arrows and scale bars: drawn in flat tones, in strokes a few pixels wide.

    A region is drawn if its two commonest grey levels (bins of GRAPHIC_BIN) cover most of it
    (a label on a plain margin), or if one exact grey level (the ink, give or take one) covers a
    good share of it, as a drawn tone (is_drawn_tone), in strokes that one erosion wipes out (a
    letter over an image), or if it is black-and-white lettering (is_lettering). A saturated cell
    is flat too, but solid; a textured object spreads over many exact levels. The region must
    not be empty.
    """
    # Only the region's box matters, padded beyond the stroke test's erosion; a small copy in a
    # large figure would otherwise pay for comparing every pixel of the figure several times.
    x0, y0, x1, y1 = bounding_box(region, pad=STROKE_WIDTH)
    gray8, region = gray8[y0:y1, x0:x1], region[y0:y1, x0:x1]
    levels = np.bincount(gray8[region], minlength=256)
    tones = levels.reshape(-1, GRAPHIC_BIN).sum(axis=1)
    if np.sort(tones)[-2:].sum() >= GRAPHIC_SHARE * region.sum():
        return True
    if is_lettering(gray8, region):
        return True
    ink_level = int(levels.argmax())
    ink = region & (np.abs(gray8.astype(np.int16) - ink_level) <= 1)
    return ink.sum() >= INK_SHARE * region.sum() and is_drawn_tone(levels, ink_level) and in_strokes(ink)


def is_drawn_tone(levels: np.ndarray, level: int) -> bool:
    """True when a region's grey-level histogram `levels` spikes at `level` as a drawn tone does:
    the level and its two neighbours hold TONE_SPIKE times the pixels of the next three levels
    on either side.

    Ink is laid at one level. The noise of an imaged background (the dark ground of a
    fluorescence figure) spreads about its commonest level as a bell instead, and its pixels at
    that level lie scattered, so that one erosion wipes them out as it wipes out strokes: without
    this test, a patch copied with such a ground was taken for drawn ink (its levels 4 to 6 held
    0.87 times the next three on either side).
    """
    near = levels[max(0, level - 1): level + 2].sum()
    flanks = levels[max(0, level - 4): max(0, level - 1)].sum() + levels[level + 2: level + 5].sum()
    return near >= TONE_SPIKE * flanks


def is_lettering(gray8: np.ndarray, region: np.ndarray) -> bool:
    """Black-and-white lettering (a label, a scale bar's text, over a margin or over the picture):
    the region reaches pure black and pure white, holds LETTERING_SHARE of it within INK_MARGIN
    levels of each end, and one of the two is in strokes.

    Anti-aliased letters spread over many grey levels, so no one level holds their ink; but a
    picture seldom holds both ends of the grey scale, in good shares, within one small region.
    On the training figures every false alarm left was such a label, and no true copy was.
    """
    values = gray8[region]
    if values.min() > PURE_INK or values.max() < 255 - PURE_INK:
        return False
    dark = region & (gray8 <= INK_MARGIN)
    bright = region & (gray8 >= 255 - INK_MARGIN)
    if min(dark.sum(), bright.sum()) < LETTERING_SHARE * len(values):
        return is_thin_lettering(gray8, region)
    return in_strokes(dark) or in_strokes(bright)


def is_thin_lettering(gray8: np.ndarray, region: np.ndarray) -> bool:
    """Small or recompressed lettering: on a plain margin (PLAIN_MARGIN_SHARE of the region within
    THIN_INK_MARGIN levels of one end), ink holding THIN_INK_SHARE of it within as many levels of
    the other end, in strokes so thin that one erosion wipes out all but THIN_STROKE_SHARE of them.

    Anti-aliasing blurs a small font's strokes, and a JPEG rings around them: their ink no longer
    lies near its end. On the validation figures recompressed at quality 75, the repeated letters
    of labels ("V" of "kV", "h" of "0 h") kept 0.04 to 0.08 of their region within INK_MARGIN of
    it, and every authentic figure called forged was such a label. The plain margin around them
    stays at its end, while a picture's ground is seldom that plain over half a copy; where it is
    (two lamps on a dark bush, their bright rims in thin arcs), the ink is not all hairlines.
    """
    dark = region & (gray8 <= THIN_INK_MARGIN)
    bright = region & (gray8 >= 255 - THIN_INK_MARGIN)
    margin, ink = (dark, bright) if dark.sum() >= bright.sum() else (bright, dark)
    area = region.sum()
    return (margin.sum() >= PLAIN_MARGIN_SHARE * area and ink.sum() >= THIN_INK_SHARE * area
            and in_strokes(ink, THIN_STROKE_SHARE))


def in_strokes(ink: np.ndarray, solid_share: float = INK_SOLID_SHARE) -> bool:
    """True when one erosion by a STROKE_WIDTH disc leaves under `solid_share` of the ink."""
    return cv2.erode(ink.astype(np.uint8), disc(STROKE_WIDTH)).sum() < solid_share * ink.sum()


def is_periodic(work: WorkingImage, transform: np.ndarray, source: np.ndarray, copy: np.ndarray, grain: float,
                params: KeypointParams) -> bool:
    """True when the pattern continues one more step either way: the source matches its own
    preimage, or the copy matches its image, in shape and in fine grain. Blot lanes, windows and
    lattices do; a forgery does not.

    The grain decides between a lattice and a copy pasted into one: the next step of a lattice
    shares the copy's fine structure about as well as the copy shares its source's (at least
    STEP_GRAIN_SHARE of `grain`, the copy's), while a lane pasted between look-alike lanes shares
    its source's noise and nothing with the next lane's. The steps are compared outside the
    (slightly widened) event only, since for a reflection or a half turn the next step is the
    source itself, which says nothing.
    """
    event = dilated(source | copy, NCC_WINDOW // 2)
    backward = invert(transform)
    # Each step is compared, pixel by pixel, with where it comes from in the event.
    for step, towards_event in ((warp_mask(source, backward), backward), (warp_mask(copy, transform), transform)):
        beyond = step & ~event
        # A sliver of the next step inside the image's edge says nothing either way.
        if beyond.sum() < max(params.min_region_area, PERIODIC_MIN_STEP * source.sum()):
            continue
        x0, y0, x1, y1 = box = bounding_box(beyond, pad=NCC_WINDOW)
        matched = correlation_in(work.gray, towards_event, box, params.min_texture_std) >= params.ncc_threshold
        repeats_shape = (matched & beyond[y0:y1, x0:x1]).sum() > PERIODIC_SHARE * beyond.sum()
        if repeats_shape and fine_correlation(work, towards_event, beyond) >= STEP_GRAIN_SHARE * grain:
            return True
    return False


def _seed(shape: tuple[int, int], points: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    seed = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(seed, cv2.convexHull(np.round(points).astype(np.int32)), 1)
    for (x, y), size in zip(points, sizes):
        cv2.circle(seed, (round(x), round(y)), max(1, round(SEED_RADIUS * size)), 1, thickness=-1)
    return seed.astype(bool)


# ---------------------------------------------------------------- events


def group_events(copies: list[VerifiedCopy]) -> list[list[VerifiedCopy]]:
    """Copies whose regions overlap belong to one event, best first. A source copied twice gives
    three verified pairs (source-copy1, source-copy2, copy1-copy2), all one event."""
    regions = [c.region for c in copies]
    areas = [r.sum() for r in regions]
    edges = np.array([(i, j) for i in range(len(copies)) for j in range(i + 1, len(copies))
                      if (regions[i] & regions[j]).sum() >= MERGE_OVERLAP * min(areas[i], areas[j])],
                     dtype=np.int64).reshape(-1, 2)
    labels = _components(edges, len(copies))
    groups = [[c for c, label in zip(copies, labels) if label == g] for g in np.unique(labels)]
    return sorted(groups, key=lambda g: max(c.score for c in g), reverse=True)


def pasted_copies(group: list[VerifiedCopy], min_area: int) -> list[VerifiedCopy]:
    """The copies of an event that were pasted: none if the event is a pattern (blot lanes, a
    lattice, tiled panels), else all but the steps of a pattern the paste lies in.

    An event is a pattern if one of its strongest copies continues periodically, or if its
    other copies spread over more than MAX_EVENT_BLOBS regions: a forger pastes an object a few
    times, not a dozen. Judging the whole event lets the periodic pairs of a lattice condemn the
    pairs whose next step would leave the image.

    The steps of a lattice are alike, so its periodic pairs carry its grain as well as any pair
    of it does. A lane pasted among look-alike lanes carries its source's noise, while the pairs
    of lanes around it share little more than their shape: those periodic pairs peak far lower
    than the paste, and say nothing against it, so they are left out. On the training figures
    such companions of pasted lanes peaked at 0.10 to 0.77 of their event's best copy; on the
    authentic training figures and on CVIP, every periodic event whose grain peaks at all
    (peaks, in copymove.py) had a periodic copy at its best.
    """
    strongest = max(c.grain_peak for c in group)
    if any(c.periodic and c.grain_peak >= PATTERN_PEAK_SHARE * strongest for c in group):
        return []
    pasted = [c for c in group if not c.periodic]
    return [] if not pasted or spreads_over_many_blobs(pasted, min_area) else pasted


def spreads_over_many_blobs(copies: list[VerifiedCopy], min_area: int) -> bool:
    """True when the copies' regions fall into more than MAX_EVENT_BLOBS blobs, slivers aside."""
    region = union([c.region for c in copies]).astype(np.uint8)
    _, _, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    blobs = areas >= max(min_area, SLIVER_SHARE * areas.max(initial=0))
    return int(blobs.sum()) > MAX_EVENT_BLOBS


def event_instance(group: list[VerifiedCopy], original_hw: tuple[int, int], to_work: np.ndarray) -> CopyMoveInstance:
    """The event at the original size: the mask resized exactly, the transforms conjugated back."""
    height, width = original_hw
    region = union([c.region for c in group]).astype(np.uint8)
    mask = cv2.resize(region, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    to_original = np.linalg.inv(to_work)
    return CopyMoveInstance(
        mask=mask,
        score=max(c.score for c in group),
        transforms=tuple((to_original @ homogeneous(c.transform) @ to_work)[:2] for c in group),
        n_inliers=sum(c.n_inliers for c in group),
    )
