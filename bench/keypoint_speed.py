"""Speed of the keypoint copy-move detector, on one CPU core and on all of them.

    python -m bench.keypoint_speed

Times `detect_copy_move` with the params.yaml settings on textured synthetic figures of
800x600, 1000x1000 (the 1-megapixel figure of the speed goal), 2000x2000 and 3888x3888 pixels
(the competition's largest), each holding one copied object, with torch not imported while
timing. Each size is timed first on every core the process may use (OpenCV's default threads,
the exact path beside the others), then pinned to one core with OpenCV single-threaded, which
is how each screening worker runs. Figures are medians over the REPEATS runs of each size, in
reports/bench.json "keypoint": `seconds_per_image` (one core) and `seconds_per_image_all_cores`.
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from bench.report import median_seconds, update_report
from stages.common.config import load_params
from stages.common.copymove import detect_copy_move

SIZES = {"800x600": ((600, 800), 5), "1000x1000": ((1000, 1000), 5), "2000x2000": ((2000, 2000), 5), "3888x3888": ((3888, 3888), 3)}
SEED = 0


def textured_figure_with_copy(hw: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB figure of smoothed noise and blobs with one elliptical object copied elsewhere,
    and the truth mask (source plus copy)."""
    rng = np.random.default_rng(seed)
    height, width = hw
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, hw).astype(np.float32), (0, 0), 2.5)
    image = 120.0 + 45.0 * noise / noise.std()
    for _ in range(max(hw) // 10):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(6, 18)), int(rng.integers(6, 18)))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(60, 200)), -1)
    image = np.clip(image + rng.normal(0.0, 3.0, hw), 0, 255).astype(np.uint8)
    radius = max(hw) // 25
    source, target = (width // 4, height // 4), (3 * width // 4, 2 * height // 3)
    region = np.zeros(hw, np.uint8)
    cv2.ellipse(region, source, (radius, int(radius * 0.7)), 30.0, 0, 360, 1, -1)
    shift = np.float64([[1, 0, target[0] - source[0]], [0, 1, target[1] - source[1]]])
    copy = cv2.warpAffine(region, shift, (width, height), flags=cv2.INTER_NEAREST).astype(bool)
    image = np.where(copy, cv2.warpAffine(image, shift, (width, height)), image)
    return np.repeat(image[:, :, None], 3, axis=2), region.astype(bool) | copy


def pin_to_one_core() -> int | None:
    """Restrict this process to one CPU (where the OS allows it); returns that CPU's number."""
    cv2.setNumThreads(1)
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def run() -> dict:
    params = load_params().keypoint
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    figures: dict = {"opencv": cv2.__version__, "max_side": params.max_side, "cores": cores}
    cases = {name: textured_figure_with_copy(hw, SEED) for name, (hw, _) in SIZES.items()}
    for name, (image, _) in cases.items():
        seconds = median_seconds(lambda: detect_copy_move(image, params), SIZES[name][1], warmup=1)
        figures[name] = {"seconds_per_image_all_cores": round(seconds, 3)}
        print(f"{name}: {seconds:.3f} s per image on {cores} core(s)", flush=True)
    figures["pinned_cpu"] = pin_to_one_core()
    figures["cv2_threads"] = cv2.getNumThreads()
    for name, (image, truth) in cases.items():
        instances = detect_copy_move(image, params)
        found = np.logical_or.reduce([i.mask for i in instances]) if instances else np.zeros(truth.shape, bool)
        f1 = 2 * (found & truth).sum() / (found.sum() + truth.sum())
        repeats = SIZES[name][1]
        seconds = median_seconds(lambda: detect_copy_move(image, params), repeats, warmup=0)
        figures[name] |= {"seconds_per_image": round(seconds, 3), "repeats": repeats,
                          "instances": len(instances), "pixel_f1": round(float(f1), 3)}
        print(f"{name}: {seconds:.3f} s per image on one core (median of {repeats}), {len(instances)} instance(s), "
              f"pixel F1 {f1:.2f}", flush=True)
    figures["torch_imported_while_timing"] = "torch" in sys.modules
    return figures


def main() -> None:
    update_report("keypoint", run())


if __name__ == "__main__":
    main()
