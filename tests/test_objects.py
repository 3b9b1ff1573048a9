"""The object path (stages/common/objects.py): small objects copied at any turn, found whole."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from stages.common.copymove import detect_copy_move
from stages.common.keypoint import WorkingImage, transform_scale
from stages.common.objects import ANGLES, RINGS, Blobs, BlobPair, best_turns, distinctive, object_proposals

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


def forged_cell_field(seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A cell field with its first cell turned by a random angle and pasted on free background."""
    rng = np.random.default_rng(seed)
    gray, centres, axes = cell_field(rng)
    while True:
        target = (int(rng.integers(20, 500)), int(rng.integers(20, 280)))
        if all(np.hypot(target[0] - x, target[1] - y) > 32 for x, y in centres):
            break
    angle = float(rng.uniform(20, 340))
    forged, truth = paste_cell(gray, centres[0], target, angle, max(axes[0]) + 3)
    return forged, truth, angle


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
    proposals = object_proposals(WorkingImage.of(forged), PARAMS.min_displacement, PARAMS.objects,
                                 known=np.zeros(forged.shape, bool))
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


def test_ratio_test_keeps_a_clear_match_and_drops_one_among_look_alikes():
    # blobs 0 and 1: a copy (ncc 0.99) whose nearest rival is at 0.90; blobs 2, 3, 4: look-alikes all round 0.95
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100], [200, 100]], float)
    blobs = Blobs(cores=[np.zeros((1, 2), int)] * 5, centres=centres, radii=np.full(5, 10.0),
                  polar=np.zeros((5, RINGS, ANGLES), np.float32))
    pairs = [BlobPair(a, b, ncc, np.eye(2, 3))
             for a, b, ncc in ((0, 1, 0.99), (0, 2, 0.90), (2, 3, 0.96), (2, 4, 0.95), (3, 4, 0.95))]
    kept = distinctive(pairs, blobs, rival_ratio=0.5)
    assert [(p.source, p.copy) for p in kept] == [(0, 1)]
