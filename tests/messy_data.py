"""Small data roots in the competition layout, built on the fly for tests.

`make_messy_root` holds one file for every fault real data has shown (and a few it might), with
the status the index must give it. `make_competition_root` is a clean root laid out exactly as
DESIGN.md describes the real data, with the mask statistics the index must report.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

# Messy roots are indexed with this limit, so that one small image can stand for a huge one.
MESSY_MAX_PIXELS = 64 * 64
MESSY_SIDE = (24, 32)  # (H, W) of most messy images


def make_messy_root(root: Path) -> dict[str, str]:
    """Write a messy data root under `root`; return {file relative to root: expected status}.

    A mask that belongs to a forged image maps to the status of that image's row. Files under
    test_images/ are not indexed and are not in the mapping.
    """
    root = Path(root)
    expected: dict[str, str] = {}
    rng = np.random.default_rng(0)
    h, w = MESSY_SIDE

    def image(rel: str, status: str, array: np.ndarray | None = None, fmt: str = "PNG") -> None:
        array = texture(rng, h, w) if array is None else array
        save_image(root / rel, array, fmt)
        expected[rel] = status

    def raw(rel: str, status: str, data: bytes) -> None:
        write_bytes(root / rel, data)
        expected[rel] = status

    def forged(case_id: str, status: str, mask: np.ndarray | bytes | None, folder: str = "train") -> None:
        images, masks = ("train_images/forged", "train_masks") if folder == "train" else ("supplemental_images", "supplemental_masks")
        image(f"{images}/{case_id}.png", status)
        if mask is not None:
            write_mask(root / masks / f"{case_id}.npy", mask)
            expected[f"{masks}/{case_id}.npy"] = status

    good = instance_mask(h, w, n_instances=2)

    image("train_images/authentic/twin.png", "ok")
    image("train_images/authentic/rgba.png", "ok", texture(rng, h, w, channels=4))
    image("train_images/authentic/gray.png", "ok", texture(rng, h, w, channels=1))
    image("train_images/authentic/gray16.png", "ok", (texture(rng, h, w, channels=1).astype(np.uint16) * 257))
    image("train_images/authentic/jpeg_named_png.png", "ok", fmt="JPEG")
    image("train_images/authentic/huge.png", "too_large", texture(rng, 65, 64))
    image("train_images/authentic/tiny.png", "too_small", texture(rng, 1, 5))
    raw("train_images/authentic/empty.png", "empty_file", b"")
    raw("train_images/authentic/text_named_png.png", "unreadable", b"this is not a picture\n")
    raw("train_images/authentic/truncated.png", "unreadable", truncated_png(rng, h, w))
    raw("train_images/authentic/plate.tif", "multi_page", tiff_pages([texture(rng, h, w), texture(rng, h, w)]))
    raw("train_images/authentic/notes.txt", "not_an_image", b"case notes\n")
    (root / "train_images/authentic/checkpoints").mkdir(parents=True)
    expected["train_images/authentic/checkpoints"] = "unexpected_folder"
    (root / "train_images/authentic/dangling.png").symlink_to(root / "nowhere.png")
    expected["train_images/authentic/dangling.png"] = "unreadable"

    forged("twin", "ok", good)
    forged("hw_mask", "ok", good.any(axis=0).astype(np.uint8))
    forged("hwn_mask", "ok", np.moveaxis(good, 0, 2).copy())
    forged("float_mask", "ok", good.astype(np.float32))
    forged("bool_mask", "ok", good.astype(bool))
    forged("no_mask", "missing_mask", None)
    forged("mask_mismatch", "mask_shape", instance_mask(h + 4, w, n_instances=2))
    forged("mask_2d_mismatch", "mask_shape", instance_mask(h, w + 4, n_instances=1)[0])
    forged("mask_transposed", "mask_shape", np.ascontiguousarray(good.transpose(0, 2, 1)))
    forged("values_02", "mask_values", good * 2)
    forged("nan_mask", "mask_values", np.where(good == 1, np.nan, 0.0))
    forged("zero_mask", "mask_empty", np.zeros_like(good))
    forged("no_instances", "mask_empty", np.zeros((0, h, w), np.uint8))
    forged("pickled", "mask_unreadable", pickled_object_mask(good))
    forged("garbage_mask", "mask_unreadable", b"\x93NUMPY garbage that is no array")
    forged("empty_mask_file", "mask_unreadable", b"")
    forged("string_mask", "mask_dtype", np.array([["a"] * w] * h))
    raw("train_images/forged/broken_with_mask.png", "unreadable", truncated_png(rng, h, w))
    write_mask(root / "train_masks/broken_with_mask.npy", good)
    expected["train_masks/broken_with_mask.npy"] = "unreadable"
    image("train_images/forged/dup.png", "duplicate_case_id")
    image("train_images/forged/dup.jpg", "duplicate_case_id", fmt="JPEG")
    write_mask(root / "train_masks/dup.npy", good)
    expected["train_masks/dup.npy"] = "duplicate_case_id"

    write_mask(root / "train_masks/orphan.npy", good)
    expected["train_masks/orphan.npy"] = "orphan_mask"
    raw("train_masks/readme.md", "not_a_mask", b"# masks\n")

    forged("supp", "ok", good, folder="supplemental")
    forged("supp_no_mask", "missing_mask", None, folder="supplemental")
    write_mask(root / "supplemental_masks/supp_orphan.npy", good)
    expected["supplemental_masks/supp_orphan.npy"] = "orphan_mask"

    save_image(root / "test_images/unindexed.png", texture(rng, h, w), "PNG")
    return expected


def make_competition_root(root: Path, n_cases: int = 8, seed: int = 0) -> dict[str, tuple[int, float]]:
    """A clean root as DESIGN.md describes the real data.

    Every case has an authentic image; every other case also has a forged twin under the same
    case_id with a uint8 (N, H, W) mask. Modes cycle through RGB, RGBA and L. Returns
    {image path relative to root: (n_instances, forged_fraction)} for every image.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    truth: dict[str, tuple[int, float]] = {}
    channels = (3, 4, 1)
    for i in range(n_cases):
        case_id = str(10001 + i)
        h, w = int(rng.integers(40, 72)), int(rng.integers(40, 72))
        pixels = texture(rng, h, w, channels=channels[i % 3])
        save_image(root / f"train_images/authentic/{case_id}.png", pixels, "PNG")
        truth[f"train_images/authentic/{case_id}.png"] = (0, 0.0)
        if i % 2:
            mask = instance_mask(h, w, n_instances=1 + i % 3)
            save_image(root / f"train_images/forged/{case_id}.png", pixels, "PNG")
            write_mask(root / f"train_masks/{case_id}.npy", mask)
            truth[f"train_images/forged/{case_id}.png"] = (mask.shape[0], float(mask.any(axis=0).mean()))
    return truth


def texture(rng: np.random.Generator, h: int, w: int, channels: int = 3) -> np.ndarray:
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def instance_mask(h: int, w: int, n_instances: int) -> np.ndarray:
    """uint8 (N, H, W): instance k is two separate squares (a source and its copy) in row band k."""
    mask = np.zeros((n_instances, h, w), np.uint8)
    side = max(2, min(h // (2 * n_instances + 1), w // 5))
    for k in range(n_instances):
        top = (2 * k + 1) * side
        mask[k, top : top + side, side : 2 * side] = 1
        mask[k, top : top + side, 3 * side : 4 * side] = 1
    return mask


def save_image(path: Path, array: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if fmt == "JPEG":
        image = image.convert("RGB")
    with open(path, "wb") as f:
        image.save(f, format=fmt)


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_mask(path: Path, mask: np.ndarray | bytes) -> None:
    if isinstance(mask, bytes):
        write_bytes(path, mask)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, mask, allow_pickle=mask.dtype == object)


def truncated_png(rng: np.random.Generator, h: int, w: int) -> bytes:
    """A PNG cut in the middle of its pixel data: the header still reads."""
    buffer = io.BytesIO()
    Image.fromarray(texture(rng, h, w)).save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def tiff_pages(pages: list[np.ndarray]) -> bytes:
    """A multi-page TIFF's bytes, one page per array."""
    first, *rest = [Image.fromarray(page) for page in pages]
    buffer = io.BytesIO()
    first.save(buffer, format="TIFF", save_all=True, append_images=rest)
    return buffer.getvalue()


def pickled_object_mask(mask: np.ndarray) -> np.ndarray:
    holder = np.empty(1, dtype=object)
    holder[0] = mask
    return holder
