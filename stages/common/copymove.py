"""The training-free copy-move detector (`--detector keypoint`): keypoint, dense, exact-copy and object paths.

Their copies are verified at one working size (stages/common/keypoint.py `working_scale`):

- the keypoint path (stages/common/keypoint.py) matches SIFT keypoints to each other, fits a
  transform to each agreeing group and verifies it densely; it finds small, rotated, flipped
  and scaled objects wherever they have corners;
- the dense path (stages/common/dense.py) matches a rotation-invariant feature at every few
  pixels and keeps the regions whose neighbourhoods moved as one; it finds what has few
  keypoints: rectangles of blot, smooth bands and lanes, blurred cells, whole panels;
- the exact-copy path (stages/common/exact.py) finds pasted copies by the noise they carry
  from their source: large ones, however smooth, by correlating the image's noise with itself
  under the eight axis-aligned orientations; small ones, a cell of 15 px, block by block;
- the object path (stages/common/objects.py) matches whole blobs by their polar images; it
  finds small objects copied at any turn, a cell of 20 px with too few keypoints for a transform.

A dense, exact or object proposal passes the same checks as a keypoint cluster: its transform is refined densely,
its copy must carry its source's fine grain and not be drawn, and its event must not continue
periodically (the weaker steps of a pattern a paste lies in are left out of its event). The
verified copies of all paths are then grouped into events together, so a copy several paths
find is one instance, explained by every transform that found it. Each copy of a
kept event is then grown over the pixels around it that carry its source's noise
(stages/common/extent.py): the paths mark a copy where their evidence lies, a paste reaches
over the smooth stretches too.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from .config import KeypointParams
from .dense import DenseProposal, dense_proposals
from .exact import exact_proposals
from .extent import figure_noise, grown, grown_exactly
from .keypoint import (FINE_NCC_MIN, MERGE_OVERLAP, MIN_IMAGE_SIDE, RESCALE_TOLERANCE, CopyMoveInstance, VerifiedCopy, WorkingImage,
                       event_instance, fine_correlation, grain_peak, group_events, invert, is_graphic,
                       keypoint_copies, pasted_copies, preimage_in, refine_transform, scale_matrix, to_gray, transform_scale,
                       verified_copy, working_image)
from .masks import bounding_box, disc, merge_overlapping, union, warp_mask
from .objects import LookAlikes, look_alikes, object_proposals

MIN_GRAIN_PEAK = 0.05  # an event none of whose copies' grain peaks this much is a look-alike (see grain_peak)
INTERIOR_MARGIN = 3  # pixels between a copy's edge and the grain that tells it from a look-alike
MIN_INTERIOR_PIXELS = 16  # fewer, and a copy is too small or thin to show any grain inside
FLAT_SHARE = 1 / 3  # the share of a copy's interior, its flattest, where look-alikes show only their own noise
MIN_FLAT_NOISE = 0.5  # grey levels of grain: under it, flat paint holds little more than rounding's own (0.29)
EXACT_SPILL = 16  # working pixels a mask may spill over an exact copy's edge (its windows, cleaning and growth)


def detect_copy_move(image: np.ndarray, params: KeypointParams) -> list[CopyMoveInstance]:
    """Copy-move events in an RGB uint8 (H, W, 3) image, best first; [] means authentic.

    A 2-D uint8 grayscale image is accepted too. Raises ValueError for any other array.
    """
    gray = to_gray(image)
    height, width = gray.shape
    if min(height, width) < MIN_IMAGE_SIDE:
        return []
    work = working_image(gray, params)
    copies = path_copies(gray, work, params)
    events = [pasted_copies(g, params.min_region_area) for g in group_events(copies)]
    events = [g for g in events if g and is_pasted(work, g, params)]
    events = without_weak_events(events, params)
    to_work = scale_matrix(work.shape, (height, width))
    # Drawn content is judged again at its own resolution: upscaling a small figure to the working
    # size blurs a label's flat tones into many levels, and a repeated "kDa" or "10 um" then
    # passes for a picture. It is judged on the masks the paths found: a mask grown over the
    # picture around a label would outvote the label's flat tones.
    instances = [event_instance(group, (height, width), to_work) for group in events]
    kept = [(group, instance) for group, instance in zip(events, instances) if not is_graphic(gray, instance.mask)]
    if not params.extent.enabled:
        return [instance for _, instance in kept]
    spill = int(np.ceil(EXACT_SPILL / to_work[0, 0]))
    noise = figure_noise(gray, work) if kept else None
    grown_events = [grown_exactly(gray, event_instance([grown(work, copy, params.extent, noise) for copy in group],
                                                       (height, width), to_work), spill) for group, _ in kept]
    # Grown to their true extent, two events may turn out to be parts of one copy (a tower's lamp and its body).
    return [joined([grown_events[i] for i in g]) for g in merge_overlapping([e.mask for e in grown_events], MERGE_OVERLAP)]


def joined(instances: list[CopyMoveInstance]) -> CopyMoveInstance:
    """One event of several, the best first: their masks, transforms and inliers together."""
    if len(instances) == 1:
        return instances[0]
    return CopyMoveInstance(mask=union([i.mask for i in instances]), score=instances[0].score,
                            transforms=sum((i.transforms for i in instances), ()),
                            n_inliers=sum(i.n_inliers for i in instances))


def path_copies(gray: np.ndarray, work: WorkingImage, params: KeypointParams) -> list[VerifiedCopy]:
    """The verified copies of the keypoint, dense, exact and object paths, in that order. The
    object path comes last: it skips blob pairs inside copies the others found.

    Where the process may spend a second core (OpenCV's thread budget, which runtime.apply_threads
    sets: one in each screening worker), the exact path and the object path's look-alike search
    (which needs no other path's copies) run in two threads beside the keypoint and dense paths.
    Their FFTs, KD-trees and OpenCV calls release the GIL, and the three threads keep both cores
    busy: on the 1-megapixel benchmark figure, two threads (the object path run whole at the end)
    left a core idle for its last third. Each path seeds its own randomness (OpenCV's generator
    is per thread), so the answer is the same either way.

    The paths are the parallelism, so NumPy's BLAS is held to one thread while they run: its own
    pool, a thread per core, only oversubscribes the cores the paths already fill. On the
    1-megapixel benchmark figure that took 1.59 s against 1.72 s (medians of five rounds run side
    by side on an Intel host, every mask the same). The limit is the process's, for this call.
    """
    one_core = cv2.getNumThreads() < 2
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max_workers=1 if one_core else 2) as beside:
        exact = beside.submit(exact_copies, gray, work, params)
        alike = beside.submit(look_alikes, work, params.min_displacement, params.objects)
        if one_core:
            wait([exact, alike])  # one after the other, rather than share the core with each other and the rest
        found = keypoint_copies(work, params) + dense_copies(work, params) + exact.result()
        return found + object_copies(work, params, alike.result(), known=found)


def is_pasted(work: WorkingImage, event: list[VerifiedCopy], params: KeypointParams) -> bool:
    """False for an event of look-alikes: its grain peaks at none of its transforms (`peaks`), or
    its copies lose their source's grain inside their edge (`keeps_grain_inside`) and fewer than
    params.strong_inliers inliers back it. A JPEG re-quantises a copy's grain block by block (a
    pasted rectangle of blot keeps 0.63 to 0.70 of it inside at quality 90, behind 300 to 800
    inliers), while look-alikes share a few dozen matches at most (59 on CVIP's painted letters).
    """
    return peaks(event) and (support(event) >= params.strong_inliers
                             or keeps_grain_inside(work, event, params.min_interior_grain, params.min_flat_grain))


def without_weak_events(events: list[list[VerifiedCopy]], params: KeypointParams) -> list[list[VerifiedCopy]]:
    """The events, less the weak ones: those with fewer than params.weak_inliers inliers, in an
    image whose strongest event has over 1 / params.weak_share times as many, or that rescale.

    A handful of chance matches can pass verification on look-alike texture; beside a copy that
    hundreds of matches support, they are far likelier chance than a second forgery, and each
    false instance divides the image's oF1. A weak event alone is kept, as all the evidence,
    unless every one of its transforms rescales: a similarity has twice the unknowns of a shift,
    so a handful of spots fits one by chance among look-alike cells of many sizes. A weak event
    with params.min_inliers spots whose grain peaks by params.grain_peak is kept beside any other:
    chance matches share no noise, and a small turned cell offers only a few spots.
    """
    supports = [support(g) for g in events]
    strongest = max(supports, default=0)
    return [g for g, n in zip(events, supports)
            if n >= params.weak_inliers or (n >= params.min_inliers and peaks(g, params.grain_peak))
            or (n >= params.weak_share * strongest and not rescales(g))]


def support(event: list[VerifiedCopy]) -> int:
    """The inliers behind all the event's copies."""
    return sum(c.n_inliers for c in event)


def peaks(event: list[VerifiedCopy], by: float = MIN_GRAIN_PEAK) -> bool:
    """True when the grain of at least one copy of the event peaks at its transform by `by`.

    Where it does not, source and copy share their shape and not their noise: look-alikes, such
    as bands cast from one template, whose smooth edges pass for grain (keypoint.py `grain_peak`).
    """
    return max(c.grain_peak for c in event) >= by


def rescales(event: list[VerifiedCopy]) -> bool:
    """True when every copy of the event is larger or smaller than its source by over RESCALE_TOLERANCE."""
    return all(abs(transform_scale(c.transform) - 1.0) > RESCALE_TOLERANCE for c in event)


def dense_copies(work: WorkingImage, params: KeypointParams) -> list[VerifiedCopy]:
    return verified_copies(work, dense_proposals(work, params.dense), params)


def object_copies(work: WorkingImage, params: KeypointParams, found: LookAlikes | None,
                  known: list[VerifiedCopy]) -> list[VerifiedCopy]:
    """Small objects copied at any turn (stages/common/objects.py), from the figure's look-alike
    blob pairs (`found`) that no `known` copy explains. A blob carries too few points
    for the weak-event rule to judge, so its copy must itself show the grain of a paste: a sharp
    peak, and the source's grain inside, away from the edge look-alike objects share.

    The peak is judged one figure pixel off, not one working pixel: a small figure upscaled to the
    working size spreads its noise over several working pixels, and a pasted cell's grain then
    barely drops a working pixel off (0.03 to 0.10, against 0.15 needed, on a validation figure
    worked on at 1.76 times its size).
    The other paths keep the working pixel: their copies are larger, and judged with their keypoints."""
    proposals = object_proposals(work, found, params.objects, known)
    return [copy for copy in verified_copies(work, proposals, params, peak_step=work.pixel)
            if copy.grain_peak >= params.grain_peak and has_grain_inside(work, copy, params.objects.min_interior_grain)]


def has_grain_inside(work: WorkingImage, copy: VerifiedCopy, min_grain: float) -> bool:
    """True when the copy has an interior and keeps `min_grain` of its source's grain there."""
    grain = interior_grain(work, copy)
    return grain is not None and grain >= min_grain


def interior_grain(work: WorkingImage, copy: VerifiedCopy) -> float | None:
    """Fine-grain correlation inside the copy, INTERIOR_MARGIN pixels from its edge, or None where
    it has no interior (under MIN_INTERIOR_PIXELS there): look-alike objects (keys of a keyboard,
    painted letters) share their edges, not the noise inside."""
    inner = interior(copy.copy)
    return fine_correlation(work, copy.transform, inner) if inner.sum() >= MIN_INTERIOR_PIXELS else None


def interior(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels INTERIOR_MARGIN or more from its edge."""
    return cv2.erode(mask.astype(np.uint8), disc(2 * INTERIOR_MARGIN + 1)) > 0


def flat_grain(work: WorkingImage, copy: VerifiedCopy) -> float | None:
    """Correlation of the fine grain between the copy and its source over the flattest FLAT_SHARE
    of the copy's interior, or None where it has no interior, or no grain there (under
    MIN_FLAT_NOISE on either side: saturated, or flattened by a JPEG).

    `interior_grain` keeps a copy's edge out, not the edges inside it: two letters of a painted
    sign share their strokes, whose grain correlates at 0.83 to 0.91 at the transform. On the
    flat paint between them each letter has only its own noise, which a copy carries from its
    source. Flat is judged on both sides (the copy's pixels and their preimages), by the gradient
    of the image without its grain (`WorkingImage.edges`). Pooled over those pixels, not window by window: a window of
    flat paint has too little grain to correlate on its own. An enlarged copy is judged from its
    source, as `fine_correlation` judges it.
    """
    side, transform = copy.copy, copy.transform
    if transform_scale(transform) > 1.0 + RESCALE_TOLERANCE:
        side, transform = copy.source, invert(transform)
    inner = interior(side)
    if inner.sum() < MIN_INTERIOR_PIXELS:
        return None
    box = x0, y0, x1, y1 = bounding_box(inner, pad=1)
    inside = inner[y0:y1, x0:x1]
    edge = np.maximum(work.edges[y0:y1, x0:x1], preimage_in(work.edges, transform, box))[inside]
    flat = edge <= np.quantile(edge, FLAT_SHARE)
    grain, source_grain = work.fine[y0:y1, x0:x1][inside][flat], preimage_in(work.fine, transform, box)[inside][flat]
    if min(grain.std(), source_grain.std()) < MIN_FLAT_NOISE:
        return None
    return float(np.corrcoef(grain, source_grain)[0, 1])


def keeps_grain_inside(work: WorkingImage, event: list[VerifiedCopy], min_grain: float, min_flat_grain: float) -> bool:
    """False when no copy of the event keeps `min_grain` of its source's grain inside its edge
    (`interior_grain`) and `min_flat_grain` on the flattest part of it (`flat_grain`), judging
    only copies with an interior: a thin copy has none to judge.

    Look-alikes that pass every other test (two buttons of one make, two letters of a painted
    sign, blocks cast from one mould) have sharp edges in common, whose grain peaks at the
    transform as a pasted copy's does; inside, each has its own noise. On CVIP Dataset 0 such
    events kept 0.60 to 0.91 of the grain inside, its true copies 0.999 or more; on the training
    figures, whose copies are recompressed, true events kept 0.80 or more, and a CVIP copy shrunk
    to half its size (its noise averaged, not carried) 0.80. So `min_grain` (0.75 by default)
    drops the look-alikes under it. Those that keep more inside (0.80 to 0.91: the letters' and
    buttons' inner edges) read 0.07 to 0.28 on their flat paint (`flat_grain`), where a copy keeps
    its source's noise: `min_flat_grain` (0.5, halfway between a look-alike's own noise and its
    source's) drops them. An object copy must keep more inside (params.objects.min_interior_grain,
    in object_copies): it has no keypoints behind it.
    """
    judged = [(grain, c) for c in event if (grain := interior_grain(work, c)) is not None]
    return not judged or any(grain >= min_grain and at_least(flat_grain(work, c), min_flat_grain) for grain, c in judged)


def at_least(value: float | None, floor: float) -> bool:
    """True where `value` reaches `floor`, or could not be measured."""
    return value is None or value >= floor


def exact_copies(gray: np.ndarray, work: WorkingImage, params: KeypointParams) -> list[VerifiedCopy]:
    """Copies that carry their source's grain, found at the original size (`gray`) where it is
    small enough: resampling to the working size would blur the grain they are found by."""
    proposals = exact_proposals(gray, work.shape, params.min_displacement, params.exact)
    return verified_copies(work, proposals, params, min_grain=params.exact.min_grain)


def verified_copies(work: WorkingImage, proposals: list[DenseProposal], params: KeypointParams,
                    min_grain: float = FINE_NCC_MIN, peak_step: float = 1.0) -> list[VerifiedCopy]:
    return [c for c in (verify_proposal(work, p, params, min_grain, peak_step) for p in proposals) if c is not None]


def verify_proposal(work: WorkingImage, proposal: DenseProposal, params: KeypointParams,
                    min_grain: float = FINE_NCC_MIN, peak_step: float = 1.0) -> VerifiedCopy | None:
    """The proposal as a verified copy, or None when it fails the keypoint path's dense checks.

    The dense field is coarser than the working image, so its transform can be a pixel off, which
    is enough to lose the fine grain; the densely refined transform is tried too, and the one
    whose copy carries its source's grain best is kept.
    """
    candidates = [proposal.transform]
    refined = refine_transform(work, proposal.transform, warp_mask(proposal.source, proposal.transform),
                               params.max_anisotropy)
    if refined is not proposal.transform:
        candidates.append(refined)
    grain, transform = max((fine_correlation(work, t, warp_mask(proposal.source, t)), i, t)
                           for i, t in enumerate(candidates))[::2]
    copy = warp_mask(proposal.source, transform)
    source = warp_mask(copy, invert(transform))
    if min(copy.sum(), source.sum()) < params.min_region_area:
        return None
    if grain < min_grain or is_graphic(work.gray8, source | copy):
        return None
    return verified_copy(work, source, copy, transform, proposal.n_points, grain,
                         grain_peak(work, transform, copy, grain, peak_step), params)
