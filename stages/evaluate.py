"""Score every detector on the validation split; write metrics, per-image results and plot data.

    python -m stages.evaluate

`reports/metrics.json` carries the detector chosen by `infer.detector` at the top level, the
three detectors side by side under `detectors`, and the threshold calibration under
`calibration`, and (on data with a meta.csv, such as the synthetic set) every detector's results
by forgery kind and figure kind under `per_kind` (by forgery kind also the share of that kind's
instances found, and their matched F1). The numbers at the top use the thresholds in
params.yaml, never tuned ones.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from sklearn.metrics import precision_recall_curve
from tqdm import tqdm

from stages.common.config import load_params
from stages.common.detectors import DETECTORS, detect_with_evidence, fuse, keypoint_prediction
from stages.common.evaluation import (calibration_report, labelled_images, per_image_rows, per_instance_rows,
                                      summarize, sweep_fusion, sweep_thresholds)
from stages.common.infer import answer, fit_within
from stages.common.io import write_csv, write_json
from stages.common.copymove import detect_copy_move
from stages.common.kinds import describe_forgery_kind, per_kind_report, read_meta
from stages.common.model import load_model
from stages.common.runtime import apply_threads, resolve_device

MODEL = Path("models/model.pt")
METRICS = Path("reports/metrics.json")
EVAL_DIR = Path("reports/eval")


def main() -> None:
    params = load_params()
    apply_threads(params.train.threads)
    rows = pd.read_csv(Path(params.data.splits_dir) / "val.csv", dtype={"case_id": str})
    device = resolve_device(params.train.device)
    model, model_params = load_model(MODEL, device)

    images, dets, keypoints, work_images = [], [], [], []
    for item in tqdm(labelled_images(rows, Path(params.data.root), params.data.max_image_pixels),
                     total=len(rows), desc="evaluate", unit="img"):
        images.append(item)
        keypoints.append(detect_copy_move(item.image, params.keypoint))
        dets.append(detect_with_evidence(model, item.image, keypoints[-1], device, model_params.max_size))
        work_images.append(fit_within(item.image, model_params.max_size))

    truths = [im.truth for im in images]
    preds = {
        "maskrcnn": [answer(d, params.infer, im) for d, im in zip(dets, work_images)],
        "keypoint": [keypoint_prediction(k) for k in keypoints],
        "fusion": [fuse(d, k, params.infer, im) for d, k, im in zip(dets, keypoints, work_images)],
    }
    results = {name: summarize(truths, preds[name]) for name in DETECTORS}

    # The configured point is always on the grid, so the sweep plots pass through it.
    score_grid = sorted({*params.evaluate.sweep_score_thresholds, params.infer.score_threshold})
    image_grid = sorted({*params.evaluate.sweep_image_thresholds, params.infer.image_threshold})
    sweep = sweep_thresholds(dets, truths, work_images, params.infer, score_grid, image_grid)
    fusion_sweep = sweep_fusion(dets, keypoints, truths, work_images, params.infer,
                                sorted({*params.evaluate.sweep_fusion_thresholds, params.infer.fusion_score_threshold}))
    case_ids = [im.case_id for im in images]
    calibration = {"maskrcnn": calibration_report(sweep, case_ids), "fusion": calibration_report(fusion_sweep, case_ids)}
    write_sweeps(sweep, params.infer)

    headline = params.infer.detector
    per_image = pd.concat([per_image_rows(name, images, preds[name]) for name in DETECTORS], ignore_index=True)
    meta = read_meta(Path(params.data.root))
    per_kind = {} if meta is None else {"per_kind": {
        name: per_kind_report(per_image[per_image.detector == name], meta, per_instance_rows(name, images, preds[name]))
        for name in DETECTORS}}
    write_json(METRICS, {**results[headline], "detectors": results, "calibration": calibration, **per_kind})
    write_csv(EVAL_DIR / "per_image.csv", per_image)
    for name in DETECTORS:
        write_curves(name, truths, preds[name])
    print(f"oF1 ({headline}) {results[headline]['of1']:.4f} vs all-authentic floor "
          f"{results[headline]['all_authentic_of1']:.4f} on {len(images)} validation images")
    for name in DETECTORS:
        print(f"  {name:9s} oF1 {results[name]['of1']:.4f}")
    for name, report in calibration.items():
        print(f"  calibration ({name}): {report}")
    for kind, row in per_kind.get("per_kind", {}).get(headline, {}).get("forgery_kind", {}).items():
        print(f"  {kind:8s} {describe_forgery_kind(row)} ({headline})")


def write_sweeps(sweep: pd.DataFrame, infer) -> None:
    """Two slices of the grid through the configured point, each a line plot for `dvc plots`."""
    at_score = sweep[sweep.score_threshold == infer.score_threshold]
    at_image = sweep[sweep.image_threshold == infer.image_threshold]
    write_csv(EVAL_DIR / "sweep_image_threshold.csv", at_score[["image_threshold", "of1"]])
    write_csv(EVAL_DIR / "sweep_score_threshold.csv", at_image[["score_threshold", "of1"]])


def write_curves(name: str, truths, preds) -> None:
    actual = ["forged" if t else "authentic" for t in truths]
    predicted = ["authentic" if p.is_authentic else "forged" for p in preds]
    write_csv(EVAL_DIR / f"confusion_{name}.csv", pd.DataFrame({"actual": actual, "predicted": predicted}))
    y_true = [bool(t) for t in truths]
    if len(set(y_true)) == 2:
        precision, recall, _ = precision_recall_curve(y_true, [p.image_score for p in preds])
    else:
        precision, recall = [float("nan")], [float("nan")]
    write_csv(EVAL_DIR / f"precision_recall_{name}.csv", pd.DataFrame({"recall": recall, "precision": precision}))


if __name__ == "__main__":
    with torch.inference_mode():
        main()
