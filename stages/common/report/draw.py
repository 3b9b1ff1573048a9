"""Overlays and thumbnails, drawn with OpenCV.

Every event has its own colour. The source has a solid outline and its copies a dashed one,
each labelled ("1 source", "1a copy"), with an arrow from the source to each copy; an instance
of the learned model has a solid outline and the label "2 model". Small figures are enlarged
(pixel-exact) so that outlines and labels stay legible; large ones are reduced for display.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .events import EventView

# Matplotlib's tab10, so that a colour reads the same on the overlay and in the page's legend.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MIN_OVERLAY_SIDE = 800  # long side small figures are enlarged to, at least (by a whole factor)
MAX_OVERLAY_SIDE = 1600  # long side large figures are reduced to
THUMB_SIDE = 200
FILL_ALPHA = 0.22
DASH_ON, DASH_OFF = 10, 7  # contour points drawn and skipped along a copy's dashed outline


def colour_of(number: int) -> str:
    return PALETTE[(number - 1) % len(PALETTE)]


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def overlay_scale(height: int, width: int) -> float:
    long_side = max(height, width)
    if long_side < MIN_OVERLAY_SIDE:
        return float(min(math.ceil(MIN_OVERLAY_SIDE / long_side), MAX_OVERLAY_SIDE // long_side))
    return min(1.0, MAX_OVERLAY_SIDE / long_side)


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)


def draw_overlay(image: np.ndarray, events: list[EventView]) -> np.ndarray:
    """The figure (RGB uint8) with every event drawn on it, at the display scale."""
    scale = overlay_scale(*image.shape[:2])
    canvas = resize(image, scale).copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 320))
    for event in events:
        colour = rgb(colour_of(event.number))
        tint(canvas, resize_mask(event.mask, canvas.shape[:2]), colour)
    for event in events:
        colour = rgb(colour_of(event.number))
        source = resize_mask(event.source, canvas.shape[:2])
        outline(canvas, source, colour, thickness, dashed=False)
        label(canvas, source, f"{event.number} {'source' if event.copies else 'model'}", colour, thickness)
        for copy in event.copies:
            copy_mask = resize_mask(copy.mask, canvas.shape[:2])
            outline(canvas, copy_mask, colour, thickness, dashed=True)
            start = tuple(round(v * scale) for v in copy.source_xy)
            end = tuple(round(v * scale) for v in copy.copy_xy)
            cv2.arrowedLine(canvas, start, end, colour, max(2, thickness // 2), cv2.LINE_AA, tipLength=0.04)
            if copy_mask.any():
                label(canvas, copy_mask, f"{event.number}{copy.letter} copy", colour, thickness)
    return canvas


def thumbnail(image: np.ndarray) -> np.ndarray:
    return resize(image, min(1.0, THUMB_SIDE / max(image.shape[:2])))


def resize_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(hw):
        return mask
    return cv2.resize(mask.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def tint(canvas: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    canvas[mask] = (canvas[mask] * (1 - FILL_ALPHA) + np.array(colour) * FILL_ALPHA).astype(np.uint8)


def outline(canvas: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], thickness: int,
            dashed: bool) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not dashed:
        cv2.drawContours(canvas, contours, -1, colour, thickness, cv2.LINE_AA)
        return
    for contour in contours:
        for start in range(0, len(contour), DASH_ON + DASH_OFF):
            dash = contour[start:start + DASH_ON]
            if len(dash) > 1:
                cv2.polylines(canvas, [dash], False, colour, thickness, cv2.LINE_AA)


def label(canvas: np.ndarray, mask: np.ndarray, text: str, colour: tuple[int, int, int], thickness: int) -> None:
    """`text` in white on the event's colour, just above the region (below it at the top edge)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.12 * thickness + 0.2
    (text_w, text_h), baseline = cv2.getTextSize(text, font, font_scale, 1)
    pad = 2
    height, width = canvas.shape[:2]
    x = int(min(max(xs.min(), 0), max(0, width - text_w - 2 * pad)))
    y = int(ys.min() - thickness - pad)
    if y - text_h - pad < 0:
        y = int(min(ys.max() + thickness + text_h + pad, height - baseline - pad))
    cv2.rectangle(canvas, (x, y - text_h - pad), (x + text_w + 2 * pad, y + baseline), colour, -1)
    cv2.putText(canvas, text, (x + pad, y), font, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
