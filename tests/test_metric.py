import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment

from stages.common.metric import (
    SolutionError,
    SubmissionError,
    image_level_scores,
    image_score,
    instance_f1_matrix,
    instance_matches,
    pixel_scores,
    score,
    score_report,
    score_row,
    score_rows,
)
from stages.common.rle import encode_instances

SHAPE = "[720, 960]"


def frames(truths, predictions, shapes=None):
    ids = [f"case{i}" for i in range(len(truths))]
    shapes = shapes or [SHAPE if t != "authentic" else "authentic" for t in truths]
    solution = pd.DataFrame({"case_id": ids, "annotation": truths, "shape": shapes})
    submission = pd.DataFrame({"case_id": ids, "annotation": predictions})
    return solution, submission


# ---------------------------------------------------------------- the published examples


def test_published_example_perfect():
    assert score(*frames(["[101, 102]"] * 3, ["[101, 102]"] * 3)) == 1.0


def test_published_example_one_pixel_short():
    # Truth [101, 103] covers 103 pixels, the prediction [101, 102] the first 102 of them:
    # tp = 102, fp = 0, fn = 1, so precision = 1, recall = 102/103 and
    # F1 = 2 * 102 / (102 + 103) = 204/205. The mean with two perfect images is
    # (2 + 204/205) / 3 = 614/615 = 0.99837398373983739...
    value = score(*frames(["[101, 103]", "[101, 102]", "[101, 102]"], ["[101, 102]"] * 3))
    assert value == 0.9983739837398374
    assert value == pytest.approx(614 / 615, abs=1e-15)


def test_published_example_missed_second_instance():
    # Truth has two instances; the one prediction matches the first exactly (F1 1) and does
    # not touch the second (pixels 300..399 vs 101..202, F1 0). The padded zero row is
    # matched to the second: mean F1 (1 + 0) / 2 = 0.5, penalty 2 / max(1, 2) = 1.
    # Dataset: (0.5 + 1 + 1) / 3 = 5/6.
    value = score(*frames(["[101, 102];[300, 100]", "[101, 102]", "[101, 102]"], ["[101, 102]"] * 3))
    assert value == 0.8333333333333334


def test_published_example_authentic():
    assert score(*frames(["authentic"] * 3, ["authentic"] * 3)) == 1.0
    assert score(*frames(["authentic"] * 3, ["[101, 102]"] * 3)) == 0.0


# ---------------------------------------------------------------- an independent oracle


def published_of1(pred_masks, gt_masks):
    """The competition's scorer, transcribed loop for loop, to check bit-exact agreement."""
    f1_matrix = np.zeros((len(pred_masks), len(gt_masks)))
    for i, p in enumerate(pred_masks):
        for j, g in enumerate(gt_masks):
            p_flat, g_flat = p.flatten(), g.flatten()
            tp = np.sum((p_flat == 1) & (g_flat == 1))
            fp = np.sum((p_flat == 1) & (g_flat == 0))
            fn = np.sum((p_flat == 0) & (g_flat == 1))
            precision = tp / (tp + fp) if (tp + fp) > 0 else 0
            recall = tp / (tp + fn) if (tp + fn) > 0 else 0
            f1_matrix[i, j] = 2 * (precision * recall) / (precision + recall) if precision + recall > 0 else 0
    if f1_matrix.shape[0] < len(gt_masks):
        f1_matrix = np.vstack((f1_matrix, np.zeros((len(gt_masks) - len(f1_matrix), len(gt_masks)))))
    rows, cols = linear_sum_assignment(-f1_matrix)
    excess_predictions_penalty = len(gt_masks) / max(len(pred_masks), len(gt_masks))
    return np.mean(f1_matrix[rows, cols]) * excess_predictions_penalty


@settings(max_examples=80, deadline=None)
@given(st.integers(3, 12), st.integers(3, 12), st.integers(1, 4), st.integers(1, 4), st.data())
def test_image_score_equals_the_published_scorer_bit_for_bit(height, width, n_gt, n_pred, data):
    gt = list(data.draw(arrays(np.uint8, (n_gt, height, width), elements=st.integers(0, 1))))
    pred = list(data.draw(arrays(np.uint8, (n_pred, height, width), elements=st.integers(0, 1))))
    assert image_score(gt, pred) == published_of1(pred, gt)


# ---------------------------------------------------------------- properties


def random_dataset(data, n_images):
    """Solution annotations of random forged and authentic images on small shapes."""
    truths, shapes = [], []
    for _ in range(n_images):
        height, width = data.draw(st.integers(2, 10)), data.draw(st.integers(2, 10))
        count = data.draw(st.integers(0, 3))
        masks = data.draw(arrays(np.uint8, (count, height, width), elements=st.integers(0, 1)))
        annotation = encode_instances(masks)
        truths.append(annotation)
        shapes.append("authentic" if annotation == "authentic" else f"[{height}, {width}]")
    return truths, shapes


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.data())
def test_a_perfect_submission_scores_one(n_images, data):
    truths, shapes = random_dataset(data, n_images)
    assert score(*frames(truths, truths, shapes)) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8), st.data())
def test_calling_everything_authentic_scores_the_authentic_share(n_images, data):
    truths, shapes = random_dataset(data, n_images)
    n_authentic = truths.count("authentic")
    report = score_report(*frames(truths, ["authentic"] * n_images, shapes))
    assert report["score"] == n_authentic / n_images
    assert report["all_authentic_score"] == report["score"]


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(2, 12), st.data())
def test_splitting_one_instance_into_two_halves_is_punished(height, width, data):
    truth = np.zeros((height, width), dtype=np.uint8)
    top = data.draw(st.integers(0, height - 2))
    truth[top : top + 2, :] = 1  # at least two rows, so both halves are non-empty
    upper, lower = truth.copy(), truth.copy()
    upper[top + 1 :] = 0
    lower[: top + 1] = 0
    split = image_score([truth], [upper, lower])
    # The best half matches with F1 2/3; the second prediction halves the score again.
    assert split < 1.0
    assert split == pytest.approx(2 / 3 * 1 / 2)


def test_extra_prediction_halves_the_score():
    truth = np.zeros((6, 6), dtype=np.uint8)
    truth[1:3, 1:3] = 1
    stray = np.zeros_like(truth)
    stray[5, 5] = 1
    assert image_score([truth], [truth]) == 1.0
    assert image_score([truth], [truth, stray]) == 0.5


def test_f1_matrix_pads_missing_predictions_with_zero_rows():
    a = np.zeros((4, 4), dtype=bool)
    a[0, :2] = True  # 2 pixels
    b = np.zeros((4, 4), dtype=bool)
    b[0, :] = True  # 4 pixels, 2 shared with a
    f1 = instance_f1_matrix([a], [b, a])
    assert f1.shape == (2, 2)
    # a vs b: precision 1, recall 1/2, F1 2/3; a vs a: 1; padded row: 0.
    np.testing.assert_allclose(f1, [[2 / 3, 1.0], [0.0, 0.0]])


def test_instance_matches_give_each_true_instance_its_match_in_the_truth_s_order():
    a, b, c = (np.zeros((4, 4), dtype=bool) for _ in range(3))
    a[0, :2], b[0, :], c[3, :] = True, True, True
    # a is matched to a (F1 1), b to nothing: the one prediction serves the better match.
    np.testing.assert_allclose(instance_matches([b, a], [a]).f1, [0.0, 1.0])
    # b matched to the half of it that a is (2/3), c to c; the stray third prediction is matched to none.
    found = instance_matches([b, c], [c, a, np.eye(4, dtype=bool)])
    np.testing.assert_allclose(found.f1, [2 / 3, 1.0])
    # a lies wholly on b (precision 1) and covers half of it (recall 1/2)
    np.testing.assert_allclose(found.precision, [1.0, 1.0])
    np.testing.assert_allclose(found.recall, [0.5, 1.0])
    none = instance_matches([a, b], [])
    np.testing.assert_array_equal(none.f1, [0.0, 0.0])
    assert np.isnan(none.precision).all() and np.isnan(none.recall).all()
    assert instance_matches([], [a]).f1.shape == (0,)


def test_an_instance_matched_to_a_prediction_off_it_has_no_precision_or_recall():
    a, b = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    a[0, 0], b[3, 3] = True, True
    found = instance_matches([a], [b])
    assert found.f1[0] == 0.0 and np.isnan(found.precision[0]) and np.isnan(found.recall[0])


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 8), st.integers(1, 4), st.integers(1, 4), st.data())
def test_matched_f1_averages_to_the_image_score_before_its_penalty(side, n_gt, n_pred, data):
    gt = list(data.draw(arrays(np.uint8, (n_gt, side, side), elements=st.integers(0, 1))))
    pred = list(data.draw(arrays(np.uint8, (n_pred, side, side), elements=st.integers(0, 1))))
    found = instance_matches(gt, pred)
    assert found.f1.mean() * n_gt / max(n_gt, n_pred) == pytest.approx(image_score(gt, pred))
    # where they overlap, F1 is the harmonic mean of the precision and recall
    overlap = ~np.isnan(found.precision)
    np.testing.assert_allclose(found.f1[overlap], 2 * found.precision[overlap] * found.recall[overlap]
                               / (found.precision[overlap] + found.recall[overlap]))
    assert (found.f1[~overlap] == 0).all()


def test_f1_matrix_rejects_masks_of_different_sizes():
    with pytest.raises(ValueError, match="pixels"):
        instance_f1_matrix([np.ones((3, 3))], [np.ones((4, 4))])


def test_score_row_accepts_tuple_or_json_shape():
    assert score_row("[1, 4]", "[1, 4]", (2, 2)) == 1.0
    assert score_row("[1, 4]", "[1, 2]", "[2, 2]") == pytest.approx(2 / 3)
    assert score_row("authentic", "authentic", "authentic") == 1.0
    assert score_row("[1, 4]", "authentic", "[2, 2]") == 0.0


# ---------------------------------------------------------------- the report


def test_score_report_breaks_the_score_down():
    truths = ["[1, 4]", "[1, 4]", "authentic", "authentic"]
    predictions = ["[1, 4]", "authentic", "authentic", "[1, 1]"]
    solution, submission = frames(truths, predictions, ["[2, 2]", "[2, 2]", "authentic", "authentic"])
    report = score_report(solution, submission)
    assert report["score"] == 0.5  # 1 + 0 + 1 + 0
    assert report["n_images"] == 4 and report["n_forged"] == 2 and report["n_authentic"] == 2
    assert report["forged_mean"] == 0.5
    assert report["forged_detection_rate"] == 0.5
    assert report["authentic_accuracy"] == 0.5
    assert report["all_authentic_score"] == 0.5
    assert (report["n_missing"], report["n_extra"], report["n_unparsable"]) == (0, 0, 0)


def test_groups_without_rows_report_none():
    report = score_report(*frames(["authentic"], ["authentic"]))
    assert report["forged_mean"] is None and report["forged_detection_rate"] is None
    assert report["authentic_accuracy"] == 1.0


def test_rows_are_matched_by_case_id_not_position():
    solution, submission = frames(["[1, 4]", "authentic"], ["[1, 4]", "authentic"], ["[2, 2]", "authentic"])
    assert score(solution, submission.iloc[::-1]) == 1.0


def test_integer_case_ids_match_their_text():
    solution, submission = frames(["authentic"], ["authentic"])
    solution["case_id"] = [7]
    submission["case_id"] = ["7"]
    assert score(solution, submission) == 1.0


def test_per_image_rows_follow_the_solution():
    solution, submission = frames(["[1, 4]", "authentic"], ["[1, 2]", "[1, 1]"], ["[2, 2]", "authentic"])
    rows = score_rows(solution, submission).frame
    assert list(rows["case_id"]) == ["case0", "case1"]
    assert list(rows["is_forged"]) == [True, False]
    assert list(rows["predicted_forged"]) == [True, True]
    np.testing.assert_allclose(rows["image_score"], [2 / 3, 0.0])


# ---------------------------------------------------------------- bad submissions


def test_missing_rows_are_named():
    solution, submission = frames(["authentic"] * 8, ["authentic"] * 8)
    with pytest.raises(SubmissionError, match=r"2 case_id\(s\) missing: case6, case7"):
        score(solution, submission.iloc[:6])


def test_many_missing_rows_are_summarised():
    solution, submission = frames(["authentic"] * 9, ["authentic"] * 9)
    with pytest.raises(SubmissionError, match="case0, case1, case2, case3, case4 and 3 more"):
        score(solution, submission.iloc[8:])


def test_extra_and_duplicate_rows_are_errors():
    solution, submission = frames(["authentic"] * 2, ["authentic"] * 2)
    extra = pd.concat([submission, pd.DataFrame({"case_id": ["zzz"], "annotation": ["authentic"]})])
    with pytest.raises(SubmissionError, match="not in the solution: zzz"):
        score(solution, extra)
    with pytest.raises(SubmissionError, match="duplicate case_id.*case1"):
        score(solution, pd.concat([submission, submission.iloc[1:]]))


def test_missing_and_extra_columns_are_errors():
    solution, submission = frames(["authentic"], ["authentic"])
    with pytest.raises(SubmissionError, match="missing column.*annotation"):
        score(solution, submission.drop(columns="annotation"))
    with pytest.raises(SubmissionError, match="unexpected column.*score"):
        score(solution, submission.assign(score=1.0))


def test_unparsable_annotations_are_named_even_on_authentic_rows():
    solution, submission = frames(["[1, 2]", "authentic"], ["[1, 99]", "[1 2]"], ["[3, 3]", "authentic"])
    with pytest.raises(SubmissionError, match=r"2 annotation\(s\).*case0 \(.*past the 3x3.*case1 \(.*JSON"):
        score(solution, submission)


def test_lenient_forgives_and_counts():
    solution, submission = frames(
        ["[1, 4]", "[1, 4]", "authentic", "authentic"],
        ["[1, 4]", "garbage", "authentic", "authentic"],
        ["[2, 2]", "[2, 2]", "authentic", "authentic"],
    )
    partial = pd.concat([submission.iloc[:3], pd.DataFrame({"case_id": ["other"], "annotation": ["[1, 1]"]})])
    report = score_report(solution, partial.assign(note="x"), lenient=True)
    # case1 unparsable -> authentic (0), case3 missing -> authentic (1): (1 + 0 + 1 + 1) / 4
    assert report["score"] == 0.75
    assert (report["n_missing"], report["n_extra"], report["n_unparsable"]) == (1, 1, 1)
    assert report["forged_detection_rate"] == 0.5
    with pytest.raises(SubmissionError, match="duplicate"):
        score_report(solution, pd.concat([submission, submission]), lenient=True)


def test_broken_solution_is_a_solution_error():
    with pytest.raises(SolutionError, match="without a \\[H, W\\] shape"):
        score(*frames(["[1, 1]"], ["authentic"], ["authentic"]))
    with pytest.raises(SolutionError, match="past the 2x2"):
        score(*frames(["[1, 9]"], ["[1, 1]"], ["[2, 2]"]))
    with pytest.raises(SolutionError, match="duplicate"):
        solution, submission = frames(["authentic"] * 2, ["authentic"] * 2)
        score(solution.assign(case_id="same"), submission)


# ---------------------------------------------------------------- extras


def test_pixel_scores_are_micro_averaged():
    gt_a, pred_a = np.zeros((2, 2), bool), np.zeros((2, 2), bool)
    gt_a[0] = True  # 2 true pixels
    pred_a[0, 0] = True  # 1 tp
    gt_b, pred_b = np.zeros((3, 3), bool), np.ones((3, 3), bool)
    gt_b[0, 0] = True  # 1 tp, 8 fp
    scores = pixel_scores([gt_a, gt_b], [pred_a, pred_b])
    # tp 2, fp 8, fn 1 over both images
    assert scores["pixel_precision"] == pytest.approx(2 / 10)
    assert scores["pixel_recall"] == pytest.approx(2 / 3)
    assert scores["pixel_f1"] == pytest.approx(2 * 0.2 * (2 / 3) / (0.2 + 2 / 3))
    assert scores["pixel_iou"] == pytest.approx(2 / 11)


def test_pixel_scores_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="image 0"):
        pixel_scores([np.zeros((2, 2))], [np.zeros((3, 3))])
    with pytest.raises(ValueError, match="1 true masks but 0"):
        pixel_scores([np.zeros((2, 2))], [])


def test_image_level_scores():
    is_forged = np.array([1, 1, 0, 0], bool)
    confidence = np.array([0.9, 0.4, 0.5, 0.1])
    called = confidence >= 0.5
    scores = image_level_scores(is_forged, confidence, called)
    assert scores["image_precision"] == 0.5 and scores["image_recall"] == 0.5
    assert scores["image_f1"] == pytest.approx(0.5)
    assert scores["image_auc"] == 0.75  # 3 of the 4 forged/authentic pairs are ranked right


def test_image_auc_is_none_with_one_class():
    scores = image_level_scores(np.ones(3, bool), np.array([0.1, 0.5, 0.9]), np.ones(3, bool))
    assert scores["image_auc"] is None
    assert scores["image_recall"] == 1.0


def test_image_level_scores_reject_nan_and_length_mismatch():
    with pytest.raises(ValueError, match="NaN"):
        image_level_scores(np.array([True, False]), np.array([np.nan, 0.1]), np.array([True, False]))
    with pytest.raises(ValueError, match="one length"):
        image_level_scores(np.array([True]), np.array([0.1, 0.2]), np.array([True]))
