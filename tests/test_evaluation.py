import dataclasses

import numpy as np
import pandas as pd
import pytest

from stages.common.config import load_params
from stages.common.evaluation import LabelledImage, calibration_report, per_instance_rows, summarize, sweep_thresholds
from stages.common.infer import Detections, Prediction

INFER = load_params().infer


def square(hw, top, left, side):
    m = np.zeros(hw, bool)
    m[top: top + side, left: left + side] = True
    return m


def test_summary_puts_the_floor_beside_the_score():
    hw = (20, 20)
    truth = [[square(hw, 2, 2, 5) | square(hw, 10, 10, 5)], [], [], []]
    perfect = [Prediction([truth[0][0]], 0.9), Prediction([], 0.1), Prediction([], 0.2), Prediction([], 0.0)]
    summary = summarize(truth, perfect)
    assert summary["of1"] == 1.0
    assert summary["all_authentic_of1"] == 0.75
    assert summary["forged_of1"] == 1.0 and summary["authentic_accuracy"] == 1.0
    assert summary["pixel_f1"] == 1.0 and summary["image_auc"] == 1.0

    all_authentic = [Prediction([], 0.0)] * 4
    assert summarize(truth, all_authentic)["of1"] == summary["all_authentic_of1"]


def test_per_instance_rows_list_every_true_instance_of_the_forged_images_only():
    hw = (20, 20)
    first, second = square(hw, 2, 2, 5), square(hw, 10, 10, 5)
    images = [LabelledImage("a", np.zeros((*hw, 3), np.uint8), [first, second]),
              LabelledImage("b", np.zeros((*hw, 3), np.uint8), [])]
    rows = per_instance_rows("keypoint", images, [Prediction([second], 0.9), Prediction([first], 0.8)])
    assert rows[["case_id", "instance", "matched_f1"]].values.tolist() == [["a", 0, 0.0], ["a", 1, 1.0]]
    # the first instance's match lies off it; the second's covers it exactly
    assert rows["matched_precision"].isna().tolist() == [True, False] and rows["matched_recall"].iloc[1] == 1.0
    assert (rows["detector"] == "keypoint").all()


def test_false_alarm_costs_the_whole_image():
    hw = (10, 10)
    summary = summarize([[], []], [Prediction([square(hw, 0, 0, 3)], 0.8), Prediction([], 0.1)])
    assert summary["of1"] == 0.5 and summary["authentic_accuracy"] == 0.5 and summary["forged_of1"] is None


def test_sweep_and_calibration_find_the_separating_threshold():
    hw = (16, 16)
    blob = square(hw, 4, 4, 6)
    # Forged images get confident detections, authentic ones a weaker false alarm.
    dets, truths = [], []
    for i in range(8):
        forged = i % 2 == 0
        score = 0.9 if forged else 0.6
        dets.append(Detections(np.array([score], np.float32), blob[None].astype(np.float16), hw))
        truths.append([blob] if forged else [])
    images = [np.zeros((*hw, 3), np.uint8)] * 8
    sweep = sweep_thresholds(dets, truths, images, dataclasses.replace(INFER, min_area=0), [0.5], [0.5, 0.7])
    assert sweep.set_index("image_threshold")["of1"].to_dict() == {0.5: 0.5, 0.7: 1.0}
    report = calibration_report(sweep, [str(i) for i in range(8)])
    assert report["best_image_threshold"] == 0.7 and report["best_of1_on_val"] == 1.0
    assert report["tuned_of1_held_out"] == pytest.approx(1.0)
