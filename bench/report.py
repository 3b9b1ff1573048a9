"""Shared plumbing for the benchmarks: timing, machine description, and reports/bench.json."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from stages.common.io import write_json

REPORT = Path("reports/bench.json")


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


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
