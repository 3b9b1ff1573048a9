"""Scoring detectors on a labelled split: oF1 and its companions, threshold sweeps, calibration.

Calibration is reported honestly: the headline numbers use the thresholds in params.yaml. The
best thresholds on the validation split are reported beside them, together with a two-fold
estimate (tune on one half of the cases, score the other) of what tuning is really worth.
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from .config import InferParams
from .detectors import fuse
from .infer import Detections, Prediction, answer
from .io import load_mask, read_image
from .masks import union
from .metric import image_level_scores, image_score, instance_matches, pixel_scores
from .rle import encode_instances


@dataclass
class LabelledImage:
    case_id: str
    image: np.ndarray  # RGB uint8 at the original size
    truth: list[np.ndarray]  # bool (H, W) instances; empty for an authentic image

    @property
    def is_forged(self) -> bool:
        return bool(self.truth)


def labelled_images(rows: pd.DataFrame, root: Path, max_pixels: int) -> Iterator[LabelledImage]:
    """Images and their true instances for the rows of a split, one at a time."""
    for row in rows.itertuples(index=False):
        image = read_image(root / row.image_path, max_pixels)
        truth = []
        if row.label == "forged":
            truth = [m.astype(bool) for m in load_mask(root / row.mask_path, image.shape[:2])]
        yield LabelledImage(case_id=str(row.case_id), image=image, truth=truth)


def summarize(truths: list[list[np.ndarray]], preds: list[Prediction]) -> dict:
    """oF1 with the all-authentic floor beside it, plus image- and pixel-level scores."""
    scores = np.array([image_score(t, p.instances) for t, p in zip(truths, preds)])
    forged = np.array([bool(t) for t in truths])
    called_forged = np.array([not p.is_authentic for p in preds])
    image_scores = np.array([p.image_score for p in preds])
    forged_idx = np.flatnonzero(forged)
    summary = {
        "of1": float(scores.mean()),
        "all_authentic_of1": float((~forged).mean()),
        "forged_of1": float(scores[forged].mean()) if forged.any() else None,
        "authentic_accuracy": float((~called_forged[~forged]).mean()) if (~forged).any() else None,
        "n_images": int(len(truths)),
        "n_forged": int(forged.sum()),
    }
    summary |= image_level_scores(forged, image_scores, called_forged)
    summary |= pixel_scores([union(truths[i]) for i in forged_idx],
                            [union(preds[i].instances, truths[i][0].shape) for i in forged_idx])
    return summary


def per_image_rows(detector: str, images: list[LabelledImage], preds: list[Prediction]) -> pd.DataFrame:
    return pd.DataFrame({
        "case_id": [im.case_id for im in images],
        "detector": detector,
        "label": ["forged" if im.is_forged else "authentic" for im in images],
        "predicted": ["authentic" if p.is_authentic else "forged" for p in preds],
        "image_score": [round(p.image_score, 6) for p in preds],
        "n_true": [len(im.truth) for im in images],
        "n_pred": [len(p.instances) for p in preds],
        "of1": [image_score(im.truth, p.instances) for im, p in zip(images, preds)],
        "annotation": [encode_instances(p.instances) for p in preds],
    })


def per_instance_rows(detector: str, images: list[LabelledImage], preds: list[Prediction]) -> pd.DataFrame:
    """One row per true instance of the forged images: its index in the mask, and the pixel F1,
    precision and recall of the prediction oF1 matches to it (metric.instance_matches; precision
    and recall are nan where that prediction does not overlap it)."""
    columns = ["case_id", "detector", "instance", "matched_f1", "matched_precision", "matched_recall"]
    matches = [(im.case_id, instance_matches(im.truth, p.instances)) for im, p in zip(images, preds) if im.is_forged]
    rows = [[case_id, detector, k, *(round(float(v), 6) for v in values)]
            for case_id, m in matches for k, values in enumerate(zip(m.f1, m.precision, m.recall))]
    return pd.DataFrame(rows, columns=columns)


def sweep_thresholds(dets: list[Detections], truths: list[list[np.ndarray]], work_images: list[np.ndarray],
                     infer: InferParams, score_thresholds, image_thresholds) -> pd.DataFrame:
    """oF1 for every (score_threshold, image_threshold) pair, re-using one model pass."""
    rows = []
    for st in score_thresholds:
        for it in image_thresholds:
            params = dataclasses.replace(infer, score_threshold=float(st), image_threshold=float(it))
            scores = [image_score(t, answer(d, params, im).instances) for d, t, im in zip(dets, truths, work_images)]
            rows.append({"score_threshold": float(st), "image_threshold": float(it), "of1": float(np.mean(scores)),
                         "per_image": scores})
    return pd.DataFrame(rows)


def sweep_fusion(dets: list[Detections], keypoints: list, truths: list[list[np.ndarray]],
                 work_images: list[np.ndarray], infer: InferParams, thresholds) -> pd.DataFrame:
    """oF1 of the fusion for every `fusion_score_threshold`, the model support a keypoint instance needs."""
    rows = []
    for t in thresholds:
        params = dataclasses.replace(infer, fusion_score_threshold=float(t))
        scores = [image_score(truth, fuse(d, k, params, im).instances)
                  for d, k, truth, im in zip(dets, keypoints, truths, work_images)]
        rows.append({"fusion_score_threshold": float(t), "of1": float(np.mean(scores)), "per_image": scores})
    return pd.DataFrame(rows)


def calibration_report(sweep: pd.DataFrame, case_ids: list[str]) -> dict:
    """Best thresholds on the whole split, and a two-fold held-out estimate of tuned oF1.

    `sweep` has one row per setting: the threshold columns, `of1` and `per_image` scores.
    """
    best = sweep.loc[sweep["of1"].idxmax()]
    knobs = [c for c in sweep.columns if c not in ("of1", "per_image")]
    half = np.array([zlib.crc32(c.encode()) % 2 for c in case_ids])
    per_image = np.stack(sweep["per_image"].to_numpy())  # (settings, images)
    held_out = []
    for fold in (0, 1):
        tune, test = half == fold, half != fold
        if not tune.any() or not test.any():
            continue
        chosen = per_image[:, tune].mean(axis=1).argmax()
        held_out.append(per_image[chosen, test].mean())
    return {
        **{f"best_{knob}": float(best[knob]) for knob in knobs},
        "best_of1_on_val": float(best["of1"]),
        "tuned_of1_held_out": float(np.mean(held_out)) if held_out else None,
    }
