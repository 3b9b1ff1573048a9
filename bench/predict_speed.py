"""Predict speed and peak memory on the CPU, for typical (800x600) and large (3000x3000) figures,
and the speed-up of predict's worker processes.

    python -m bench.predict_speed

Each case runs in its own process, so its peak RSS (the high-water mark of the whole process:
interpreter, model and image) is its own. Uses models/model.pt when it exists, else an
untrained model of the default architecture; the untrained one emits more low-score boxes, so
it is, if anything, slower.

Scaling: for the keypoint and fusion detectors, SCALING_IMAGES figures of 800x600 with a copied
object are screened with 1 and with 2 worker processes (`stages.common.screening`, as predict
runs them), alternately, each run in a fresh process. The rate is measured from the first
result to the last, the steady state of a long screening run; the start-up (imports, worker
processes, model loading) is reported beside it.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from bench.report import update_report

CASES = {"typical_800x600": ((600, 800), 12), "large_3000x3000": ((3000, 3000), 3)}
SCALING_DETECTORS = ("keypoint", "fusion")
SCALING_WORKERS = (1, 2)
SCALING_IMAGES = 24
SCALING_REPEATS = 2
MODEL = Path("models/model.pt")


def textured_figure(hw: tuple[int, int], seed: int) -> np.ndarray:
    """A figure-like image: smooth background with dark blobs, plus noise."""
    rng = np.random.default_rng(seed)
    small = rng.normal(200, 25, (hw[0] // 16 + 1, hw[1] // 16 + 1)).astype(np.float32)
    image = cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        centre = (int(rng.integers(0, hw[1])), int(rng.integers(0, hw[0])))
        axes = (int(rng.integers(5, max(6, hw[0] // 20))), int(rng.integers(5, max(6, hw[0] // 20))))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(30, 120)), -1)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.repeat(image.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


def child(case: str, checkpoint: str) -> None:
    """Time predict_image on one case's images in this process; print figures as JSON."""
    import torch

    from stages.common.config import load_params
    from stages.common.detectors import predict_image
    from stages.common.model import load_model

    params = load_params()
    hw, count = CASES[case]
    model, model_params = load_model(checkpoint, "cpu")
    images = [textured_figure(hw, seed) for seed in range(count)]
    with torch.inference_mode():
        predict_image(images[0], "maskrcnn", model, torch.device("cpu"), params.infer, params.keypoint,
                      model_params.max_size)  # warm-up
        seconds = []
        for image in images:
            start = time.perf_counter()
            predict_image(image, "maskrcnn", model, torch.device("cpu"), params.infer, params.keypoint,
                          model_params.max_size)
            seconds.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"median_seconds_per_image": float(np.median(seconds)),
                      "images_per_second": 1.0 / float(np.median(seconds)),
                      "peak_rss_mib": round(peak_mib, 1), "images": count, "threads": torch.get_num_threads()}))


def scaling_child(detector: str, workers: int, folder: str, checkpoint: str) -> None:
    """Screen every figure in `folder` as predict does; print the timings as JSON."""
    start = time.perf_counter()
    from stages.common.config import load_params
    from stages.common.screening import ScreeningSetup, prepare_process, screen_here, screen_on_pool
    from stages.common.sources import folder_sources

    params = load_params()
    setup = ScreeningSetup(detector, checkpoint, "cpu", params.data.max_image_pixels, params.infer, params.keypoint)
    prepare_process(setup)
    sources, _ = folder_sources(folder)
    runner = screen_on_pool(sources, setup, workers) if workers > 1 else screen_here(sources, setup)
    stamps = [time.perf_counter() for _ in runner]
    end = time.perf_counter()
    # N workers finish their first images together: the span from the first result covers the rest
    print(json.dumps({"steady_images_per_second": (len(stamps) - workers) / (stamps[-1] - stamps[0]),
                      "startup_seconds": stamps[0] - start, "wall_seconds": end - start}))


def run_scaling(checkpoint: Path, folder: Path) -> dict:
    from bench.keypoint_speed import textured_figure_with_copy

    for seed in range(SCALING_IMAGES):
        cv2.imwrite(str(folder / f"{seed:03d}.png"), textured_figure_with_copy((600, 800), seed)[0])
    figures: dict = {"images": SCALING_IMAGES, "image_size": "800x600", "repeats": SCALING_REPEATS,
                     "cores": len(os.sched_getaffinity(0))}
    for detector in SCALING_DETECTORS:
        runs: dict = {w: [] for w in SCALING_WORKERS}
        for _ in range(SCALING_REPEATS):
            for workers in SCALING_WORKERS:  # alternately, so a drift of the machine slows both alike
                out = subprocess.run([sys.executable, "-m", "bench.predict_speed", "--scaling", detector,
                                      str(workers), str(folder), str(checkpoint)], capture_output=True, text=True)
                if out.returncode != 0:
                    raise RuntimeError(f"predict scaling {detector} x{workers} failed:\n{out.stderr[-3000:]}")
                runs[workers].append(json.loads(out.stdout.strip().splitlines()[-1]))
        figures[detector] = {f"workers_{w}": {k: round(float(np.median([r[k] for r in rs])), 3) for k in rs[0]}
                             for w, rs in runs.items()}
        rate = {w: figures[detector][f"workers_{w}"]["steady_images_per_second"] for w in SCALING_WORKERS}
        figures[detector]["speedup_2_workers"] = round(rate[2] / rate[1], 3)
        print(detector, figures[detector], flush=True)
    return figures


def untrained_checkpoint(folder: Path) -> Path:
    from stages.common.config import load_params
    from stages.common.model import build_model, save_checkpoint

    params = load_params().model
    path = folder / "untrained.pt"
    save_checkpoint(path, build_model(params, load_weights=False), params)
    return path


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = MODEL if MODEL.is_file() else untrained_checkpoint(Path(tmp))
        figures = {"detector": "maskrcnn", "checkpoint": "trained" if checkpoint == MODEL else "untrained"}
        for case in CASES:
            out = subprocess.run([sys.executable, "-m", "bench.predict_speed", "--child", case, str(checkpoint)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"predict benchmark {case} failed:\n{out.stderr[-3000:]}")
            figures[case] = json.loads(out.stdout.strip().splitlines()[-1])
            print(case, figures[case])
        scaling_folder = Path(tmp) / "scaling"
        scaling_folder.mkdir()
        figures["scaling"] = run_scaling(checkpoint.resolve(), scaling_folder)
    return figures


def main() -> None:
    update_report("predict", run())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "--scaling":
        scaling_child(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        main()
