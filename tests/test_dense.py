"""The whole training-free detector on the copies keypoints find hard: rectangles of smooth blot,
large regions, small rotated objects, whole panels, and on authentic figures full of repeats.

Every figure is drawn here with numpy and OpenCV from a fixed seed.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from stages.common.config import load_params
from stages.common.copymove import dense_copies, detect_copy_move
from stages.common.dense import consistent_points, features, match_field
from stages.common.keypoint import WorkingImage
from stages.common.masks import warp_mask, union as masks_union  # the library's, over masks; `union` here takes instances
from test_synth import NO_AVX512, needs_avx512, run_python

PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml").keypoint
NO_DENSE = dataclasses.replace(PARAMS, dense=dataclasses.replace(PARAMS.dense, enabled=False))


def pixel_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(2 * (pred & truth).sum() / max(1, pred.sum() + truth.sum()))


def union(instances, shape) -> np.ndarray:
    return masks_union([i.mask for i in instances], shape)


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


def smooth_blot(rng: np.random.Generator, height: int = 120, width: int = 520, lanes: int = 8) -> np.ndarray:
    """A western-blot strip: soft, wide bands of varying strength on a light, gently uneven background."""
    image = np.full((height, width), 205.0, np.float32)
    image += 12.0 * cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 25) * 8
    pitch = width / lanes
    for lane in range(lanes):
        band = np.zeros((height, width), np.float32)
        cx, cy = int(pitch * (lane + 0.5) + rng.integers(-4, 5)), int(height * 0.5 + rng.integers(-6, 7))
        cv2.ellipse(band, (cx, cy), (int(pitch * 0.38), int(rng.integers(7, 13))), float(rng.uniform(-4, 4)), 0, 360,
                    1.0, -1)
        image -= float(rng.uniform(60, 140)) * cv2.GaussianBlur(band, (0, 0), 4.0)
    return noisy(image, rng, 2.0)


def paste_rectangle(gray: np.ndarray, box: tuple[int, int, int, int], to: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Copy the box (x, y, w, h) with everything in it to the top-left corner `to`."""
    x, y, w, h = box
    out = gray.copy()
    out[to[1]: to[1] + h, to[0]: to[0] + w] = gray[y: y + h, x: x + w]
    truth = np.zeros(gray.shape, bool)
    truth[y: y + h, x: x + w] = True
    truth[to[1]: to[1] + h, to[0]: to[0] + w] = True
    return out, truth


def textured_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 3.0)
    image = 120.0 + 40.0 * noise / noise.std()
    for _ in range(height * width // 1500):
        blob = np.zeros((height, width), np.float32)
        cv2.ellipse(blob, (int(rng.integers(0, width)), int(rng.integers(0, height))),
                    (int(rng.integers(5, 16)), int(rng.integers(5, 16))), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        image += float(rng.uniform(-45, 45)) * cv2.GaussianBlur(blob, (0, 0), 2.0)
    return noisy(image, rng, 3.0)


def histology(rng: np.random.Generator, height: int = 320, width: int = 384) -> tuple[np.ndarray, list]:
    """Pink-grey tissue with dark, textured nuclei about 30 px across; returns the gray image and nucleus centres."""
    noise = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 6.0)
    image = 185.0 + 14.0 * noise / noise.std()
    centres = []
    for _ in range(28):
        centre = (int(rng.integers(25, width - 25)), int(rng.integers(25, height - 25)))
        nucleus = np.zeros((height, width), np.float32)
        cv2.ellipse(nucleus, centre, (int(rng.integers(12, 17)), int(rng.integers(8, 12))), float(rng.uniform(0, 180)),
                    0, 360, 1.0, -1)
        grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.2)
        image -= cv2.GaussianBlur(nucleus, (0, 0), 1.5) * (float(rng.uniform(70, 110)) + 30.0 * grain)
        centres.append(centre)
    return noisy(image, rng, 2.5), centres


def paste_rotated(gray: np.ndarray, centre: tuple[int, int], target: tuple[int, int], angle: float,
                  radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The disc of `radius` around `centre`, turned by `angle` degrees, pasted at `target`."""
    height, width = gray.shape
    transform = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0)
    transform[:, 2] += np.subtract(target, centre)
    source = np.zeros(gray.shape, np.uint8)
    cv2.circle(source, centre, radius, 1, -1)
    copy = cv2.warpAffine(source, transform, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
    warped = cv2.warpAffine(gray, transform, (width, height), flags=cv2.INTER_LINEAR)
    return np.where(copy, warped, gray), source.astype(bool) | copy


def panel_figure(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Four microscopy panels on a white page; the last repeats the first, mirrored, at 80 % contrast."""
    size, gap = 170, 8
    panels = [textured_scene(rng, size, size) for _ in range(3)]
    repeated = np.clip(0.8 * (panels[0][:, ::-1].astype(np.float32) - 120) + 120, 0, 255).astype(np.uint8)
    panels.append(repeated)
    page = np.full((2 * size + 3 * gap, 2 * size + 3 * gap), 255, np.uint8)
    truth = np.zeros(page.shape, bool)
    for i, panel in enumerate(panels):
        y, x = gap + (i // 2) * (size + gap), gap + (i % 2) * (size + gap)
        page[y: y + size, x: x + size] = panel
        if i in (0, 3):
            truth[y: y + size, x: x + size] = True
    return page, truth


def checkerboard_bar(height: int = 24, width: int = 240, square: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return np.where(((yy // square) + (xx // square)) % 2 == 0, 30, 230).astype(np.uint8)


def lettering(height: int = 90, width: int = 520) -> np.ndarray:
    panel = np.full((height, width), 255, np.uint8)
    for i, word in enumerate(["WT", "KO", "WT", "KO", "WT", "KO"]):
        cv2.putText(panel, word, (20 + i * 82, 35), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 0, 2, cv2.LINE_AA)
    for i in range(6):
        cv2.putText(panel, "GAPDH 37 kDa", (20 + (i % 3) * 170, 75), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
    return panel


def regular_lanes(rng: np.random.Generator, height: int = 110, width: int = 520, lanes: int = 9) -> np.ndarray:
    """Bands cast from one template in every lane, each with its own noise."""
    template = np.zeros((31, 45), np.float32)
    cv2.ellipse(template, (22, 15), (18, 6), 0, 0, 360, 1.0, -1)
    template = cv2.GaussianBlur(template, (0, 0), 2.5)
    gel = np.full((height, width), 210.0, np.float32)
    pitch = width // lanes
    for row_y in (30, 78):
        for lane in range(lanes):
            x = pitch // 2 + lane * pitch
            gel[row_y - 15: row_y + 16, x - 22: x + 23] -= 120.0 * template
    return noisy(gel, rng, 3.0)


# ---------------------------------------------------------------- copies keypoints find hard


def test_rectangular_patch_on_a_smooth_blot_is_found():
    rng = np.random.default_rng(0)
    blot = smooth_blot(rng)
    forged, truth = paste_rectangle(blot, (60, 30, 70, 60), (330, 35))
    instances = detect_copy_move(forged, PARAMS)
    assert len(instances) == 1
    assert pixel_f1(instances[0].mask, truth) >= 0.7


def test_large_region_of_forty_percent_is_found():
    rng = np.random.default_rng(1)
    scene = textured_scene(rng, 300, 400)
    forged, truth = paste_rectangle(scene, (10, 20, 185, 130), (205, 150))  # source and copy: 40 % of the figure
    assert 0.38 <= truth.mean() <= 0.42
    instances = detect_copy_move(forged, PARAMS)
    assert len(instances) == 1
    assert pixel_f1(instances[0].mask, truth) >= 0.7


def test_nucleus_rotated_by_37_degrees_is_found():
    rng = np.random.default_rng(2)
    tissue, centres = histology(rng)
    centre = min(centres)  # the leftmost nucleus; its copy goes 170 px right, into the other half
    target = (centre[0] + 170, 100 if centre[1] > 160 else 220)
    forged, truth = paste_rotated(tissue, centre, target, 37.0, 16)
    instances = detect_copy_move(forged, PARAMS)
    assert len(instances) == 1
    assert pixel_f1(instances[0].mask, truth) >= 0.7


def test_whole_panel_repeated_mirrored_at_lower_contrast_is_found():
    page, truth = panel_figure(np.random.default_rng(3))
    instances = detect_copy_move(page, PARAMS)
    assert len(instances) == 1
    assert pixel_f1(instances[0].mask, truth) >= 0.7


def test_every_dense_detection_explains_itself():
    rng = np.random.default_rng(1)
    forged, truth = paste_rectangle(textured_scene(rng, 300, 400), (10, 20, 185, 130), (205, 150))
    work = WorkingImage.of(forged)
    copies = dense_copies(work, PARAMS)
    assert copies
    for copy in copies:
        # the transform is the translation that was pasted, one way or the other
        moved = copy.transform @ np.array([10 + 92, 20 + 65, 1.0])
        back = copy.transform @ np.array([205 + 92, 150 + 65, 1.0])
        assert min(np.linalg.norm(moved - (205 + 92, 150 + 65)), np.linalg.norm(back - (10 + 92, 20 + 65))) < 2.0
        assert copy.n_inliers >= 50 and 0.0 < copy.score <= 1.0


# ---------------------------------------------------------------- repeats that are not copies


@pytest.mark.parametrize("seed", [0, 1])
def test_checkerboard_bar_lettering_and_regular_lanes_are_authentic(seed):
    rng = np.random.default_rng(seed)
    bar = np.full((40, 520), 255, np.uint8)
    bar[8:32, 140:380] = checkerboard_bar()
    figure = np.vstack([regular_lanes(rng), lettering(), bar, smooth_blot(rng)])
    assert detect_copy_move(figure, PARAMS) == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_authentic_scenes_and_tissue_are_authentic(seed):
    rng = np.random.default_rng(seed)
    assert detect_copy_move(textured_scene(rng, 300, 400), PARAMS) == []
    assert detect_copy_move(histology(rng)[0], PARAMS) == []


# ---------------------------------------------------------------- parts


def test_features_do_not_change_under_rotation_reflection_or_contrast():
    rng = np.random.default_rng(0)
    patch = textured_scene(rng, 81, 81).astype(np.float32)
    turned = cv2.warpAffine(patch, cv2.getRotationMatrix2D((40, 40), 90, 1.0), (81, 81))
    base, _ = features(patch, 7)
    for other in (turned, patch[:, ::-1].copy(), 0.5 * patch + 30):
        changed, _ = features(other, 7)
        assert np.linalg.norm(base[40, 40] - changed[40, 40]) < 0.05 * np.linalg.norm(base[40, 40])
    assert np.linalg.norm(base[40, 40] - base[40, 50]) > 0.2 * np.linalg.norm(base[40, 40])


def test_dense_field_is_consistent_on_a_copy_and_not_elsewhere():
    rng = np.random.default_rng(1)
    forged, truth = paste_rectangle(textured_scene(rng, 200, 260), (10, 10, 80, 80), (150, 100))
    field = match_field(forged.astype(np.float32), PARAMS.dense)
    consistent = consistent_points(field, PARAMS.dense)
    on_copy = truth[field.points[:, 1].astype(int), field.points[:, 0].astype(int)]
    assert consistent[on_copy].mean() > 0.5
    assert consistent[~on_copy].mean() < 0.02


def test_dense_path_can_be_switched_off():
    rng = np.random.default_rng(1)
    forged, _ = paste_rectangle(textured_scene(rng, 300, 400), (10, 20, 185, 130), (205, 150))
    assert dense_copies(WorkingImage.of(forged), NO_DENSE) == []


def test_weak_events_beside_a_strong_one_or_rescaled_are_dropped_but_a_weak_shift_alone_is_kept():
    from stages.common.copymove import without_weak_events
    from stages.common.keypoint import VerifiedCopy

    def event(n_inliers, scale=1.0, peak=0.1):  # a peak under PARAMS.grain_peak: a weak event needs more
        mask = np.zeros((4, 4), bool)
        return [VerifiedCopy(mask, mask, np.hstack([scale * np.eye(2), np.zeros((2, 1))]), n_inliers, 0.9, peak, False)]

    strong, weak, second = event(321), event(5), event(40)
    assert without_weak_events([strong, weak, second], PARAMS) == [strong, second]
    assert without_weak_events([weak], PARAMS) == [weak]
    assert without_weak_events([strong, weak], dataclasses.replace(PARAMS, weak_share=0.0)) == [strong, weak]
    # a rescaled event needs weak_inliers even alone; a barely rescaled one (refinement's wobble) does not
    assert without_weak_events([event(5, scale=1.15)], PARAMS) == []
    assert without_weak_events([event(5, scale=1.02)], PARAMS) != []
    assert without_weak_events([event(40, scale=0.85)], PARAMS) != []
    # a weak event whose grain peaks is kept beside a strong one, if it has min_inliers spots
    peaked, peaked_few = event(5, peak=0.3), event(PARAMS.min_inliers - 1, peak=0.3)
    assert without_weak_events([strong, peaked, peaked_few], PARAMS) == [strong, peaked]


def test_look_alikes_that_share_their_strokes_are_told_apart_by_the_noise_of_their_flat_paint():
    """Two letters of a painted sign: their strokes' sharp edges correlate inside the copy as a
    paste's grain does; the flat paint between them has each letter's own noise."""
    from stages.common.copymove import flat_grain, interior_grain, is_pasted
    from stages.common.keypoint import VerifiedCopy

    rng = np.random.default_rng(3)
    figure = np.full((120, 220), 150.0, np.float32)
    letter = np.full((48, 48), 70.0, np.float32)
    for x in range(4, 44, 16):
        letter[4:44, x:x + 3] = 230.0  # the strokes, cast alike in both letters
    for x in (30, 140):
        figure[36:84, x:x + 48] = letter + rng.normal(0, 4, letter.shape)  # each painted with its own noise
    shift = np.float64([[1, 0, 110], [0, 1, 0]])
    source = np.zeros(figure.shape, bool)
    source[36:84, 30:78] = True

    def event(pixels):
        work = WorkingImage.of(np.clip(pixels, 0, 255).astype(np.uint8))
        return work, [VerifiedCopy(source, warp_mask(source, shift), shift, 30, 0.9, 0.3, False)]

    work, look_alike = event(figure)
    assert interior_grain(work, look_alike[0]) >= PARAMS.min_interior_grain  # the strokes pass for grain inside ...
    assert flat_grain(work, look_alike[0]) < PARAMS.min_flat_grain  # ... the paint between them does not
    assert not is_pasted(work, look_alike, PARAMS)
    pasted = figure.copy()
    pasted[36:84, 140:188] = figure[36:84, 30:78]
    work, copy = event(pasted)
    assert flat_grain(work, copy[0]) > 0.99 and is_pasted(work, copy, PARAMS)


def test_an_event_whose_copies_lose_the_grain_inside_their_edge_is_a_look_alike():
    from stages.common.copymove import is_pasted, keeps_grain_inside
    from stages.common.keypoint import VerifiedCopy

    rng = np.random.default_rng(7)
    figure = np.full((120, 200), 140.0, np.float32)
    inside = rng.normal(0, 8, (30, 30))  # the source object's own noise
    for x, grain in ((30, inside), (120, None)):
        figure[40:80, x: x + 40] = 60.0  # one mould: the same sharp-edged object twice ...
        figure[45:75, x + 5: x + 35] += inside if grain is not None else rng.normal(0, 8, (30, 30))
    shift = np.float64([[1, 0, 90], [0, 1, 0]])

    def event(work, rows=slice(40, 80), inliers=30):
        source = np.zeros(work.shape, bool)
        source[rows, 30:70] = True
        return [VerifiedCopy(source, warp_mask(source, shift), shift, inliers, 0.9, 0.3, False)]

    look_alike = WorkingImage.of(np.clip(figure, 0, 255).astype(np.uint8))
    assert not keeps_grain_inside(look_alike, event(look_alike), PARAMS.min_interior_grain, PARAMS.min_flat_grain)
    pasted = figure.copy()
    pasted[40:80, 120:160] = figure[40:80, 30:70]  # ... against the object and its noise pasted
    pasted = WorkingImage.of(np.clip(pasted, 0, 255).astype(np.uint8))
    assert keeps_grain_inside(pasted, event(pasted), PARAMS.min_interior_grain, PARAMS.min_flat_grain)
    # a copy too thin to have an inside is not judged by it
    assert keeps_grain_inside(look_alike, event(look_alike, rows=slice(40, 44)), PARAMS.min_interior_grain, PARAMS.min_flat_grain)
    # ... and an event backed by more inliers than look-alikes gather is not judged by it either:
    # a JPEG re-quantises the grain inside a copy
    assert not is_pasted(look_alike, event(look_alike), PARAMS)
    assert is_pasted(look_alike, event(look_alike, inliers=PARAMS.strong_inliers), PARAMS)


def test_a_refinement_that_stretches_one_axis_is_refused():
    from stages.common.keypoint import refine_transform

    rng = np.random.default_rng(4)
    scene = textured_scene(rng, 200, 260)
    stretched = cv2.warpAffine(scene, np.float64([[1.0, 0, 0], [0, 0.93, 80 * 0.07]]), (260, 200))  # about y = 80
    # the right half is the left half squeezed vertically: an affine look-alike, not a rigid copy
    figure = np.hstack([scene[:, :130], stretched[:, :130]])
    work = WorkingImage.of(figure)
    guess = np.float64([[1.0, 0, 130], [0, 1.0, 0]])
    copy = np.zeros(figure.shape, bool)
    copy[40:120, 150:230] = True
    assert refine_transform(work, guess, copy, max_anisotropy=1.05) is guess
    refined = refine_transform(work, guess, copy, max_anisotropy=10.0)
    assert refined is not guess and abs(refined[1, 1] - 0.93) < 0.02  # the stretch ECC found


DENSE_FEATURES = """
import hashlib
import numpy as np
from stages.common.dense import features
gray = np.random.default_rng(0).uniform(0, 1, (160, 200)).astype(np.float32)
described, std = features(gray, radius=7)
print(hashlib.sha256(described.tobytes() + std.tobytes()).hexdigest())
"""


@needs_avx512
def test_dense_features_do_not_depend_on_the_cpus_simd_kernels():
    """NumPy's float32 hypot, arctan2, cos and sin differ in the last bit between its AVX-512 and AVX2
    kernels; the dense path's features must not, or a borderline match would move with the host."""
    assert run_python(DENSE_FEATURES, {"NPY_DISABLE_CPU_FEATURES": NO_AVX512}) == run_python(DENSE_FEATURES, {})
