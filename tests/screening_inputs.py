"""Figures and PDFs with known copy-move forgeries, for the report, PDF and command-line tests."""
from __future__ import annotations

from pathlib import Path

import img2pdf
import numpy as np
from PIL import Image

from test_keypoint import textured_background

# A clear copy-move: an 80x80 px square moved 200 px right and 140 px down and turned a quarter
# turn, which the keypoint detector finds with the shipped params.
SOURCE_BOX = (40, 50, 80)  # top, left, side
COPY_TOP_LEFT = (180, 250)


def forged_figure(seed: int = 3) -> np.ndarray:
    image = np.stack([textured_background(np.random.default_rng(seed), 320, 420)] * 3, axis=-1)
    top, left, side = SOURCE_BOX
    patch = image[top:top + side, left:left + side].copy()
    y, x = COPY_TOP_LEFT
    image[y:y + side, x:x + side] = np.rot90(patch)  # counter-clockwise on screen
    return image


def authentic_figure(seed: int = 4) -> np.ndarray:
    return np.stack([textured_background(np.random.default_rng(seed), 300, 400)] * 3, axis=-1)


def save_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def figures_pdf(path: Path, images: list[np.ndarray]) -> Path:
    """A PDF with one lossless image per page, made with img2pdf from PNGs."""
    pngs = [save_png(path.parent / f".{path.stem}-{k}.png", image) for k, image in enumerate(images)]
    path.write_bytes(img2pdf.convert([str(p) for p in pngs]))
    for png in pngs:
        png.unlink()
    return path
