"""Figures for people: mask overlays and atomic saving, shared by analyze and plot."""
from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # stages run headless, in CI and under `dvc repro`
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import atomic_path  # noqa: E402

# One colour per instance, so source-plus-copies of one event share a colour.
INSTANCE_COLOURS = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                             (145, 30, 180), (70, 240, 240), (240, 50, 230)], dtype=np.float32)


def overlay(image: np.ndarray, instances, alpha: float = 0.5) -> np.ndarray:
    """RGB image with each instance mask tinted in its own colour and outlined."""
    out = image.astype(np.float32).copy()
    for k, mask in enumerate(instances):
        mask = np.asarray(mask, bool)
        colour = INSTANCE_COLOURS[k % len(INSTANCE_COLOURS)]
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour.tolist(), max(1, round(max(image.shape[:2]) / 300)))
    return out.clip(0, 255).astype(np.uint8)


def save_figure(fig, path: str | Path, dpi: int = 100) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
