"""The exact-copy path: pasted copies found by their source's noise, in any axis-aligned orientation."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from stages.common import copymove
from stages.common.config import load_params
from stages.common.copymove import detect_copy_move
from stages.common.exact import (BLOCK, NCC_WINDOW, ORIENTATIONS, block_matches, copied_source, detrended, detrended_spread,
                                 exact_proposals, fine_grain, leave_out_own_shifts, orient, overlay, strokes)
from stages.common.keypoint import local_ncc, window_moments
from stages.common.masks import clean_mask
from test_dense import noisy, paste_rectangle, pixel_f1, smooth_blot, union
from test_keypoint import fluorescence_figure

DEFAULTS = load_params(Path(__file__).resolve().parents[1] / "params.yaml").keypoint
PARAMS = dataclasses.replace(DEFAULTS, exact=dataclasses.replace(DEFAULTS.exact, enabled=True))
NO_EXACT = dataclasses.replace(PARAMS, exact=dataclasses.replace(PARAMS.exact, enabled=False))


@pytest.mark.parametrize("m", ORIENTATIONS[1:], ids=lambda m: str(m.ravel().tolist()))
def test_an_oriented_grain_reads_the_grain_through_its_map(m):
    grain = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    oriented, shift = orient(grain, m)
    for uy, ux in np.ndindex(oriented.shape):
        x, y = m @ (ux, uy) + shift
        assert oriented[uy, ux] == grain[y, x]


def test_a_smooth_blot_rectangle_is_found_by_its_noise():
    forged, truth = paste_rectangle(smooth_blot(np.random.default_rng(4)), (40, 30, 90, 60), (300, 35))
    proposals = exact_proposals(forged, forged.shape, PARAMS.min_displacement, PARAMS.exact)
    assert any(np.allclose(p.transform, [[1, 0, 260], [0, 1, 5]]) or np.allclose(p.transform, [[1, 0, -260], [0, 1, -5]])
               for p in proposals)
    instances = detect_copy_move(forged, PARAMS)
    assert pixel_f1(union(instances, forged.shape), truth) >= 0.7


def test_a_mirrored_rectangle_is_found_with_its_mirror():
    blot = smooth_blot(np.random.default_rng(5))
    forged = blot.copy()
    forged[35:95, 300:390] = blot[30:90, 40:130][:, ::-1]
    proposals = exact_proposals(forged, forged.shape, PARAMS.min_displacement, PARAMS.exact)
    mirrored = [p for p in proposals if np.linalg.det(p.transform[:, :2]) < 0]
    assert mirrored
    # column 40 of the source lands on column 389 of the copy, one way or the other
    assert any(abs((p.transform @ [40, 60, 1])[0] - 389) < 1.5 or abs((p.transform @ [389, 65, 1])[0] - 40) < 1.5
               for p in mirrored)


def test_repeated_lettering_and_separate_noise_are_no_copy():
    rng = np.random.default_rng(6)
    figure = np.full((160, 420), 255, np.uint8)
    for x in range(10, 400, 40):
        cv2.putText(figure, "+", (x, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    figure[50:, :] = smooth_blot(rng, 110, 420)
    assert exact_proposals(figure, figure.shape, PARAMS.min_displacement, PARAMS.exact) == []
    assert not fine_grain(figure)[:40].any()


def test_the_exact_path_can_be_switched_off():
    forged, _ = paste_rectangle(noisy(np.full((120, 300), 128.0), np.random.default_rng(7), 3.0), (10, 10, 60, 60), (200, 40))
    assert exact_proposals(forged, forged.shape, PARAMS.min_displacement, PARAMS.exact)
    assert exact_proposals(forged, forged.shape, NO_EXACT.min_displacement, NO_EXACT.exact) == []


def cell_on_noise(rng: np.random.Generator, height: int = 200, width: int = 260) -> np.ndarray:
    background = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 8) * 60 + 140
    return noisy(background, rng, 3.0)


@pytest.mark.parametrize("o", range(len(ORIENTATIONS)))
def test_a_small_object_is_found_block_by_block_in_every_orientation(o):
    """A textured cell of 16 px is too small for a correlation peak; its blocks agree exactly."""
    rng = np.random.default_rng(10 + o)
    figure = cell_on_noise(rng)
    cell = np.clip(rng.normal(90, 35, (16, 16)), 0, 255).astype(np.uint8)
    figure[40:56, 50:66] = cell
    m = ORIENTATIONS[o]
    laid = {(1, 0, 0, 1): cell, (-1, 0, 0, 1): cell[:, ::-1], (1, 0, 0, -1): cell[::-1], (-1, 0, 0, -1): cell[::-1, ::-1],
            (0, 1, 1, 0): cell.T, (0, -1, 1, 0): cell.T[:, ::-1], (0, 1, -1, 0): cell.T[::-1],
            (0, -1, -1, 0): cell.T[::-1, ::-1]}[tuple(m.ravel())]
    figure[130:146, 170:186] = laid
    expected = np.array([177.5, 137.5]) - m @ np.array([57.5, 47.5])  # cell centre to copy centre
    assert any(found == o and np.array_equal(b, expected) for found, b in block_matches(figure, 12.0))


def test_a_scale_bar_in_every_panel_is_no_copy():
    rng = np.random.default_rng(11)
    figure = cell_on_noise(rng)
    for x in (20, 150):
        figure[170:176, x:x + 60] = 255
        cv2.putText(figure, "50 um", (x + 5, 165), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    assert block_matches(figure, 12.0) == []
    assert exact_proposals(figure, figure.shape, PARAMS.min_displacement, PARAMS.exact) == []


@pytest.mark.parametrize("seed", [0, 2])
def test_antialiased_lettering_repeated_across_panels_is_no_copy(seed):
    """Thin lettering has no pure white in its strokes, so only the stroke rule keeps it out of the grain."""
    from test_keypoint import labelled_panels
    assert detect_copy_move(labelled_panels(np.random.default_rng(seed)), PARAMS) == []


def test_a_dark_picture_touching_black_through_its_noise_is_not_drawn():
    """A fluorescence ground four grey levels above black touches 0 at scattered pixels (4 % of
    them here); a scale bar drawn over it is a mark of pure white. Only the bar is drawn, and the
    ground keeps its grain."""
    rng = np.random.default_rng(5)
    gray = np.clip(np.rint(rng.normal(4.0, 2.0, (120, 200))), 0, 255).astype(np.uint8)
    gray[100:106, 120:180] = 255
    drawn = overlay(gray)
    assert (gray[:90] == 0).mean() > 0.03
    assert drawn[98:108, 118:182].all() and not drawn[:90].any()
    assert (fine_grain(gray)[:90] != 0).mean() > 0.6


def test_strokes_are_the_residuals_far_above_their_surroundings():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 2, (60, 60)).astype(np.float32)
    noise[30, 10:50] = 120.0  # a one-pixel line that a 3x3 median removes whole
    found = strokes(noise)
    assert found[29:32, 10:50].all()
    assert found[:20].mean() < 0.01 and found[40:].mean() < 0.01


def test_the_spread_from_window_sums_is_that_of_each_detrended_block():
    rng = np.random.default_rng(3)
    gray = np.clip(rng.normal(128, 40, (37, 53)) + np.arange(53) * 1.5, 0, 255).astype(np.uint8)
    blocks = np.lib.stride_tricks.sliding_window_view(gray.astype(np.float32), (BLOCK, BLOCK))
    flattened = detrended(blocks.reshape(-1, BLOCK * BLOCK)).std(axis=1).reshape(blocks.shape[:2])
    np.testing.assert_allclose(detrended_spread(gray), flattened, atol=1e-3)


def test_the_paths_give_the_same_answer_on_one_thread_and_beside_each_other():
    """With a second core the exact path runs in a thread of its own; nothing it returns may change."""
    forged, _ = paste_rectangle(smooth_blot(np.random.default_rng(5)), (40, 20, 150, 70), (300, 40))
    answers = []
    threads = cv2.getNumThreads()
    try:
        for n in (1, 2):
            cv2.setNumThreads(n)
            answers.append(detect_copy_move(forged, PARAMS))
    finally:
        cv2.setNumThreads(threads)
    one, two = answers
    assert one, "the pasted rectangle must be found for the comparison to mean anything"
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert a.score == b.score and np.array_equal(a.mask, b.mask)


def blas_threads() -> int:
    return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


def test_blas_is_held_to_one_thread_while_the_paths_run_and_given_back_after(monkeypatch):
    """The paths fill the cores themselves; BLAS's own pool beside them would only oversubscribe them."""
    seen = []
    keypoint_copies = copymove.keypoint_copies

    def watched(work, params):
        seen.append(blas_threads())
        return keypoint_copies(work, params)

    monkeypatch.setattr(copymove, "keypoint_copies", watched)
    forged, _ = paste_rectangle(smooth_blot(np.random.default_rng(5)), (40, 20, 150, 70), (300, 40))
    with threadpool_limits(2, user_api="blas"):
        assert detect_copy_move(forged, PARAMS)
        after = blas_threads()
    assert seen == [1]
    assert after == 2


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_patch_of_a_fluorescence_figure_s_dark_ground_is_found_whole(seed):
    """A box around a cell, mostly the figure's dark, noisy ground clipped at black, pasted onto
    more of that ground: the ground's commonest levels lie scattered as a letter's strokes do,
    and must not be taken for drawn ink (keypoint.is_drawn_tone)."""
    rng = np.random.default_rng(seed)
    gray, centres = fluorescence_figure(rng, 300, 400, n_cells=6)
    gray = np.clip(gray.astype(int) - 7, 0, 255).astype(np.uint8)  # a ground about 5 grey levels above black
    (cx, cy), (w, h) = centres[0], (110, 100)
    x, y = min(max(0, cx - w // 2), 400 - w), min(max(0, cy - h // 2), 300 - h)
    ground = [(u, v) for v in range(0, 300 - h, 10) for u in range(0, 400 - w, 10)
              if gray[v:v + h, u:u + w].mean() < 15 and (abs(u - x) >= w or abs(v - y) >= h)]
    forged, truth = paste_rectangle(gray, (x, y, w, h), ground[len(ground) // 2])
    assert pixel_f1(union(detect_copy_move(forged, PARAMS), truth.shape), truth) >= 0.9


def whole_image_source(grain, oriented, d, transform, reach, params):
    """copied_source the plain way: the moved grain laid on a whole image's canvas, correlated everywhere."""
    h, w = grain.shape
    moved = np.zeros_like(grain)
    ys, xs = slice(max(0, -d[1]), min(h, oriented.shape[0] - d[1])), slice(max(0, -d[0]), min(w, oriented.shape[1] - d[0]))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return np.zeros(grain.shape, bool)
    moved[ys, xs] = oriented[ys.start + d[1]:ys.stop + d[1], xs.start + d[0]:xs.stop + d[0]]
    with np.errstate(invalid="ignore"):
        agree = local_ncc(grain, moved, NCC_WINDOW, 0.1) >= params.ncc_threshold
    rows, cols = np.nonzero(agree)
    near = np.hypot(*((transform[:, :2] - np.eye(2)) @ [cols, rows] + transform[:, 2:])) < reach
    agree[rows[near], cols[near]] = False
    return clean_mask(agree, params.min_region_area)


def test_the_source_found_on_the_overlap_is_the_whole_image_s():
    """copied_source correlates only the overlap of the grain and its moved self; what it finds
    must be what correlating the whole image finds: for a pasted rectangle, for a texture that
    repeats itself to the overlap's very edge, and for shifts that overlap little or not at all."""
    rng = np.random.default_rng(6)
    pasted, _ = paste_rectangle(smooth_blot(rng), (40, 30, 90, 60), (300, 35))
    tile = np.clip(rng.normal(128, 30, (120, 110)), 0, 255).astype(np.uint8)
    repeating = np.tile(tile, (1, 4))
    found = 0
    for image, shifts in ((pasted, ([260, 5], [-260, -5], [37, -11])), (repeating, ([110, 0], [-220, 0], [0, 60])),
                          (pasted, ([-300, 120], [5000, 0]))):
        grain = fine_grain(image)
        for d in map(np.array, shifts):
            transform = np.hstack([np.eye(2), d[:, None]]).astype(np.float64)
            region = copied_source(grain, window_moments(grain, NCC_WINDOW), grain, d, transform, 20.0, PARAMS.exact)
            expected = whole_image_source(grain, grain, d, transform, 20.0, PARAMS.exact)
            assert np.array_equal(np.zeros_like(expected) if region is None else region, expected)
            found += region is not None
    assert found >= 3, "the paste and the repeats must be found for the comparison to mean anything"


@pytest.mark.parametrize("shape, reach", [((64, 80), 7.3), ((65, 81), 7.0), ((20, 80), 45.0), ((80, 21), 30.0), ((9, 9), 0.5)])
def test_the_grain_against_itself_leaves_out_short_shifts_and_one_of_each_pair(shape, reach):
    """Only the disc of short shifts is measured: the result must be the rule applied at every shift,
    also where the disc runs past the correlation's edges."""
    corr = np.random.default_rng(0).random(shape).astype(np.float32)
    dy = np.arange(shape[0])[:, None] - shape[0] // 2
    dx = np.arange(shape[1])[None, :] - shape[1] // 2
    expected = np.where((np.hypot(dx, dy) < reach) | (dy < 0) | ((dy == 0) & (dx < 0)), 0.0, corr)
    leave_out_own_shifts(corr, reach)
    np.testing.assert_array_equal(corr, expected)
