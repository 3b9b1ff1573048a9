"""Rebuild `glyphs.npz`, the bitmap font every synthetic label is drawn with.

    python -m stages.common.synth.build_glyphs

The glyphs are OpenCV's Hershey strokes, rasterised once at a large size without anti-aliasing
and committed. Drawing from this fixed atlas, not from OpenCV at run time, keeps the synthetic
figures byte-identical across OpenCV releases, whose text rendering changes between versions.
"""
from pathlib import Path

import cv2
import numpy as np

from .text import ATLAS, CAP_HEIGHT, CHARS

FONTS = {"regular": (cv2.FONT_HERSHEY_SIMPLEX, 3), "bold": (cv2.FONT_HERSHEY_DUPLEX, 5)}


def rasterise(font: int, thickness: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(bitmaps (n, H, W) bool, advances (n,), baseline row) of every character at CAP_HEIGHT."""
    scale = cv2.getFontScaleFromHeight(font, CAP_HEIGHT, thickness)
    (_, ascent), descent = cv2.getTextSize("Hg", font, scale, thickness)
    pad = thickness + 2
    height, baseline = ascent + descent + 2 * pad, ascent + pad
    advances = [max(cv2.getTextSize(c, font, scale, thickness)[0][0], 1) for c in CHARS]
    bitmaps = np.zeros((len(CHARS), height, max(advances) + 2 * pad), np.uint8)
    for i, char in enumerate(CHARS):
        cv2.putText(bitmaps[i], char, (0, baseline), font, scale, 1, thickness, cv2.LINE_8)
    return bitmaps.astype(bool), np.array(advances, np.int16), baseline


def main() -> None:
    arrays = {}
    for style, (font, thickness) in FONTS.items():
        bitmaps, advances, baseline = rasterise(font, thickness)
        arrays |= {f"{style}_bits": np.packbits(bitmaps, axis=-1), f"{style}_width": np.array(bitmaps.shape[-1]),
                   f"{style}_advances": advances, f"{style}_baseline": np.array(baseline)}
    np.savez_compressed(ATLAS, **arrays)
    print(f"wrote {ATLAS} ({Path(ATLAS).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
