"""The competition's oF1 score ("recodai-f1"), its validation, and pixel- and image-level extras.

Per image: if the truth or the prediction is `authentic`, the image scores 1.0 when both are and
0.0 otherwise. Otherwise both annotations are decoded to instance masks, the pixel-F1 matrix
between predicted and true instances is matched with the Hungarian method (maximising F1, with
zero rows padded in when there are fewer predictions than truths), and the image scores the mean
matched F1 times len(gt) / max(len(pred), len(gt)). The dataset score is the mean over images.

Floating-point operations follow the published scorer's order (precision and recall first, then
their harmonic mean), so scores agree with the leaderboard to the last bit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import roc_auc_score

from .rle import AUTHENTIC, RLEError, decode_annotation, parse_annotation

ID_COLUMN = "case_id"
SOLUTION_COLUMNS = (ID_COLUMN, "annotation", "shape")
SUBMISSION_COLUMNS = (ID_COLUMN, "annotation")
SHOWN_IDS = 5  # case_ids named in an error message before "and N more"


class SubmissionError(ValueError):
    """A submission that cannot be scored: wrong columns, wrong rows or unparsable annotations."""


class SolutionError(ValueError):
    """A solution (ground-truth) table that cannot be used for scoring."""


# ---------------------------------------------------------------- one image


def instance_f1_matrix(pred: list[np.ndarray], gt: list[np.ndarray]) -> np.ndarray:
    """Pixel F1 between every predicted (rows) and every true (columns) instance.

    Rows of zeros are appended when there are fewer predictions than true instances, as the
    published scorer does, so every true instance is matched to something.
    """
    if not pred or not gt:
        return np.zeros((max(len(pred), len(gt)), len(gt)))
    return _f1_matrix(*overlap_matrices(pred, gt))


def _f1_matrix(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """instance_f1_matrix from overlap_matrices' (precision, recall)."""
    n_pred, n_gt = precision.shape
    f1 = np.zeros((max(n_pred, n_gt), n_gt))
    f1[:n_pred] = _safe_divide(2 * (precision * recall), precision + recall)
    return f1


def overlap_matrices(pred: list[np.ndarray], gt: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall), each (len(pred), len(gt)): the share of each predicted instance's
    pixels that lie on each true instance, and the share of each true instance it covers."""
    pred_flat = _stack_flat(pred)
    gt_flat = _stack_flat(gt)
    if pred_flat.shape[1] != gt_flat.shape[1]:
        raise ValueError(f"predicted masks have {pred_flat.shape[1]} pixels, true masks {gt_flat.shape[1]}")
    # Exact integer counts: a float matmul would round once an image passes 2**24 pixels.
    tp = np.array([[np.count_nonzero(p & g) for g in gt_flat] for p in pred_flat], dtype=np.int64)
    pred_area = np.count_nonzero(pred_flat, axis=1)[:, None]
    gt_area = np.count_nonzero(gt_flat, axis=1)[None, :]
    return (_safe_divide(tp, np.broadcast_to(pred_area, tp.shape)),
            _safe_divide(tp, np.broadcast_to(gt_area, tp.shape)))


def image_score(gt_masks: list[np.ndarray], pred_masks: list[np.ndarray]) -> float:
    """oF1 of one forged image: mean matched F1, penalised for excess predictions.

    An empty list on either side means `authentic`, scored as the row-level rule does.
    """
    if not gt_masks or not pred_masks:
        return float(not gt_masks and not pred_masks)
    f1, rows, cols = _matching(*overlap_matrices(pred_masks, gt_masks))
    excess_penalty = len(gt_masks) / max(len(pred_masks), len(gt_masks))
    return float(np.mean(f1[rows, cols]) * excess_penalty)


@dataclass(frozen=True)
class InstanceMatches:
    """Each true instance's match in image_score's matching, in the truth's order."""

    f1: np.ndarray  # pixel F1 with its matched prediction; 0 where none is (fewer predictions, or none)
    precision: np.ndarray  # share of that prediction's pixels on the instance; nan where none overlaps it
    recall: np.ndarray  # share of the instance that prediction covers; nan where none overlaps it


def instance_matches(gt_masks: list[np.ndarray], pred_masks: list[np.ndarray]) -> InstanceMatches:
    """How the prediction image_score matches to each true instance covers it.

    F1 alone cannot say whether a mask missed its instance, fell short of it or spilled past it:
    precision and recall can, where the two overlap.
    """
    n = len(gt_masks)
    f1, precision, recall = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    if gt_masks and pred_masks:
        pred_share, gt_share = overlap_matrices(pred_masks, gt_masks)
        matrix, rows, cols = _matching(pred_share, gt_share)
        f1[cols] = matrix[rows, cols]
        predicted = rows < len(pred_masks)  # the padded rows match a true instance to no prediction
        rows, cols = rows[predicted], cols[predicted]
        covering = pred_share[rows, cols] > 0
        precision[cols[covering]] = pred_share[rows, cols][covering]
        recall[cols[covering]] = gt_share[rows, cols][covering]
    return InstanceMatches(f1=f1, precision=precision, recall=recall)


def _matching(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Hungarian matching that maximises F1, from overlap_matrices' (precision, recall): the F1
    matrix (predictions, padded, by truths) and the matched rows and columns."""
    f1 = _f1_matrix(precision, recall)
    rows, cols = linear_sum_assignment(f1, maximize=True)
    return f1, rows, cols


def score_row(solution_annotation: str, submission_annotation: str, shape: tuple[int, int] | str) -> float:
    """Score of one image. `shape` is (H, W) or the solution's JSON "[H, W]" text.

    Raises RLEError when either annotation does not decode (the caller knows which side).
    """
    if AUTHENTIC in (solution_annotation, submission_annotation):
        return float(solution_annotation == submission_annotation)
    hw = parse_shape(shape) if isinstance(shape, str) else shape
    gt = decode_annotation(solution_annotation, hw)
    pred = decode_annotation(submission_annotation, hw)
    return image_score(gt, pred)


def parse_shape(text: str) -> tuple[int, int]:
    """The solution's JSON "[H, W]" as a pair of positive ints."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError, TypeError):
        raise RLEError(f"shape {text!r} is not JSON [height, width]") from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(type(v) is int and v > 0 for v in value)
    ):
        raise RLEError(f"shape {text!r} is not [height, width] with two positive integers")
    return value[0], value[1]


# ---------------------------------------------------------------- a dataset


@dataclass(frozen=True)
class ScoredRows:
    """Per-image scores in solution order, and what had to be forgiven to get them."""

    frame: pd.DataFrame  # case_id, is_forged, predicted_forged, image_score
    n_missing: int = 0  # solution rows absent from the submission (lenient only)
    n_extra: int = 0  # submission rows not in the solution (lenient only)
    n_unparsable: int = 0  # submission annotations that failed to decode (lenient only)


def score_rows(solution: pd.DataFrame, submission: pd.DataFrame, lenient: bool = False) -> ScoredRows:
    """Score every solution row against the submission row with the same case_id.

    Strict (the default, as on the leaderboard): missing, extra or duplicate rows, missing or
    extra columns and annotations that fail to decode raise SubmissionError naming the case_ids.
    Lenient (for scoring partial work): missing rows count as `authentic`, extra rows and extra
    columns are ignored, unparsable annotations count as `authentic`; all are counted in the
    result. Duplicate case_ids and missing columns stay errors, since no answer can be chosen.
    """
    solution = _checked_solution(solution)
    predictions, n_missing, n_extra = _aligned_predictions(solution, submission, lenient)
    scores, failed = [], []
    rows = zip(solution[ID_COLUMN], solution["annotation"], solution["shape"])
    for index, (case_id, label, shape) in enumerate(rows):
        try:
            scores.append(_score_checked_row(label, predictions[index], shape))
        except RLEError as e:
            failed.append(f"{case_id} ({e})")
            predictions[index] = AUTHENTIC
            scores.append(_score_checked_row(label, AUTHENTIC, shape))
    if failed and not lenient:
        raise SubmissionError(f"submission: {len(failed)} annotation(s) do not decode: {_first(failed)}")
    frame = pd.DataFrame(
        {
            ID_COLUMN: solution[ID_COLUMN].to_numpy(),
            "is_forged": (solution["annotation"] != AUTHENTIC).to_numpy(),
            "predicted_forged": np.array([p != AUTHENTIC for p in predictions], dtype=bool),
            "image_score": np.array(scores, dtype=np.float64),
        }
    )
    return ScoredRows(frame, n_missing=n_missing, n_extra=n_extra, n_unparsable=len(failed))


def score(solution: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The competition's dataset score: the mean oF1 over the solution's images (strict)."""
    return score_report(solution, submission)["score"]


def score_report(solution: pd.DataFrame, submission: pd.DataFrame, lenient: bool = False) -> dict:
    """The score with the breakdown an analyst needs to read it, JSON-ready.

    `all_authentic_score` is the floor every model must beat: the score of calling every image
    authentic, which equals the share of authentic images. Means over an empty group are None.
    """
    scored = score_rows(solution, submission, lenient=lenient)
    rows = scored.frame
    forged = rows["is_forged"].to_numpy()
    called_forged = rows["predicted_forged"].to_numpy()
    image_scores = rows["image_score"].to_numpy()
    return {
        "score": float(np.mean(image_scores)),
        "n_images": len(rows),
        "n_forged": int(forged.sum()),
        "n_authentic": int((~forged).sum()),
        "forged_mean": _mean_or_none(image_scores[forged]),
        "authentic_accuracy": _mean_or_none(~called_forged[~forged]),
        "forged_detection_rate": _mean_or_none(called_forged[forged]),
        "all_authentic_score": float(np.mean(~forged)),
        "n_missing": scored.n_missing,
        "n_extra": scored.n_extra,
        "n_unparsable": scored.n_unparsable,
    }


def read_solution(path: str | Path) -> pd.DataFrame:
    return _read_table(path, SolutionError)


def read_submission(path: str | Path) -> pd.DataFrame:
    return _read_table(path, SubmissionError)


def _read_table(path: str | Path, error: type[ValueError]) -> pd.DataFrame:
    path = Path(path)
    kind = "solution" if error is SolutionError else "submission"
    if not path.exists():
        raise error(f"{kind} file not found: {path}")
    if not path.is_file():
        raise error(f"{kind} path is not a file: {path}")
    try:
        # All text: case_ids such as "007" keep their zeros, and an empty cell stays "" (a
        # parse error later) instead of becoming NaN.
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise error(f"{kind} file {path} is not a readable CSV: {e}") from None


def _checked_solution(solution: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SOLUTION_COLUMNS if c not in solution.columns]
    if missing:
        raise SolutionError(f"solution: missing column(s) {', '.join(missing)}")
    if solution.empty:
        raise SolutionError("solution has no rows")
    solution = solution.assign(**{ID_COLUMN: solution[ID_COLUMN].astype(str)})
    duplicated = solution[ID_COLUMN][solution[ID_COLUMN].duplicated()].unique()
    if len(duplicated):
        raise SolutionError(f"solution: duplicate case_id(s) {_first(duplicated)}")
    bad_shape = solution[(solution["annotation"] != AUTHENTIC) & (solution["shape"] == AUTHENTIC)][ID_COLUMN]
    if len(bad_shape):
        raise SolutionError(f"solution: forged row(s) without a [H, W] shape: {_first(bad_shape)}")
    return solution


def _aligned_predictions(solution: pd.DataFrame, submission: pd.DataFrame, lenient: bool) -> tuple[list, int, int]:
    """The submission's annotation for each solution row, and the counts of missing and extra rows."""
    missing_columns = [c for c in SUBMISSION_COLUMNS if c not in submission.columns]
    if missing_columns:
        raise SubmissionError(f"submission: missing column(s) {', '.join(missing_columns)}")
    extra_columns = [str(c) for c in submission.columns if c not in SUBMISSION_COLUMNS]
    if extra_columns and not lenient:
        raise SubmissionError(
            f"submission: unexpected column(s) {', '.join(extra_columns)}; expected exactly case_id, annotation"
        )
    ids = submission[ID_COLUMN].astype(str)
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        raise SubmissionError(f"submission: duplicate case_id(s) {_first(duplicated)}")
    by_id = dict(zip(ids, submission["annotation"]))
    wanted = set(solution[ID_COLUMN])
    missing = [c for c in solution[ID_COLUMN] if c not in by_id]
    extra = [c for c in ids if c not in wanted]
    if not lenient and missing:
        raise SubmissionError(f"submission: {len(missing)} case_id(s) missing: {_first(missing)}")
    if not lenient and extra:
        raise SubmissionError(f"submission: {len(extra)} case_id(s) not in the solution: {_first(extra)}")
    predictions = [by_id.get(c, AUTHENTIC) for c in solution[ID_COLUMN]]
    return predictions, len(missing), len(extra)


def _score_checked_row(label: str, prediction: object, shape: str) -> float:
    """score_row, with solution faults told apart from submission faults."""
    if label == AUTHENTIC:
        # The truth alone decides the score here, but a malformed prediction is still an error:
        # the same file would be rejected by the competition's parser on a forged row.
        parse_annotation(prediction)
        return float(prediction == AUTHENTIC)
    try:
        hw = parse_shape(shape)
        gt = decode_annotation(label, hw)
    except RLEError as e:
        raise SolutionError(f"solution: row with annotation {label!r:.60}: {e}") from None
    if prediction == AUTHENTIC:
        return 0.0
    return image_score(gt, decode_annotation(prediction, hw))


# ---------------------------------------------------------------- extras for evaluation


def pixel_scores(gt_union: list[np.ndarray], pred_union: list[np.ndarray]) -> dict:
    """Micro-averaged pixel precision, recall, F1 and IoU over images (union of instances each).

    Counts are summed over all images before dividing, so large images weigh more. An undefined
    ratio (nothing predicted, nothing true) is 0.0, the convention of the competition's F1.
    """
    if len(gt_union) != len(pred_union):
        raise ValueError(f"pixel_scores: {len(gt_union)} true masks but {len(pred_union)} predicted")
    tp = fp = fn = 0
    for index, (gt, pred) in enumerate(zip(gt_union, pred_union)):
        gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
        if gt.shape != pred.shape:
            raise ValueError(f"pixel_scores: image {index}: true mask {gt.shape} but predicted {pred.shape}")
        tp += int(np.count_nonzero(gt & pred))
        fp += int(np.count_nonzero(pred & ~gt))
        fn += int(np.count_nonzero(gt & ~pred))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {
        "pixel_precision": precision,
        "pixel_recall": recall,
        "pixel_f1": _ratio(2 * precision * recall, precision + recall),
        "pixel_iou": _ratio(tp, tp + fp + fn),
    }


def image_level_scores(is_forged: np.ndarray, image_score: np.ndarray, predicted_forged: np.ndarray) -> dict:
    """Image-level detection quality: precision, recall and F1 of calling an image forged, and
    ROC-AUC of `image_score` (the detector's forgery confidence per image, not the oF1).

    The AUC is None when only one class is present, where it is undefined.
    """
    truth = np.asarray(is_forged, dtype=bool)
    called = np.asarray(predicted_forged, dtype=bool)
    confidence = np.asarray(image_score, dtype=np.float64)
    if not (truth.shape == called.shape == confidence.shape) or truth.ndim != 1:
        raise ValueError(
            f"image_level_scores: is_forged {truth.shape}, image_score {confidence.shape} and "
            f"predicted_forged {called.shape} must be 1-D and of one length"
        )
    n_not_finite = int(np.count_nonzero(~np.isfinite(confidence)))
    if n_not_finite:
        raise ValueError(f"image_level_scores: {n_not_finite} image score(s) are NaN or infinite")
    tp = int(np.count_nonzero(truth & called))
    precision = _ratio(tp, int(called.sum()))
    recall = _ratio(tp, int(truth.sum()))
    return {
        "image_precision": precision,
        "image_recall": recall,
        "image_f1": _ratio(2 * precision * recall, precision + recall),
        "image_auc": image_auc(truth, confidence),
    }


def image_auc(is_forged: np.ndarray, image_score: np.ndarray) -> float | None:
    """ROC-AUC of `image_score` at telling forged images from authentic ones; None with one class only."""
    truth = np.asarray(is_forged, dtype=bool)
    if not 0 < truth.sum() < len(truth):
        return None
    return float(roc_auc_score(truth, np.asarray(image_score, dtype=np.float64)))


# ---------------------------------------------------------------- helpers


def _stack_flat(masks: list[np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray(m).reshape(-1) != 0 for m in masks])


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0.0 where the denominator is 0 (the published scorer's rule)."""
    out = np.zeros(np.shape(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else 0.0


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _first(items) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:SHOWN_IDS])
    return shown if len(items) <= SHOWN_IDS else f"{shown} and {len(items) - SHOWN_IDS} more"
