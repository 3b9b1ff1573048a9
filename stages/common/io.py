"""Reading inputs defensively and writing outputs atomically.

Every stage reads images and masks through `read_image` and `load_mask`, so every stage agrees
on what counts as a usable file, and every stage writes through `atomic_path`, so a killed run
never leaves a half-written output behind. The one JPEG round trip (`jpeg_roundtrip`) is here too:
the generator, the JPEG benchmarks and the tests degrade figures through it, so they degrade alike.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class InputError(ValueError):
    """A file that cannot be used. `code` is a short status for the index, `str()` the reason."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code

    def __reduce__(self):  # picklable, so worker processes can report it
        return (InputError, (self.code, str(self)))


class OutputError(OSError):
    """An output could not be written; the message names the path and the cause."""


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temporary file keeps the destination's suffix, so libraries that pick a format from the
    name (matplotlib, PIL, torch) behave as they would on the real path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _output_error(path, e) from e
    tmp = Path(tmp)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _output_error(path, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> None:
    """Delete what an earlier run killed mid-write left beside `path` (each output has one writer)."""
    for stale in path.parent.glob(f".{path.stem}.tmp-*{path.suffix}"):
        stale.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, frame) -> None:
    """Write a pandas DataFrame without its index."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _output_error(path: Path, e: OSError) -> OutputError:
    if e.errno == errno.ENOSPC:
        why = "the disk is full"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "permission denied"
    else:
        why = e.strerror or str(e)
    return OutputError(e.errno, f"cannot write {path}: {why}")


# ---------------------------------------------------------------- reading


def visible_files(folder: str | Path) -> list[Path]:
    """The files directly in `folder`, sorted by name; an absent folder has none.

    Hidden files are left out, as `ls` leaves them out: `.DS_Store`, and the `._fig1.png` that
    macOS writes beside `fig1.png` on a shared drive, hold no figure.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (hidden files left out, see `visible_files`)."""
    return [p for p in visible_files(folder) if is_image_file(p)]


def count_pages(path: str | Path) -> int:
    """How many pages a TIFF holds; 1 for any other image, and for a file that cannot be opened,
    whose reading then fails with its own reason."""
    try:
        with Image.open(path) as im:
            return _pages(im)
    except Exception:  # PIL raises many types for undecodable data
        return 1


def _pages(im: Image.Image) -> int:
    # TIFF only: a camera's JPEG may carry a preview as a second frame (MPO), which is no page
    return getattr(im, "n_frames", 1) if im.format == "TIFF" else 1


def probe_image(path: str | Path, max_pixels: int, page: int | None = None) -> tuple[int, int, str]:
    """(width, height, mode) from the header alone, without decoding the pixels.

    `page` (from 1) picks one page of a multi-page TIFF. Without it such a file is refused rather
    than read at its first page, which would screen the rest of it for nothing without a word.
    """
    with _opened(Path(path), max_pixels, page) as im:
        return im.width, im.height, im.mode


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int, page: int | None) -> Iterator[Image.Image]:
    """The image at `page`, its header read and checked (probe_image's rules), its pixels not
    yet decoded: reading an image opens its file once."""
    label = page_label(path, page)
    if path.stat().st_size == 0:
        raise InputError("empty_file", f"{path.name}: zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError("too_large", f"{label}: {e}") from e
    except Exception as e:  # PIL raises many types for undecodable data
        raise InputError("unreadable", f"{label}: not a readable image ({type(e).__name__}: {e})") from e
    with im:
        _check_header(im, max_pixels, page, label)
        yield im


def _check_header(im: Image.Image, max_pixels: int, page: int | None, label: str) -> None:
    try:
        _turn_to_page(im, page, label)
    except InputError:
        raise
    except Exception as e:  # a page that cannot be reached
        raise InputError("unreadable", f"{label}: not a readable image ({type(e).__name__}: {e})") from e
    if im.width * im.height > max_pixels:
        raise InputError("too_large", f"{label}: {im.width}x{im.height} exceeds data.max_image_pixels={max_pixels}")
    if im.width < 2 or im.height < 2:
        raise InputError("too_small", f"{label}: {im.width}x{im.height} is too small to hold a forgery")


def page_label(path: Path, page: int | None) -> str:
    """How messages name an image file, or one page of it: `fig.tif`, `fig.tif page 2`."""
    return path.name if page is None else f"{path.name} page {page}"


def _turn_to_page(im: Image.Image, page: int | None, label: str) -> None:
    pages = _pages(im)
    if page is None and pages > 1:
        raise InputError("multi_page", f"{label}: a TIFF of {pages} pages; `stages.predict` screens each page "
                                       "as a figure of its own, other stages take one-page images")
    if page is not None:
        if not 1 <= page <= pages:
            raise InputError("no_page", f"{label}: the file has {pages} page(s)")
        im.seek(page - 1)


def read_image(path: str | Path, max_pixels: int, page: int | None = None) -> np.ndarray:
    """Decode any supported image, or one page of a multi-page TIFF, to an RGB uint8 array of
    shape (H, W, 3).

    Grayscale, palette, alpha and 16-bit images are all converted; alpha is dropped, since
    figures are judged as they are shown on a page. Raises InputError for anything unusable.
    """
    path = Path(path)
    with _opened(path, max_pixels, page) as im:
        try:
            im.load()
            return to_rgb8(im)
        except Exception as e:
            raise InputError("unreadable", f"{page_label(path, page)}: decoding failed ({type(e).__name__}: {e})") from e


def to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.array(im.convert("RGB"), dtype=np.uint8)  # a writable copy, unlike np.asarray


def jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """`pixels` (uint8, grey or RGB) as a reader decodes them from a JPEG of `quality`, 1 to 100.

    Pillow's libjpeg-turbo with its defaults (4:2:0 chroma); OpenCV's codec gives the same pixels
    at qualities 50 to 100 (tests/test_io.py).
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality}: must be 1 to 100")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded)


def load_mask(path: str | Path, image_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Load a competition mask as uint8 {0, 1} of shape (N, H, W).

    Accepts (H, W), (H, W, N) and (N, H, W). The instance axis is told apart from the spatial
    ones by the image size when it is known, else by being the smallest axis. Raises InputError
    with a status code for anything that cannot be trusted as ground truth.
    """
    path = Path(path)
    try:
        mask = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InputError("mask_unreadable", f"{path.name}: not a plain .npy array ({e})") from e
    except Exception as e:
        raise InputError("mask_unreadable", f"{path.name}: cannot load ({type(e).__name__}: {e})") from e
    if not isinstance(mask, np.ndarray) or mask.dtype.kind not in "biuf":
        raise InputError("mask_dtype", f"{path.name}: mask dtype {getattr(mask, 'dtype', '?')} is not numeric")
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise InputError("mask_values", f"{path.name}: mask contains NaN or infinity")
    mask = _channels_first(mask, image_hw, path.name)
    values = np.unique(mask)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(str(v) for v in values[:6])
        raise InputError("mask_values", f"{path.name}: mask values {{{shown}}} are not all 0 or 1")
    mask = mask.astype(np.uint8)
    if mask.shape[0] == 0 or not mask.any():
        raise InputError("mask_empty", f"{path.name}: mask has no forged pixel")
    return mask


def _channels_first(mask: np.ndarray, image_hw: tuple[int, int] | None, name: str) -> np.ndarray:
    if mask.ndim == 2:
        if image_hw is not None and mask.shape != tuple(image_hw):
            raise InputError("mask_shape", f"{name}: mask shape {mask.shape} does not match image {image_hw[0]}x{image_hw[1]}")
        return mask[None]
    if mask.ndim != 3:
        raise InputError("mask_shape", f"{name}: mask has {mask.ndim} dimensions, expected 2 or 3")
    if image_hw is not None:
        if tuple(mask.shape[1:]) == tuple(image_hw):
            return mask
        if tuple(mask.shape[:2]) == tuple(image_hw):
            return np.moveaxis(mask, 2, 0)
        raise InputError("mask_shape", f"{name}: mask shape {mask.shape} does not match image {image_hw[0]}x{image_hw[1]}")
    return mask if mask.shape[0] <= mask.shape[2] else np.moveaxis(mask, 2, 0)
