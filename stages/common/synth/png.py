"""A minimal PNG encoder on Python's own zlib, with fixed settings.

The bytes of a PNG depend on its encoder: libpng and zlib inside OpenCV or Pillow change with
their releases, and DVC hashes bytes. Writing the few chunks here, with every row filtered the
same way and one fixed compression level, makes the file a function of its pixels alone.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

COLOUR_TYPES = {1: 0, 3: 2, 4: 6}   # channels -> PNG colour type: grey, RGB, RGBA
COMPRESSION = 6


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W), (H, W, 3) or (H, W, 4) array; the Sub filter on every row."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"encode_png takes uint8 (H, W[, C]) pixels, got {pixels.dtype} {pixels.shape}")
    rows = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    h, w, channels = rows.shape
    if channels not in COLOUR_TYPES:
        raise ValueError(f"encode_png takes 1, 3 or 4 channels, got {channels}")
    flat = rows.reshape(h, w * channels)
    sub = flat.copy()
    sub[:, channels:] -= flat[:, :-channels]             # uint8 arithmetic wraps modulo 256, as PNG's Sub wants
    scanlines = np.hstack([np.ones((h, 1), np.uint8), sub])    # filter type 1 (Sub) before each row
    header = struct.pack(">IIBBBBB", w, h, 8, COLOUR_TYPES[channels], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(scanlines.tobytes(), COMPRESSION)) + _chunk(b"IEND", b""))


def write_png(path: Path, pixels: np.ndarray) -> None:
    Path(path).write_bytes(encode_png(pixels))
