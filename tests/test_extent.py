"""A kept copy grown over the pixels that carry its source's noise (stages/common/extent.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.common.config import load_params
from stages.common.copymove import detect_copy_move
from stages.common.extent import grown, grown_exactly
from stages.common.keypoint import CopyMoveInstance, VerifiedCopy, WorkingImage, invert, to_gray
from stages.common.masks import dilated, warp_mask
from stages.common.synth import fluorescence
from test_dense import noisy, paste_rectangle, pixel_f1, textured_scene, union

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml").keypoint
UNGROWN = dataclasses.replace(PARAMS, extent=dataclasses.replace(PARAMS.extent, enabled=False))
SHIFT = np.array([[1.0, 0.0, 200.0], [0.0, 1.0, 10.0]])


def tower_photo(rng: np.random.Generator) -> np.ndarray:
    """A camera-sized photo of a plain tower under a lamp against a smooth sky: the lamp has all the corners."""
    scene = np.tile(np.linspace(150, 190, 768, dtype=np.float32)[:, None], (1, 1024))
    scene[100:160, 150:210] = textured_scene(rng, 60, 60)
    scene[160:420, 160:200] = 235.0
    return noisy(scene, rng, 2.0)


def verified(copy: np.ndarray, transform: np.ndarray = SHIFT) -> VerifiedCopy:
    return VerifiedCopy(source=warp_mask(copy, invert(transform)), copy=copy,
                        transform=transform, n_inliers=50, score=1.0, grain_peak=0.5, periodic=False)


def box(shape: tuple[int, int], x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[y:y + h, x:x + w] = True
    return mask


def test_a_pasted_tower_is_covered_down_its_plain_body():
    """Without the exact path, which finds the whole paste by its noise, the paths find the lamp
    alone; the growth reaches down the tower's plain body from it."""
    forged, truth = paste_rectangle(tower_photo(np.random.default_rng(0)), (150, 100, 60, 320), (600, 200))
    no_exact = dataclasses.replace(PARAMS, exact=dataclasses.replace(PARAMS.exact, enabled=False))
    ungrown = dataclasses.replace(no_exact, extent=UNGROWN.extent)
    assert pixel_f1(union(detect_copy_move(forged, ungrown), forged.shape), truth) < 0.5  # the lamp alone
    for params in (no_exact, PARAMS):
        assert pixel_f1(union(detect_copy_move(forged, params), forged.shape), truth) >= 0.9


def test_growth_stops_where_a_look_alike_has_its_own_noise():
    """Two plain squares of one tone and outline, each with its own noise; a textured patch pasted
    from one into the other. The copy is the patch, not the square around it."""
    rng = np.random.default_rng(1)
    scene = np.full((200, 400), 150.0, np.float32)
    scene[40:120, 40:120] = scene[50:130, 240:320] = 220.0
    image = noisy(scene, rng, 2.0)
    image[65:95, 65:95] = textured_scene(rng, 30, 30)
    image[75:105, 265:295] = image[65:95, 65:95]
    pasted = box(image.shape, 265, 75, 30, 30)
    found = grown(WorkingImage.of(image), verified(box(image.shape, 272, 82, 16, 16)), PARAMS.extent)
    assert pixel_f1(found.copy, pasted) >= 0.8
    assert not (found.copy & ~box(image.shape, 260, 70, 40, 40)).any()
    assert np.array_equal(found.source, warp_mask(found.copy, np.array([[1.0, 0, -200], [0, 1, -10]])))


def test_a_large_paste_is_reached_in_rounds():
    """Found as a small square in the corner of a large pasted rectangle: each round looks as far
    again as the copy is wide, and the rounds go on while it reaches their edge."""
    rng = np.random.default_rng(2)
    image = noisy(np.full((300, 480), 180.0, np.float32), rng, 2.0)
    image[60:260, 210:390] = image[50:250, 10:190]
    pasted = box(image.shape, 210, 60, 180, 200)
    found = grown(WorkingImage.of(image), verified(box(image.shape, 215, 65, 20, 20)), PARAMS.extent)
    assert pixel_f1(found.copy, pasted) >= 0.95


@pytest.mark.parametrize("seed", [1, 2])
def test_a_dark_micrograph_pasted_a_little_smaller_is_covered_whole(seed):
    """A box of a small fluorescence figure, worked on upscaled, pasted at 0.97 of its size: no pixel
    repeats its source exactly, and beyond the cells only the dark ground's noise of a grey level or
    two carries the paste. The growth follows that noise at the figure's own size (`figure_noise`),
    and the ground's scattered pixels at black are not taken for drawn marks (exact.overlay)."""
    gray = to_gray(fluorescence.render(300, 240, np.random.default_rng(seed)).image)
    patch = cv2.resize(gray[15:125, 15:115], None, fx=0.97, fy=0.97, interpolation=cv2.INTER_LINEAR)
    forged = gray.copy()
    forged[160:160 + patch.shape[0], 125:125 + patch.shape[1]] = patch
    truth = box(gray.shape, 15, 15, 100, 110) | box(gray.shape, 125, 160, patch.shape[1], patch.shape[0])
    assert pixel_f1(union(detect_copy_move(forged, PARAMS), forged.shape), truth) >= 0.9


def test_a_copy_that_would_lie_on_its_own_source_is_left_as_found():
    """A texture tiled every 12 pixels repeats its noise one tile on, everywhere: grown, the copy
    would cover its own source."""
    rng = np.random.default_rng(3)
    image = np.tile(noisy(np.full((120, 12), 180.0, np.float32), rng, 2.0), (1, 14))
    start = verified(box(image.shape, 80, 50, 12, 12), np.array([[1.0, 0, 12], [0, 1, 0]]))
    assert grown(WorkingImage.of(image), start, PARAMS.extent) is start


def noiseless_tower_photo(rng: np.random.Generator) -> np.ndarray:
    """The tower photo as a camera's compression leaves it: the lamp textured, the tower's body a
    smooth cylinder's shading with no noise at all, the sky noisy."""
    image = tower_photo(rng)
    image[160:420, 160:200] = np.round(200 + 30 * np.sin(np.linspace(0.2, 2.9, 40)))[None, :].astype(np.uint8)
    return image


def exact_instance(mask: np.ndarray, transform: np.ndarray = SHIFT) -> CopyMoveInstance:
    return CopyMoveInstance(mask=mask, score=1.0, transforms=(transform,), n_inliers=50)


def pasted_square(shift: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy figure with a 40-pixel square pasted `shift` away, the truth, and the transform."""
    rng = np.random.default_rng(4)
    image = noisy(np.full((200, 300), 150.0, np.float32), rng, 3.0)
    forged, truth = paste_rectangle(image, (30, 40, 40, 40), (30 + shift[0], 40 + shift[1]))
    return forged, truth, np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])


def test_a_noiseless_tower_is_covered_where_it_repeats_exactly():
    """Its body has no noise to correlate: it is reached because it repeats its source's pixels
    exactly, and the lamp and the body are then one event."""
    forged, truth = paste_rectangle(noiseless_tower_photo(np.random.default_rng(0)), (150, 100, 60, 320), (600, 200))
    assert pixel_f1(union(detect_copy_move(forged, UNGROWN), forged.shape), truth) < 0.5  # the lamp alone
    found = detect_copy_move(forged, PARAMS)
    assert len(found) == 1
    assert pixel_f1(found[0].mask, truth) >= 0.95


def test_an_exact_copy_is_cleared_of_what_spills_over_its_edge():
    """Windows, cleaning and growth leave a rim around a copy; the pixels of that rim do not repeat
    their preimage, and a copy that repeats exactly shows where its edge lies."""
    forged, truth, shift = pasted_square((150, 20))
    spilled = dilated(truth, 6)
    found = grown_exactly(forged, exact_instance(spilled, shift + [[0.003, 0, 0.4], [0, -0.002, -0.3]]), spill=16)
    assert pixel_f1(found.mask, truth) >= 0.98
    assert not (found.mask & ~dilated(truth, 2)).any()


def test_a_copy_shifted_along_the_jpeg_grid_keeps_its_rim():
    """Moved by whole 8x8 blocks, a copy in a figure compressed after the paste repeats its inner
    blocks exactly and not those astride its edge, so nothing is cleared there; it is still grown."""
    forged, truth, shift = pasted_square((144, 16))
    spilled = dilated(truth, 6)
    found = grown_exactly(forged, exact_instance(spilled, shift), spill=16)
    assert np.array_equal(found.mask, spilled)
    shrunk = truth & ~dilated(~truth, 8)
    assert pixel_f1(grown_exactly(forged, exact_instance(shrunk, shift), spill=16).mask, truth) >= 0.98


def test_a_turned_copy_is_left_as_found():
    """A copy turned by 20 degrees is resampled: no pixel repeats its source's exactly."""
    forged, truth, _ = pasted_square((150, 20))
    turn = np.array([[np.cos(0.35), -np.sin(0.35), 150.0], [np.sin(0.35), np.cos(0.35), 20.0]])
    start = exact_instance(truth, turn)
    assert grown_exactly(forged, start, spill=16) is start


def test_a_retouched_copy_beside_an_exact_one_is_kept():
    """A lane pasted twice beside its source, once exactly and once brightened: the brightened one
    repeats nothing, lies within the spill of its exact twin, and is still part of the event."""
    rng = np.random.default_rng(5)
    image = noisy(np.full((160, 300), 150.0, np.float32), rng, 3.0)
    image[30:130, 20:50] = textured_scene(rng, 100, 30)
    image[30:130, 60:90] = image[30:130, 20:50]
    image[30:130, 100:130] = np.clip(image[30:130, 20:50] * 1.1 + 5, 0, 255).astype(np.uint8)
    truth = box(image.shape, 20, 30, 30, 100) | box(image.shape, 60, 30, 30, 100) | box(image.shape, 100, 30, 30, 100)
    found = CopyMoveInstance(mask=truth, score=1.0, n_inliers=50, transforms=(
        np.array([[1.0, 0.0, 40.0], [0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 80.0], [0.0, 1.0, 0.0]])))
    assert np.array_equal(grown_exactly(image, found, spill=16).mask & truth, truth)


def test_beside_a_retouched_copy_the_exact_ones_are_still_cleared():
    """The same lanes, spilled over by 4 pixels and shifted off the JPEG grid: the rims of the
    source and its exact twin are cleared, while the brightened copy, which repeats nothing, is
    kept whole, rim and all (its pixels are the other transform's copy)."""
    rng = np.random.default_rng(5)
    image = noisy(np.full((160, 300), 150.0, np.float32), rng, 3.0)
    image[30:130, 20:50] = textured_scene(rng, 100, 30)
    image[30:130, 63:93] = image[30:130, 20:50]
    image[30:130, 106:136] = np.clip(image[30:130, 20:50] * 1.1 + 5, 0, 255).astype(np.uint8)
    source, twin, brightened = (box(image.shape, x, 30, 30, 100) for x in (20, 63, 106))
    spilled = dilated(source | twin | brightened, 4)
    found = CopyMoveInstance(mask=spilled, score=1.0, n_inliers=50, transforms=(
        np.array([[1.0, 0.0, 43.0], [0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 86.0], [0.0, 1.0, 0.0]])))
    mask = grown_exactly(image, found, spill=16).mask
    assert np.array_equal(mask & ~dilated(brightened, 4), source | twin)
    assert np.array_equal(mask & dilated(brightened, 4), dilated(brightened, 4))
