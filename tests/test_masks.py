"""The shared mask operations: each box-cropped one gives what its whole-image form gives."""
import cv2
import numpy as np
import pytest
from scipy import ndimage

from stages.common.masks import (SPARSE_SHARE, bounding_box, clean_mask, components_of_area, components_touching, dilated,
                                 filled_holes, pixels, union, warp_mask)


def random_blobs(seed: int, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    """A few discs and specks away from the centre, so that the box crops really cut something."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for _ in range(3):
        cv2.circle(mask, (int(rng.integers(10, 30)), int(rng.integers(10, 30))), int(rng.integers(2, 7)), 1, -1)
    mask[rng.integers(0, 30), rng.integers(0, 30)] = 1
    return mask.astype(bool)


def test_bounding_box_is_the_padded_extent_clipped_to_the_image():
    mask = np.zeros((20, 30), bool)
    mask[5:8, 10:12] = True
    assert bounding_box(mask, pad=0) == (10, 5, 12, 8)
    assert bounding_box(mask, pad=3) == (7, 2, 15, 11)
    assert bounding_box(mask, pad=50) == (0, 0, 30, 20)


@pytest.mark.parametrize("radius", [1, 3, 9])
def test_dilated_equals_dilating_the_whole_image(radius):
    for seed in range(4):
        mask = random_blobs(seed)
        whole = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))
        np.testing.assert_array_equal(dilated(mask, radius), whole > 0)


def test_clean_mask_drops_specks_and_fills_holes():
    ring = cv2.circle(np.zeros((60, 80), np.uint8), (40, 30), 12, 1, 3).astype(bool)
    speck = np.zeros_like(ring)
    speck[2:4, 2:4] = True
    cleaned = clean_mask(ring | speck, min_area=50)
    assert cleaned[30, 40] and not cleaned[2:4, 2:4].any()
    assert not clean_mask(np.zeros((5, 5), bool), min_area=1).any()


def test_components_touching_keeps_only_the_seeded_components():
    mask = np.zeros((20, 20), bool)
    mask[2:5, 2:5] = mask[10:15, 10:15] = True
    seed = np.zeros_like(mask)
    seed[12, 12] = True
    kept = components_touching(mask, seed)
    assert kept[10:15, 10:15].all() and not kept[2:5, 2:5].any()


def test_union_and_warp_mask():
    a, b = np.zeros((10, 12), bool), np.zeros((10, 12), bool)
    a[1, 1] = b[5, 6] = True
    assert union([a, b]).sum() == 2 and not union([], (10, 12)).any()
    shifted = warp_mask(a, np.array([[1.0, 0, 3], [0, 1, 2]]))
    assert shifted.dtype == bool and shifted[3, 4] and shifted.sum() == 1


def test_filled_holes_fills_what_the_border_cannot_reach_as_scipy_does():
    rng = np.random.default_rng(4)
    for density in (0.3, 0.5, 0.7):
        mask = (rng.random((41, 57)) < density).astype(np.uint8)
        np.testing.assert_array_equal(filled_holes(mask), ndimage.binary_fill_holes(mask))
    ring = cv2.circle(np.zeros((30, 30), np.uint8), (15, 15), 8, 1, 2)
    assert filled_holes(ring)[15, 15] == 1 and filled_holes(ring)[0, 0] == 0


@pytest.mark.parametrize("share", [0.0005, 0.02, 0.3, 0.7])
def test_components_of_area_keeps_the_large_components_as_scipy_labels_them(share):
    """Sparse masks take the path that lists their pixels, dense ones OpenCV's statistics: both
    must keep exactly the 8-connected components of at least min_area pixels."""
    rng = np.random.default_rng(int(share * 1e4))
    mask = np.zeros((300, 400), np.uint8)
    while mask.mean() < share:
        cv2.circle(mask, (int(rng.integers(0, 400)), int(rng.integers(0, 300))), int(rng.integers(0, 9)), 1, -1)
    mask[rng.random(mask.shape) < share / 4] = 1
    assert (mask.mean() * SPARSE_SHARE < 1) == (share < 0.05)  # both paths are exercised
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel())
    for min_area in (1, 12, 60):
        expected = (areas >= min_area)[labels] & (labels > 0)
        np.testing.assert_array_equal(components_of_area(mask, min_area), expected)
    assert not components_of_area(np.zeros((5, 5), np.uint8), 1).any()


def test_pixels_lists_the_set_pixels_as_nonzero_does():
    rng = np.random.default_rng(7)
    for mask in (rng.random((37, 53)) < 0.2, (rng.random((40, 9)) < 0.5).astype(np.uint8), np.zeros((6, 4), bool)):
        x, y = pixels(mask)
        rows, cols = np.nonzero(mask)
        np.testing.assert_array_equal(x, cols)
        np.testing.assert_array_equal(y, rows)
