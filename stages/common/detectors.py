"""The three detectors behind `infer.detector`: maskrcnn, keypoint and fusion.

Fusion rule: a keypoint instance is a geometrically verified copy (a transform with RANSAC
inliers and a dense correlation), so it is precise but fires on some authentic repeats; a
Mask R-CNN detection is a learned opinion. Agreement lowers the bar: a keypoint instance is
kept when the model gives any detection over it a score of at least
`infer.fusion_score_threshold`, and the model's own instances are added where they pass the
model's usual thresholds and do not overlap a keypoint instance. With the threshold at 0 the
fusion is the plain union of the two detectors.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .config import InferParams, KeypointParams
from .infer import Detections, Prediction, answer, detect
from .copymove import detect_copy_move
from .keypoint import CopyMoveInstance, evidence_map, image_score as keypoint_image_score
from .masks import overlap
from .model import evidence_channels

DETECTORS = ("maskrcnn", "keypoint", "fusion")
SUPPORT_OVERLAP = 0.1  # share of the smaller mask that a detection must cover to support a keypoint instance


def needs_model(detector: str) -> bool:
    return detector != "keypoint"


def keypoint_prediction(instances: list[CopyMoveInstance]) -> Prediction:
    return Prediction(instances=[i.mask for i in instances], image_score=keypoint_image_score(instances),
                      explanations=list(instances))


def fuse(dets: Detections, kp_instances: list[CopyMoveInstance], params: InferParams,
         image: np.ndarray | None = None) -> Prediction:
    confirmed = [kp for kp in kp_instances if model_support(dets, kp.mask, params) >= params.fusion_score_threshold]
    model_only = [m for m in answer(dets, params, image).instances
                  if not any(overlap(m, kp.mask) > SUPPORT_OVERLAP for kp in confirmed)]
    explained = ([(kp.mask, kp) for kp in confirmed] + [(m, None) for m in model_only])[: params.max_instances]
    best_model = float(dets.scores[0]) if len(dets.scores) else 0.0
    return Prediction(instances=[mask for mask, _ in explained],
                      image_score=max(best_model, keypoint_image_score(confirmed)),
                      explanations=[why for _, why in explained])


def model_support(dets: Detections, mask: np.ndarray, params: InferParams) -> float:
    """Best score among the model's detections that cover part of `mask`; 0 when none does."""
    if len(dets.scores) == 0:
        return 0.0
    work = _downscale(mask, dets.masks.shape[1:])
    best = 0.0
    for score, prob in zip(dets.scores, dets.masks):
        if score > best and overlap(prob.astype(np.float32) >= params.mask_threshold, work) > SUPPORT_OVERLAP:
            best = float(score)
    return best


def _downscale(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(hw):
        return mask
    return cv2.resize(mask.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def predict_image(image: np.ndarray, detector: str, model, device: torch.device, infer: InferParams,
                  keypoint: KeypointParams, max_side: int) -> Prediction:
    """One image through the chosen detector; the keypoint detector runs at most once."""
    return predict_with_evidence(image, detector, model, device, infer, keypoint, max_side)[0]


def predict_with_evidence(image: np.ndarray, detector: str, model, device: torch.device, infer: InferParams,
                          keypoint: KeypointParams, max_side: int) -> tuple[Prediction, list[CopyMoveInstance]]:
    """`predict_image`, with the keypoint instances it saw: an answer's instance that is one of
    their masks (the same array) is explained by that instance's transforms."""
    instances = detect_copy_move(image, keypoint) if detector != "maskrcnn" or evidence_channels(model) else None
    if detector == "keypoint":
        return keypoint_prediction(instances), instances
    dets = detect_with_evidence(model, image, instances, device, max_side)
    if detector == "maskrcnn":
        return answer(dets, infer, image), instances or []
    return fuse(dets, instances, infer, image), instances


def detect_with_evidence(model, image: np.ndarray, instances: list[CopyMoveInstance] | None,
                         device: torch.device, max_side: int) -> Detections:
    """The model's detections on one image, fed the keypoint evidence when the model takes it."""
    evidence = [evidence_map(instances, image.shape[:2])] if evidence_channels(model) else None
    return detect(model, [image], device, max_side, evidence)[0]
