"""Shared plumbing for the benchmarks: timing, machine description, and reports/bench.json."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from stages.common.io import write_json

REPORT = Path("reports/bench.json")


def machine() -> dict:
    """The host, with the kernels NumPy, OpenCV's IPP and OpenCV's own dispatch picked on it (in
    `opencv_cpu`, a "?" marks a kernel set left unused): their last bits can move a borderline
    detection, so a reader can tell which processor a number came from."""
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "numpy_simd": np.__config__.CONFIG["SIMD Extensions"].get("found", []),
            "opencv_ipp": cv2.ipp.getIppVersion(), "opencv_cpu": cv2.getCPUFeaturesLine()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def cpu_model() -> str:
    """The processor's marketing name, where the platform says it (Linux's /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn` over `repeats` runs, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def update_report(key: str, figures: dict, path: Path = REPORT) -> None:
    """Replace one benchmark's section of the report, keeping the others."""
    report = json.loads(path.read_text()) if path.is_file() else {}
    report[key] = {**figures, "machine": machine()}
    write_json(path, report)
