"""What a flagged figure's evidence says, in regions and in words.

The keypoint detector returns each copy-move event as one mask (the source and every copy) with
one transform per verified copy, source -> copy. This module splits the mask back into the
source and its copies, by where each transform sends it, and puts each transform into words.
Which of two identical regions was the original cannot be told from the pixels; "source" is
the side the detector's transform starts from.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..infer import Prediction
from ..masks import union

TOLERANCE_PX = 3  # dense masks are not pixel-exact: a warped mask this near counts as landing on one
MIN_SHIFT_PX = 1  # shifts below this are not mentioned
MIN_ROTATION_DEG = 1.0
MIN_SCALE_CHANGE = 0.03
LEARNED = "found by the learned model (Mask R-CNN); no transform estimated"


@dataclass(frozen=True)
class CopyView:
    letter: str  # a, b, c ... in the order of the detector's transforms
    mask: np.ndarray  # bool (H, W): the pixels of this copy; may be empty where it overlaps its source
    source_xy: tuple[float, float]  # where the copied content comes from (centroid), for the arrow
    copy_xy: tuple[float, float]  # where it went
    words: str  # "copied 212 px right and 40 px down, rotated 90° clockwise, mirrored left to right"


@dataclass(frozen=True)
class EventView:
    number: int  # 1-based, best first
    mask: np.ndarray  # bool (H, W): the whole event
    source: np.ndarray  # bool (H, W): the source (the whole mask for a learned-model instance)
    copies: tuple[CopyView, ...]  # empty for a learned-model instance
    found_by: str  # "keypoint" or "maskrcnn"
    summary: str  # one line for people: who found it and how sure


def event_views(prediction: Prediction) -> list[EventView]:
    explanations = prediction.explanations or [None] * len(prediction.instances)
    return [event_view(number, mask, why)
            for number, (mask, why) in enumerate(zip(prediction.instances, explanations), start=1)]


def event_view(number: int, mask: np.ndarray, explanation) -> EventView:
    mask = mask.astype(bool)
    if explanation is None:
        return EventView(number, mask, mask, (), "maskrcnn", LEARNED)
    copies = [copy_view(letter_of(k), mask, transform) for k, transform in enumerate(explanation.transforms)]
    copied = union([c.mask for c in copies], mask.shape)
    source = mask & ~copied
    summary = (f"found by keypoint matching: {len(copies)} verified cop{'y' if len(copies) == 1 else 'ies'}, "
               f"{explanation.n_inliers} matched keypoints, score {explanation.score:.2f}")
    return EventView(number, mask, source, tuple(copies), "keypoint", summary)


def copy_view(letter: str, mask: np.ndarray, transform: np.ndarray) -> CopyView:
    """The copy that `transform` (source -> copy) makes inside `mask`, and the transform in words."""
    forward = _near(_warp(mask, transform))  # where the mask's content lands
    backward = _near(_warp(mask, cv2.invertAffineTransform(transform)))  # where content comes from
    copy = mask & forward & ~backward
    origin = _warp(copy, cv2.invertAffineTransform(transform)) if copy.any() else mask
    source_xy = centroid(origin)
    copy_xy = tuple(float(v) for v in transform @ np.array([*source_xy, 1.0]))
    return CopyView(letter, copy, source_xy, copy_xy, describe_transform(transform, source_xy))


def describe_transform(transform: np.ndarray, anchor_xy: tuple[float, float]) -> str:
    """A 2x3 source -> copy map in words, the shift measured at `anchor_xy` (the source's centre).

    The linear part is read as: mirror left to right (if its determinant is negative), then scale,
    then rotate. Image y points down, so a positive angle turns clockwise on screen.
    """
    linear = np.asarray(transform, float)[:, :2]
    mirrored = np.linalg.det(linear) < 0
    if mirrored:
        linear = linear @ np.diag([-1.0, 1.0])
    scale = math.sqrt(abs(np.linalg.det(linear)))
    angle = math.degrees(math.atan2(linear[1, 0], linear[0, 0]))
    dx, dy = np.asarray(transform, float) @ np.array([*anchor_xy, 1.0]) - np.array(anchor_xy)
    parts = [shift_words(dx, dy)]
    if mirrored and abs(abs(angle) - 180.0) < MIN_ROTATION_DEG:
        parts.append("mirrored top to bottom")  # a left-right mirror turned by 180 degrees
    else:
        if abs(angle) >= MIN_ROTATION_DEG:
            parts.append(f"rotated {abs(angle):.0f}° {'clockwise' if angle > 0 else 'counter-clockwise'}")
        if mirrored:
            parts.append("mirrored left to right")
    if abs(scale - 1.0) >= MIN_SCALE_CHANGE:
        parts.append(f"scaled to {scale * 100:.0f} %")
    return ", ".join(parts)


def shift_words(dx: float, dy: float) -> str:
    steps = [f"{abs(d):.0f} px {word}" for d, word in ((dx, "right" if dx > 0 else "left"),
                                                      (dy, "down" if dy > 0 else "up")) if abs(d) >= MIN_SHIFT_PX]
    return "copied " + " and ".join(steps) if steps else "copied in place"


def letter_of(k: int) -> str:
    return chr(ord("a") + k) if k < 26 else f"z{k - 25}"


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (mask.shape[1] / 2.0, mask.shape[0] / 2.0)
    return (float(xs.mean()), float(ys.mean()))


def _warp(mask: np.ndarray, transform: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    warped = cv2.warpAffine(mask.astype(np.uint8), np.asarray(transform, np.float64), (width, height),
                            flags=cv2.INTER_NEAREST, borderValue=0)
    return warped.astype(bool)


def _near(mask: np.ndarray) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * TOLERANCE_PX + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
