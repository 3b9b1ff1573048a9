"""The object path (stages/common/objects.py): small objects copied at any turn, found whole."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from stages.common.copymove import detect_copy_move
from stages.common.keypoint import STROKE_WIDTH, VerifiedCopy, WorkingImage, in_strokes, transform_scale
from stages.common.masks import warp_mask
from stages.common.objects import (ANGLES, NESTED, RINGS, Blobs, BlobPair, Regions, best_turns, distinct, distinctive,
                                   look_alikes, object_proposals, regions_in_strokes)

from test_dense import PARAMS, noisy, pixel_f1

NO_OBJECTS = dataclasses.replace(PARAMS, objects=dataclasses.replace(PARAMS.objects, enabled=False))


def cell_field(rng: np.random.Generator, height: int = 300, width: int = 520,
               cells: int = 34) -> tuple[np.ndarray, list, list]:
    """Fluorescent cells about 20 px across, bright and grainy, apart on a dark, faintly uneven
    field: every cell has a dozen look-alikes. Returns the image, the centres and the half-axes."""
    image = 30.0 + 6.0 * cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 8.0)
    centres, axes = [], []
    while len(centres) < cells:
        centre = (int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20)))
        if any(np.hypot(centre[0] - x, centre[1] - y) < 30 for x, y in centres):
            continue
        half_axes = (int(rng.integers(9, 12)), int(rng.integers(6, 10)))
        cell = np.zeros((height, width), np.float32)
        cv2.ellipse(cell, centre, half_axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.5)
        image += cv2.GaussianBlur(cell, (0, 0), 1.2) * (float(rng.uniform(110, 170)) + 60.0 * grain)
        centres.append(centre)
        axes.append(half_axes)
    return noisy(image, rng, 2.0), centres, axes


def paste_cell(gray: np.ndarray, centre: tuple[int, int], target: tuple[int, int], angle: float,
               radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The cell at `centre` (its bright pixels within `radius`), turned by `angle` degrees and
    pasted at `target` over the background: the object alone, not a disc of its surroundings."""
    height, width = gray.shape
    transform = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0)
    transform[:, 2] += np.subtract(target, centre)
    disc = np.zeros(gray.shape, np.uint8)
    cv2.circle(disc, centre, radius, 1, -1)
    source = (disc > 0) & (cv2.GaussianBlur(gray, (0, 0), 1.0) > 70)
    copy = cv2.warpAffine(source.astype(np.uint8), transform, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
    warped = cv2.warpAffine(gray, transform, (width, height), flags=cv2.INTER_LINEAR)
    return np.where(copy, warped, gray), source | copy


def forged_cell_field(seed: int, copies: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """A cell field with its first cell turned by random angles and pasted `copies` times on free
    background. Returns the image, the truth (source and copies) and the first copy's angle."""
    rng = np.random.default_rng(seed)
    forged, centres, axes = cell_field(rng)
    truth, angles, taken = np.zeros(forged.shape, bool), [], list(centres)
    while len(angles) < copies:
        target = (int(rng.integers(20, 500)), int(rng.integers(20, 280)))
        if all(np.hypot(target[0] - x, target[1] - y) > 32 for x, y in taken):
            angles.append(float(rng.uniform(20, 340)))
            forged, pasted = paste_cell(forged, centres[0], target, angles[-1], max(axes[0]) + 3)
            truth |= pasted
            taken.append(target)
    return forged, truth, angles[0]


def turn_degrees(transform: np.ndarray) -> float:
    """The turn of a 2x3 similarity, in OpenCV's sense (counter-clockwise on screen is positive)."""
    return float(np.degrees(np.arctan2(-transform[1, 0], transform[0, 0]))) % 360


def angle_gap(a: float, b: float) -> float:
    """Degrees between two angles, the short way round."""
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.parametrize("seed", [1, 5])
def test_small_cell_turned_and_pasted_is_found(seed):
    forged, truth, angle = forged_cell_field(seed)
    instances = detect_copy_move(forged, PARAMS)
    assert len(instances) == 1
    assert pixel_f1(instances[0].mask, truth) >= 0.7
    # the object path found it: without it, no path does (too few keypoints, a background the copy does not share)
    assert detect_copy_move(forged, NO_OBJECTS) == []


def test_object_proposal_carries_the_turn_and_scale():
    forged, truth, angle = forged_cell_field(1)
    work = WorkingImage.of(forged)
    proposals = object_proposals(work, look_alikes(work, PARAMS.min_displacement, PARAMS.objects), PARAMS.objects, known=[])
    assert proposals
    best = proposals[0]
    assert pixel_f1(best.source, truth) > 0.3  # the source cell, with its rim, is one half of the truth
    turned = turn_degrees(best.transform)
    assert min(angle_gap(turned, angle), angle_gap(turned, -angle)) < 8  # source to copy, or copy to source
    assert abs(transform_scale(best.transform) - 1.0) < 0.15


@pytest.mark.parametrize("seed", [4, 111])
def test_field_of_look_alike_cells_is_authentic(seed):
    # Two different cells of one shape correlate on their edges; these fields fooled the object
    # path before the ratio test against each blob's other look-alikes.
    gray, _, _ = cell_field(np.random.default_rng(seed))
    assert detect_copy_move(gray, PARAMS) == []


def polar_blob(rng: np.random.Generator) -> np.ndarray:
    samples = rng.normal(0, 1, (RINGS, ANGLES))
    samples -= samples.mean(axis=1, keepdims=True)
    return samples / np.linalg.norm(samples)


@pytest.mark.parametrize("shift, mirrored", [(0, False), (13, False), (40, True), (63, True)])
def test_best_turn_is_the_cyclic_shift_as_it_is_or_mirrored(shift, mirrored):
    source = polar_blob(np.random.default_rng(shift))
    turned = source[:, ::-1] if mirrored else source
    turned = np.roll(np.roll(turned, 1 if mirrored else 0, axis=1), shift, axis=1)  # x[-t], then turned by shift
    spectra = np.fft.rfft(np.stack([source, turned]), axis=2)
    ncc, found, flipped = best_turns(spectra[:1], spectra[1:])
    assert ncc[0] == pytest.approx(1.0, abs=1e-6)
    assert flipped[0] == mirrored
    assert found[0] == pytest.approx(shift, abs=1e-6)


def test_ratio_test_keeps_clear_matches_and_drops_matches_among_look_alikes():
    # blobs 0 and 1: a copy (ncc 0.99) whose nearest rival, blob 2, is at 0.90;
    # blobs 2 to 5: look-alikes whose distances rise gradually, with no clear jump;
    # blobs 6 to 9: a source pasted three times (0.99 between any two), blob 5 far behind at 0.80
    look_alikes = [(2, 3, 0.96), (2, 4, 0.95), (2, 5, 0.94), (3, 4, 0.95), (3, 5, 0.93), (4, 5, 0.92)]
    pasted = [(a, b, 0.99) for a in range(6, 10) for b in range(a + 1, 10)] + [(a, 5, 0.80) for a in range(6, 10)]
    centres = np.array([[100.0 * i, 0.0] for i in range(10)])
    blobs = Blobs(cores=[np.zeros((1, 2), int)] * 10, centres=centres, radii=np.full(10, 10.0),
                  polar=np.zeros((10, RINGS, ANGLES), np.float32))
    pairs = [BlobPair(a, b, ncc, np.eye(2, 3)) for a, b, ncc in [(0, 1, 0.99), (0, 2, 0.90)] + look_alikes + pasted]
    kept = {(p.source, p.copy) for p in distinctive(pairs, blobs, rival_ratio=0.5, min_ncc=0.0)}
    assert kept == {(0, 1)} | {(a, b) for a, b, _ in pasted if b != 5}
    # pairs under min_ncc still count as rivals, but are not returned
    closest = {(p.source, p.copy) for p in distinctive(pairs, blobs, rival_ratio=0.5, min_ncc=0.95)}
    assert closest == kept
    assert distinctive(pairs, blobs, rival_ratio=0.5, min_ncc=0.995) == []


def test_cell_pasted_three_times_is_one_event():
    # the copies are one another's look-alikes: a ratio test against the nearest rival refuses them all
    forged, truth, _ = forged_cell_field(2, copies=3)
    instances = detect_copy_move(forged, PARAMS)
    assert len(instances) == 1
    assert pixel_f1(instances[0].mask, truth) >= 0.7


def test_pieces_of_known_copies_are_not_proposed_again():
    forged, truth, _ = forged_cell_field(1)
    work = WorkingImage.of(forged)
    found = look_alikes(work, PARAMS.min_displacement, PARAMS.objects)
    pair = object_proposals(work, found, PARAMS.objects, known=[])[0]
    # a known copy of the cell's surroundings only, by the same transform: the blobs lie beside
    # it, not inside it, so only the transform says they are a piece of it
    around = cv2.dilate(pair.source.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~pair.source
    known = VerifiedCopy(source=around, copy=warp_mask(around, pair.transform), transform=pair.transform,
                         n_inliers=10, score=0.9, grain_peak=0.3, periodic=False)
    again = object_proposals(work, found, PARAMS.objects, known=[known])
    assert all(pixel_f1(p.source, pair.source) < 0.5 for p in again)


def test_small_figure_upscaled_to_the_working_size_keeps_its_pasted_cell():
    # worked on at about 1.4x, its noise spreads over several working pixels: the grain's peak is
    # judged one figure pixel off
    forged, truth, _ = forged_cell_field(1)
    small = cv2.resize(forged, (364, 210), interpolation=cv2.INTER_AREA)
    small_truth = cv2.resize(truth.astype(np.uint8), (364, 210), interpolation=cv2.INTER_NEAREST).astype(bool)
    instances = detect_copy_move(small, PARAMS)
    assert len(instances) == 1
    assert pixel_f1(instances[0].mask, small_truth) >= 0.7


def mser_regions(seed: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A grainy cell field with thin lines and lettering drawn over it, and its MSERs: nested
    blobs, strokes, and regions at the image's edge."""
    rng = np.random.default_rng(seed)
    gray = cell_field(rng)[0]
    cv2.putText(gray, "kDa 10 um", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 250, 2)
    cv2.line(gray, (0, 150), (519, 160), 5, 1)
    cv2.rectangle(gray, (300, 200), (420, 299), 240, 3)
    regions, _ = cv2.MSER_create(delta=4, min_area=30, max_area=6000).detectRegions(gray)
    return gray, regions


@pytest.mark.parametrize("seed", [0, 1])
def test_strokes_of_all_regions_at_once_are_those_of_each_alone(seed):
    """The canvas of slots erodes each region exactly as its own mask does (keypoint.in_strokes)."""
    _, regions = mser_regions(seed)
    alone = []
    for points in regions:
        corner = points.min(axis=0) - STROKE_WIDTH
        mask = np.zeros(tuple(points.max(axis=0)[::-1] - corner[::-1] + STROKE_WIDTH + 1), bool)
        mask[points[:, 1] - corner[1], points[:, 0] - corner[0]] = True
        alone.append(in_strokes(mask))
    at_once = regions_in_strokes(Regions.of(regions))
    assert len(regions) > 100 and 0 < sum(alone) < len(alone)
    assert at_once.tolist() == alone


def test_nested_blobs_are_one_and_the_smallest_stands_for_them():
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 400, (300, 2))
    radii = rng.uniform(5, 30, 300)
    # every third blob found again, a little larger and a little off: MSER at a higher threshold
    centres = np.vstack([centres, centres[::3] + 0.05 * radii[::3, None]])
    radii = np.concatenate([radii, 1.1 * radii[::3]])
    kept = distinct(centres, radii)

    order = np.argsort(radii, kind="stable")
    expected = []
    for i in order:  # each blob against every smaller one kept, by brute force
        if not any(abs(radii[j] - radii[i]) < NESTED * radii[i] and np.hypot(*(centres[j] - centres[i])) < NESTED * radii[i]
                   for j in expected):
            expected.append(int(i))
    assert kept.tolist() == expected
    assert not set(range(300, len(radii))) & set(kept.tolist())
