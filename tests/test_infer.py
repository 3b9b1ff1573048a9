import dataclasses

import numpy as np
import pytest
import torch

from stages.common.config import load_params
from stages.common.config import ModelParams
from stages.common.infer import Detections, answer, detect, detections_from_output, to_model_input
from stages.common.masks import merge_overlapping
from stages.common.model import build_model

INFER = dataclasses.replace(load_params().infer, score_threshold=0.5, image_threshold=0.5, mask_threshold=0.5,
                            min_area=4, merge_iou=0.5, group_ncc=0.7, max_instances=5)


def textured_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def disk(hw, center, radius):
    yy, xx = np.mgrid[: hw[0], : hw[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def dets_of(masks, scores, image_hw=None):
    masks = np.stack(masks).astype(np.float16)
    return Detections(scores=np.asarray(scores, np.float32), masks=masks, image_hw=image_hw or masks.shape[1:])


def test_two_detections_of_one_copied_object_become_one_instance():
    image = textured_image(96, 128)
    src, dst = disk((96, 128), (30, 30), 10), disk((96, 128), (60, 90), 10)
    # The copy: the source's pixels pasted at the destination.
    image[dst] = image[src]
    pred = answer(dets_of([src, dst], [0.9, 0.8]), INFER, image)
    assert len(pred.instances) == 1
    assert pred.instances[0][src].all() and pred.instances[0][dst].all()


def test_unrelated_detections_stay_separate_events():
    image = textured_image(96, 128)
    a, b = disk((96, 128), (30, 30), 10), disk((96, 128), (60, 90), 10)
    pred = answer(dets_of([a, b], [0.9, 0.8]), INFER, image)
    assert len(pred.instances) == 2


def test_no_detection_is_authentic():
    empty = Detections(scores=np.zeros(0, np.float32), masks=np.zeros((0, 20, 30), np.float16), image_hw=(20, 30))
    pred = answer(empty, INFER)
    assert pred.is_authentic and pred.image_score == 0.0


def test_low_image_score_is_authentic_even_with_masks():
    m = disk((40, 40), (20, 20), 8)
    pred = answer(dets_of([m], [0.55]), dataclasses.replace(INFER, image_threshold=0.6))
    assert pred.is_authentic
    assert pred.image_score == pytest.approx(0.55)


def test_overlapping_duplicates_merge():
    a = disk((64, 64), (30, 30), 12)
    b = disk((64, 64), (31, 30), 12)
    assert merge_overlapping([a, b], 0.5) == [[0, 1]]


def test_cap_on_instances_keeps_the_best():
    masks = [disk((100, 100), (15 + 35 * (i // 3), 15 + 35 * (i % 3)), 6) for i in range(6)]
    scores = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7]
    pred = answer(dets_of(masks, scores), dataclasses.replace(INFER, max_instances=2, group_ncc=1.0))
    assert len(pred.instances) == 2
    assert pred.instances[0][masks[0]].all() and pred.instances[1][masks[1]].all()


@pytest.mark.parametrize("hw", [(333, 517), (97, 61), (1, 1)])
def test_masks_come_back_at_the_exact_original_size(hw):
    work = (max(1, hw[0] // 4), max(1, hw[1] // 4))
    mask = np.zeros(work, bool)
    mask[work[0] // 4: work[0] // 4 * 3 + 1, work[1] // 4: work[1] // 4 * 3 + 1] = True
    pred = answer(dets_of([mask], [0.9], image_hw=hw), dataclasses.replace(INFER, min_area=0))
    assert len(pred.instances) == 1
    assert pred.instances[0].shape == hw and pred.instances[0].dtype == bool


def test_model_input_keeps_aspect_ratio_and_bounds_the_long_side():
    image = textured_image(300, 900)
    x = to_model_input(image, max_side=450)
    assert x.shape == (3, 150, 450) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    small = to_model_input(textured_image(50, 70), max_side=450)
    assert small.shape == (3, 50, 70)


def test_evidence_becomes_a_fourth_channel_scaled_with_the_image():
    evidence = np.zeros((300, 900), np.float32)
    evidence[:, :450] = 0.8
    x = to_model_input(textured_image(300, 900), max_side=450, evidence=evidence)
    assert x.shape == (4, 150, 450)
    assert x[3, :, :200].min() == pytest.approx(0.8) and x[3, :, 250:].max() == 0.0
    with pytest.raises(ValueError, match="does not match"):
        to_model_input(textured_image(300, 900), max_side=450, evidence=evidence[:10])


def test_detect_insists_on_evidence_exactly_when_the_model_takes_it():
    image = textured_image(64, 80)
    with_evidence = build_model(ModelParams("seed", 64, 96, "none", "keypoint"))
    plain = build_model(ModelParams("seed", 64, 96, "none", "none"))
    with pytest.raises(ValueError, match="takes 1 evidence channel"):
        detect(with_evidence, [image], torch.device("cpu"), 96)
    with pytest.raises(ValueError, match="takes 0 evidence channel"):
        detect(plain, [image], torch.device("cpu"), 96, [np.zeros((64, 80), np.float32)])
    dets = detect(with_evidence, [image], torch.device("cpu"), 96, [np.zeros((64, 80), np.float32)])
    assert dets[0].image_hw == (64, 80)


def test_detections_from_output_keeps_scores_above_floor():
    out = {
        "scores": torch.tensor([0.9, 0.3, 0.01]),
        "masks": torch.rand(3, 1, 10, 12),
        "boxes": torch.zeros(3, 4),
        "labels": torch.ones(3, dtype=torch.int64),
    }
    dets = detections_from_output(out, (40, 48), min_score=0.05)
    assert dets.scores.tolist() == pytest.approx([0.9, 0.3])
    assert dets.masks.shape == (2, 10, 12) and dets.image_hw == (40, 48)


@pytest.mark.parametrize("evidence, detector, keypoint_runs", [
    ("keypoint", "maskrcnn", 1), ("keypoint", "fusion", 1), ("none", "maskrcnn", 0), ("none", "fusion", 1),
])
def test_predict_runs_the_keypoint_detector_once_and_only_when_needed(monkeypatch, evidence, detector, keypoint_runs):
    from stages.common import detectors
    runs = []
    monkeypatch.setattr(detectors, "detect_copy_move", lambda image, params: runs.append(image.shape) or [])
    model = build_model(ModelParams("seed", 64, 96, "none", evidence))
    params = load_params()
    prediction = detectors.predict_image(textured_image(64, 80), detector, model, torch.device("cpu"),
                                         INFER, params.keypoint, 96)
    assert len(runs) == keypoint_runs
    assert all(m.shape == (64, 80) for m in prediction.instances)
