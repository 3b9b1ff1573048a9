"""From Mask R-CNN outputs to competition answers.

The metric wants, per image, either `authentic` or one mask per copy-move event (the source
plus all its copies). A raw Mask R-CNN emits dozens of overlapping scored masks, and scoring
those as they come can lose to predicting `authentic` everywhere. This module filters them,
merges duplicates, groups detections of one event into one instance, caps the count, and
makes the authentic call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from .config import InferParams
from .dataset import image_to_tensor
from .masks import merge_overlapping, union
from .model import evidence_channels

GROUP_PATCH = 32  # side of the patches compared when grouping detections by content


@dataclass
class Prediction:
    """One image's answer: instance masks at the original size, and how sure the model is."""

    instances: list[np.ndarray] = field(default_factory=list)  # bool (H, W), one per event
    image_score: float = 0.0  # best detection score; 0 when nothing was detected
    # Per instance, what found it: the keypoint detector's CopyMoveInstance (source, copies and
    # transforms), or None for an instance of the learned model, which estimates no transform.
    # Empty when every instance is the model's.
    explanations: list = field(default_factory=list)

    @property
    def is_authentic(self) -> bool:
        return not self.instances


@dataclass
class Detections:
    """Raw detections of one image, kept at the working size so that sweeps can re-threshold them."""

    scores: np.ndarray  # (K,) float32, descending
    masks: np.ndarray  # (K, h, w) float16 probabilities at the working size
    image_hw: tuple[int, int]  # the original size, which the answer must match exactly


# ---------------------------------------------------------------- running the model


def working_scale(image_hw: tuple[int, int], max_side: int) -> float:
    """Scale that brings the long side within `max_side`; never upscale."""
    return min(1.0, max_side / max(image_hw))


def fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """The image downscaled so that its long side is at most `max_side`; never upscaled."""
    scale = working_scale(image.shape[:2], max_side)
    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def to_model_input(image: np.ndarray, max_side: int, evidence: np.ndarray | None = None) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (3, h, w) in [0, 1], downscaled so its long side <= max_side.

    Mask R-CNN resizes internally anyway, but it pastes its masks back at the input size:
    feeding a 3888x3888 figure would paste every mask at 15 megapixels. Downscaling first keeps
    memory bounded; `event_mask` restores the exact original size at the end.

    An evidence map (float (H, W) in [0, 1]) becomes a fourth channel, downscaled alike.
    """
    if evidence is not None and evidence.shape != image.shape[:2]:
        raise ValueError(f"evidence map {evidence.shape} does not match the image {image.shape[:2]}")
    scaled_evidence = None if evidence is None else fit_within(evidence.astype(np.float32), max_side)
    return image_to_tensor(fit_within(image, max_side), scaled_evidence)


@torch.inference_mode()
def detect(model, images: list[np.ndarray], device: torch.device, max_side: int,
           evidence: list[np.ndarray] | None = None,
           min_score: float = 0.05, max_detections: int = 20) -> list[Detections]:
    """Run the model in eval mode on RGB images; keep detections above `min_score`.

    A model built with `model.evidence` other than none needs one evidence map per image.
    """
    wanted = evidence_channels(model)
    if bool(wanted) != (evidence is not None):
        raise ValueError(f"the model takes {wanted} evidence channel(s); "
                         f"got {'none' if evidence is None else 'evidence maps'}")
    model.eval()
    inputs = [to_model_input(im, max_side, ev).to(device)
              for im, ev in zip(images, evidence if evidence is not None else [None] * len(images))]
    outputs = model(inputs)
    return [detections_from_output(out, im.shape[:2], min_score, max_detections) for out, im in zip(outputs, images)]


def detections_from_output(output: dict, image_hw: tuple[int, int], min_score: float = 0.05,
                           max_detections: int = 20) -> Detections:
    scores = output["scores"].detach().float().cpu().numpy()
    keep = np.flatnonzero(scores >= min_score)[:max_detections]
    masks = output["masks"][keep, 0].detach().float().cpu().numpy().astype(np.float16)
    return Detections(scores=scores[keep].astype(np.float32), masks=masks, image_hw=tuple(image_hw))


# ---------------------------------------------------------------- detections -> answer


def answer(dets: Detections, params: InferParams, image: np.ndarray | None = None) -> Prediction:
    """Threshold, merge, group and cap detections; call the image authentic or forged."""
    best = float(dets.scores[0]) if len(dets.scores) else 0.0
    if best < max(params.image_threshold, params.score_threshold):
        return Prediction(instances=[], image_score=best)

    probs = dets.masks.astype(np.float32)
    masks = probs >= params.mask_threshold
    scale = dets.masks.shape[1] / dets.image_hw[0]
    big_enough = masks.sum(axis=(1, 2)) >= max(1.0, params.min_area * scale * scale)
    keep = np.flatnonzero((dets.scores >= params.score_threshold) & big_enough)
    if len(keep) == 0:
        return Prediction(instances=[], image_score=best)

    groups = merge_overlapping([masks[i] for i in keep], params.merge_iou)
    if image is not None and params.group_ncc < 1.0:
        work = _resize_image(image, dets.masks.shape[1:])
        groups = group_by_content(groups, [masks[i] for i in keep], work, params.group_ncc)
    # Groups hold positions in `keep`, which is in descending score order, so min() is the best.
    events = sorted(groups, key=min)[: params.max_instances]
    instances = [event_mask(probs[keep[g]], dets.image_hw, params.mask_threshold) for g in events]
    return Prediction(instances=[m for m in instances if m.any()], image_score=best)


def event_mask(probs: np.ndarray, image_hw: tuple[int, int], threshold: float) -> np.ndarray:
    """Union of an event's detections, upsampled as probabilities so edges stay smooth."""
    prob = probs.max(axis=0)
    if prob.shape != tuple(image_hw):
        prob = cv2.resize(prob, (image_hw[1], image_hw[0]), interpolation=cv2.INTER_LINEAR)
    return prob >= threshold


def group_by_content(groups: list[list[int]], masks: list[np.ndarray], image: np.ndarray,
                     min_ncc: float) -> list[list[int]]:
    """Join groups whose pixels match: two detections of one copied object are one event.

    Each group's region is cut out, resized to a small patch and compared by zero-mean
    normalised cross-correlation, also against flipped and rotated versions, since copies are
    often flipped or turned by 90 degrees.
    """
    if len(groups) < 2:
        return groups
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    patches = [_region_patch(gray, union([masks[i] for i in g])) for g in groups]
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            if patches[a] is not None and patches[b] is not None and best_ncc(patches[a], patches[b]) >= min_ncc:
                parent[root(b)] = root(a)
    merged: dict[int, list[int]] = {}
    for gi, g in enumerate(groups):
        merged.setdefault(root(gi), []).extend(g)
    return list(merged.values())


def _region_patch(gray: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The masked region on a flat background of its own mean, so only the object is compared."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    box = np.s_[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    crop, inside = gray[box].copy(), mask[box]
    crop[~inside] = crop[inside].mean()
    return cv2.resize(crop, (GROUP_PATCH, GROUP_PATCH), interpolation=cv2.INTER_AREA)


def best_ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Highest zero-mean NCC of `a` against `b` under the 8 flips and quarter turns."""
    variants = [np.rot90(v, k) for v in (b, b[:, ::-1]) for k in range(4)]
    return max(_ncc(a, v) for v in variants)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0


def _resize_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == tuple(hw):
        return image
    return cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
