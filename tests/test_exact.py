"""The exact-copy path: pasted copies found by their source's noise, in any axis-aligned orientation."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.common.config import load_params
from stages.common.copymove import detect_copy_move
from stages.common.exact import ORIENTATIONS, exact_proposals, fine_grain, orient
from test_dense import noisy, paste_rectangle, pixel_f1, smooth_blot, union

KEYPOINT = load_params(Path(__file__).resolve().parents[1] / "params.yaml").keypoint
PARAMS = dataclasses.replace(KEYPOINT, exact=dataclasses.replace(KEYPOINT.exact, enabled=True))


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


def test_the_exact_path_is_off_unless_asked():
    forged, _ = paste_rectangle(noisy(np.full((120, 300), 128.0), np.random.default_rng(7), 3.0), (10, 10, 60, 60), (200, 40))
    assert exact_proposals(forged, forged.shape, KEYPOINT.min_displacement, KEYPOINT.exact) == []
    assert exact_proposals(forged, forged.shape, PARAMS.min_displacement, PARAMS.exact)
