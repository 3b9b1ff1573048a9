"""The competition's run-length encoding of instance masks.

An annotation is either the word `authentic` or one encoding per instance joined by `;`. Each
encoding is a JSON list `[start, length, start, length, ...]` over the pixels numbered in
column-major order (`mask.T.flatten()`), with 1-indexed starts, ascending and not overlapping.

Decoding is strict: anything the competition's scorer would reject, or would accept only by
accident (floats, booleans, runs past the image), raises RLEError with a message that says what
is wrong, so a bad submission is caught here rather than on the leaderboard.
"""
from __future__ import annotations

import json
from typing import Iterable

import numpy as np

AUTHENTIC = "authentic"
INSTANCE_SEPARATOR = ";"
MAX_VALUE = 2**62


class RLEError(ValueError):
    """An annotation or a run list that is not a valid competition RLE."""


# ---------------------------------------------------------------- encoding


def encode_mask(mask: np.ndarray) -> list[int]:
    """Runs `[start, length, ...]` of one (H, W) mask; any nonzero pixel is foreground."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode_mask expects an (H, W) mask, got shape {mask.shape}")
    column_major = mask.T.ravel() != 0
    # Padding with background on both sides makes every run open and close inside the array,
    # so the change points pair up as (start, end) even for a full mask or a run at the edge.
    padded = np.concatenate(([False], column_major, [False]))
    changes = np.flatnonzero(np.diff(padded))
    starts, ends = changes[0::2], changes[1::2]
    runs = np.empty(2 * len(starts), dtype=np.int64)
    runs[0::2] = starts + 1
    runs[1::2] = ends - starts
    return runs.tolist()


def encode_instances(masks: Iterable[np.ndarray] | np.ndarray) -> str:
    """The annotation for a stack or list of (H, W) masks; `authentic` when none has a pixel.

    Empty instances are skipped: an empty prediction would only add a zero to the metric's
    matching and shrink the image's score through the excess-prediction penalty.
    """
    if isinstance(masks, np.ndarray) and masks.ndim != 3:
        raise ValueError(f"encode_instances expects (N, H, W) or a list of (H, W) masks, got shape {masks.shape}")
    encoded = [json.dumps(runs) for runs in map(encode_mask, masks) if runs]
    return INSTANCE_SEPARATOR.join(encoded) if encoded else AUTHENTIC


# ---------------------------------------------------------------- decoding


def parse_annotation(annotation: str) -> list[np.ndarray]:
    """Validated run arrays (int64, `[start, length, ...]`) of each instance; [] for `authentic`.

    Checks everything that does not need the image size, so a submission row can be validated
    even where the solution gives no shape (authentic rows). `[]` is a valid, empty instance, as
    in the competition's scorer, where it still counts towards the number of predictions.
    """
    if not isinstance(annotation, str):
        raise RLEError(f"annotation must be a string, got {type(annotation).__name__} {annotation!r:.60}")
    if annotation == AUTHENTIC:
        return []
    parts = annotation.split(INSTANCE_SEPARATOR)
    return [_parse_instance(part, index, len(parts)) for index, part in enumerate(parts)]


def decode_annotation(annotation: str, shape: tuple[int, int]) -> list[np.ndarray]:
    """One bool (H, W) mask per instance of the annotation; [] for `authentic`."""
    height, width = _check_shape(shape)
    masks = []
    for index, runs in enumerate(parse_annotation(annotation)):
        try:
            masks.append(_paint(runs, height, width))
        except RLEError as e:
            raise RLEError(f"instance {index + 1}: {e}") from None
    return masks


def decode_runs(runs: list[int], shape: tuple[int, int]) -> np.ndarray:
    """The bool (H, W) mask of one run list."""
    height, width = _check_shape(shape)
    return _paint(_validated_runs(runs), height, width)


def _parse_instance(text: str, index: int, count: int) -> np.ndarray:
    where = f"instance {index + 1} of {count}" if count > 1 else "annotation"
    try:
        value = json.loads(text)
    # RecursionError: deeply nested brackets; ValueError: also integers longer than Python's
    # digit limit, which json reports outside JSONDecodeError.
    except (ValueError, RecursionError) as e:
        raise RLEError(f"{where} is not valid JSON ({_short(text)}): {_short(str(e))}") from None
    try:
        return _validated_runs(value)
    except RLEError as e:
        raise RLEError(f"{where}: {e}") from None


def _validated_runs(runs: object) -> np.ndarray:
    if not isinstance(runs, list):
        raise RLEError(f"expected a JSON list [start, length, ...], got {type(runs).__name__} {_short(repr(runs))}")
    non_integers = [v for v in runs if not _is_integer(v)]
    if non_integers:
        bad = non_integers[0]
        raise RLEError(f"values must be integers, found {type(bad).__name__} {_short(repr(bad))}")
    if len(runs) % 2:
        raise RLEError(f"odd number of values ({len(runs)}); expected start, length pairs")
    # Bounded so that start + length cannot overflow int64; no image comes near 2**62 pixels.
    if any(abs(v) > MAX_VALUE for v in runs):
        raise RLEError(f"a value is too large to be a pixel index (beyond +-{MAX_VALUE})")
    array = np.asarray(runs, dtype=np.int64)
    starts, lengths = array[0::2], array[1::2]
    _require_none(starts < 1, starts, "start {} is below 1 (starts are 1-indexed)")
    _require_none(lengths < 1, lengths, "run length {} is not positive")
    _require_none(np.diff(starts) < 0, starts[1:], "starts are not ascending (start {} follows a larger one)")
    ends = starts + lengths
    _require_none(ends[:-1] > starts[1:], starts[1:], "runs overlap (start {} is inside the previous run)")
    return array


def _is_integer(value: object) -> bool:
    # bool is a subclass of int, but `true` is not a pixel index.
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _require_none(failed: np.ndarray, values: np.ndarray, message: str) -> None:
    if failed.any():
        raise RLEError(message.format(int(values[np.argmax(failed)])))


def _paint(runs: np.ndarray, height: int, width: int) -> np.ndarray:
    starts, lengths = runs[0::2] - 1, runs[1::2]
    ends = starts + lengths
    n_pixels = height * width
    if len(ends) and ends[-1] > n_pixels:
        raise RLEError(f"run ending at pixel {int(ends[-1])} is past the {height}x{width} image ({n_pixels} pixels)")
    # Runs never overlap, so +1 at each start and -1 at each end, summed, marks each pixel once;
    # this paints any number of runs without a Python loop.
    edges = np.zeros(n_pixels + 1, dtype=np.int8)
    edges[starts] += 1
    edges[ends] -= 1
    column_major = np.cumsum(edges[:-1], dtype=np.int8).astype(bool)
    return np.ascontiguousarray(column_major.reshape(width, height).T)


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = shape
    except (TypeError, ValueError):
        raise RLEError(f"shape must be (height, width), got {shape!r}") from None
    if not all(_is_integer(v) and v > 0 for v in (height, width)):
        raise RLEError(f"shape must be two positive integers, got {shape!r}")
    return int(height), int(width)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
