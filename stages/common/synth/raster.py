"""Pixel operations of the synthetic generator, in NumPy and SciPy only.

OpenCV's resampling, blurring and text rendering change their output between releases (measured:
warpAffine and putText differ between 5.0 and 5.1, GaussianBlur on floats and cubic resize
between 4.x and 5.x), which changed every synthetic figure with the installed version. These
functions are small, defined to the pixel, and keep the dataset a function of its seed alone.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.filters.rank import median as rank_median

EIGHT_CONNECTED = np.ones((3, 3), bool)


# ---------------------------------------------------------------- machine-independent maths
# NumPy picks the kernels of its transcendental functions by the CPU it runs on (AVX-512, AVX2 or
# scalar), and in float32 they disagree in the last bit: enough to move a few pixels across a
# rounding step, so the dataset changed with the machine (measured: 59 bytes of 72 MB between an
# AVX-512 and an AVX2 host). In float64 the kernels differ by an ULP or two, which rounding to
# float32 removes, so the generator computes these in float64 and rounds.


def exp(x) -> np.ndarray:
    return np.exp(np.asarray(x, np.float64)).astype(np.float32)


def cos(x) -> np.ndarray:
    return np.cos(np.asarray(x, np.float64)).astype(np.float32)


def arctan2(y, x) -> np.ndarray:
    return np.arctan2(np.asarray(y, np.float64), np.asarray(x, np.float64)).astype(np.float32)


def hypot(x, y) -> np.ndarray:
    return np.hypot(np.asarray(x, np.float64), np.asarray(y, np.float64)).astype(np.float32)


def power(base, exponent) -> np.ndarray:
    return np.power(np.asarray(base, np.float64), np.asarray(exponent, np.float64)).astype(np.float32)


# ---------------------------------------------------------------- filtering


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a (H, W) or (H, W, C) float image, mirrored at the borders."""
    sigmas = (sigma, sigma, 0) if image.ndim == 3 else sigma
    return ndimage.gaussian_filter(image.astype(np.float32, copy=False), sigmas, mode="mirror", truncate=3.0)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask grown by `radius` pixels in every direction (a square neighbourhood)."""
    if radius <= 0:
        return mask.astype(bool)
    return ndimage.maximum_filter(mask.astype(np.uint8), size=2 * radius + 1, mode="constant") > 0


def median_background(grey: np.ndarray, size: int) -> np.ndarray:
    """The median of a uint8 image over a `size`-wide square, as uint8.

    Wide windows run on a shrunk copy: the background under objects varies slowly, and the full-size
    median costs seconds per figure.
    """
    factor = max(1, math.ceil(size / 31))
    small = grey if factor == 1 else np.clip(resize_area(grey.astype(np.float32), max(1, grey.shape[0] // factor),
                                                         max(1, grey.shape[1] // factor)) + 0.5, 0, 255).astype(np.uint8)
    window = max(3, (size // factor) | 1)
    background = rank_median(small, footprint=np.ones((window, window), bool))
    if factor == 1:
        return background
    return np.clip(resize_linear(background.astype(np.float32), *grey.shape) + 0.5, 0, 255).astype(np.uint8)


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected labels of a mask and their count."""
    return ndimage.label(mask, structure=EIGHT_CONNECTED)


def largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = components(mask)
    if count <= 1:
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an RGB uint8 image, in integer arithmetic (uint8)."""
    r, g, b = (rgb[:, :, i].astype(np.uint32) for i in range(3))
    return ((r * 4899 + g * 9617 + b * 1868 + 8192) >> 14).astype(np.uint8)


# ---------------------------------------------------------------- resampling


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix: each output pixel averages the input interval it covers, partial pixels pro rata."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    starts, stops = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    cover = np.clip(np.minimum(stops, pixel + 1) - np.maximum(starts, pixel), 0, None)
    return cover / cover.sum(axis=1, keepdims=True)


def resize_area(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Area-averaging resize of a (H, W) or (H, W, C) float image: exact box filtering when shrinking."""
    if image.ndim == 3:
        return np.stack([resize_area(image[:, :, c], out_h, out_w) for c in range(image.shape[2])], axis=-1)
    rows, cols = _area_weights(image.shape[0], out_h), _area_weights(image.shape[1], out_w)
    return (rows @ image.astype(np.float64) @ cols.T).astype(np.float32)


def _sample(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, order: int, mode: str) -> np.ndarray:
    """`image` at fractional (ys, xs), channel by channel."""
    if image.ndim == 2:
        return ndimage.map_coordinates(image, [ys, xs], order=order, mode=mode).astype(np.float32)
    return np.stack([_sample(image[:, :, c], ys, xs, order, mode) for c in range(image.shape[2])], axis=-1)


def _centres(n_in: int, n_out: int) -> np.ndarray:
    return (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5


def resize_linear(image: np.ndarray, out_h: int, out_w: int, order: int = 1) -> np.ndarray:
    """Interpolating resize (bilinear, or a cubic spline with order=3), pixel centres aligned."""
    ys, xs = np.meshgrid(_centres(image.shape[0], out_h), _centres(image.shape[1], out_w), indexing="ij")
    return _sample(image.astype(np.float32, copy=False), ys, xs, order, "nearest")


def resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Area averaging where the image shrinks, a cubic spline where it grows."""
    if out_h <= image.shape[0] and out_w <= image.shape[1]:
        return resize_area(image, out_h, out_w)
    return resize_linear(image, out_h, out_w, order=3)


def warp_affine(image: np.ndarray, matrix: np.ndarray, out_hw: tuple[int, int], mode: str = "reflect") -> np.ndarray:
    """Bilinear affine warp: output pixel p takes the input at inverse(matrix) @ p; matrix is 2x3 over (x, y)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))
    ys, xs = np.mgrid[0:out_hw[0], 0:out_hw[1]].astype(np.float64)
    src_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    src_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    return _sample(image.astype(np.float32, copy=False), src_y, src_x, 1, mode)


def rotation_matrix(centre_xy: tuple[float, float], angle: float, scale: float) -> np.ndarray:
    """2x3 matrix rotating by `angle` degrees counter-clockwise (y down) and scaling about a centre."""
    a = math.radians(angle)
    c, s = scale * math.cos(a), scale * math.sin(a)
    cx, cy = centre_xy
    return np.array([[c, s, (1 - c) * cx - s * cy], [-s, c, s * cx + (1 - c) * cy]])


def remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Bilinear sampling of a float image at (map_y, map_x), reflected at the borders."""
    return _sample(image, map_y, map_x, 1, "mirror")


# ---------------------------------------------------------------- random textures and shapes


def field(h: int, w: int, feature_px: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field (zero mean, unit deviation) with features about `feature_px` across."""
    grid_h = max(2, math.ceil(h / feature_px) + 1)
    grid_w = max(2, math.ceil(w / feature_px) + 1)
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    smooth = resize_linear(grid, h, w, order=3)
    return (smooth - smooth.mean()) / (smooth.std() + 1e-6)


def grain(h: int, w: int, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Fine noise (unit deviation) correlated over `sigma_px`: film grain, chromatin, membrane texture."""
    noise = rng.standard_normal((h, w)).astype(np.float32)
    if sigma_px > 0:
        noise = gaussian(noise, sigma_px)
    return noise / (noise.std() + 1e-6)


def fibres(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Wavy streaks, like collagen fibres in stroma (unit deviation)."""
    length = max(5, min(h, w) // 12) | 1
    angle = rng.uniform(0, math.pi)
    kernel = np.zeros((length, length), np.float32)
    c = length // 2
    for t in np.linspace(-0.5, 0.5, 2 * length):      # a one-pixel line through the centre
        kernel[round(c + t * length * math.sin(angle)) % length, round(c + t * length * math.cos(angle)) % length] = 1
    streaks = ndimage.correlate(rng.standard_normal((h, w)).astype(np.float32), kernel / kernel.sum(), mode="mirror")
    # Displacing every pixel along a smooth random field bends the straight streaks into waves.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bend, feature = min(h, w) / 20, min(h, w) / 3
    streaks = remap(streaks, xx + bend * field(h, w, feature, rng), yy + bend * field(h, w, feature, rng))
    streaks = gaussian(streaks, 0.8)
    return streaks / (streaks.std() + 1e-6)


def blob_distance(ry: float, rx: float, angle: float, wobble: float, rng: np.random.Generator) -> np.ndarray:
    """Approximate signed distance in pixels (negative inside) to an irregular ellipse.

    The ellipse is centred in a square patch of odd side. Random low harmonics bend its outline, so
    no two cells or particles drawn with the same radii have the same shape.
    """
    ry, rx = max(ry, 1.0), max(rx, 1.0)
    half = math.ceil(max(ry, rx) * (1 + 2 * wobble) + 4)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    u, v = (xx * cos_a + yy * sin_a) / rx, (-xx * sin_a + yy * cos_a) / ry
    rho, theta = hypot(u, v), arctan2(v, u)
    boundary = np.ones_like(theta)
    for k in range(2, 6):
        boundary += wobble * rng.uniform(0, 1) * 2 / k * cos(k * theta + rng.uniform(0, 2 * math.pi))
    return (rho - boundary) * min(rx, ry)


def soft(distance: np.ndarray, edge: float) -> np.ndarray:
    """Alpha from a signed distance, with a soft edge about `edge` pixels wide."""
    return 1.0 / (1.0 + exp(np.clip(distance / max(edge, 1e-3), -30, 30)))


def add(canvas: np.ndarray, patch: np.ndarray, cy: float, cx: float, weight: float = 1.0) -> None:
    """Add `weight * patch`, centred at (cy, cx), into `canvas`, clipped at its borders."""
    ph, pw = patch.shape[:2]
    top, left = round(cy) - ph // 2, round(cx) - pw // 2
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + ph, canvas.shape[0]), min(left + pw, canvas.shape[1])
    if y0 < y1 and x0 < x1:
        canvas[y0:y1, x0:x1] += weight * patch[y0 - top:y1 - top, x0 - left:x1 - left]


def scatter(h: int, w: int, n: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) points, half in loose clusters (cells grow in colonies), half uniform."""
    n_clustered = n // 2
    parents = rng.uniform((0, 0), (h, w), size=(max(1, n_clustered // 5), 2))
    clustered = parents[rng.integers(len(parents), size=n_clustered)] + rng.normal(0, spread, (n_clustered, 2))
    uniform = rng.uniform((0, 0), (h, w), size=(n - n_clustered, 2))
    return np.concatenate([clustered, uniform])


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
