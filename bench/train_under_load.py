"""Training speed on a busy machine: one competing CPU-bound process, against the machine alone.

    python -m bench.train_under_load

Each thread policy runs in a fresh process (the OpenMP wait policy is read once, when torch
loads), trains the default Mask R-CNN on the real data pipeline, and alternates repeats alone
with repeats beside a busy loop (`while True: pass`), so a drift of the machine slows both alike.
Its `ratio` is the median images per second under load over the median alone. The `project`
policy is what `train.threads: auto` does; its ratio is reported as `train.under_load.ratio`.
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_IMAGES = 8  # per repeat: two batches of four; under a spinning thread pool one repeat takes half a minute
REPEATS = 3
# name: (environment for the child, torch threads; None: what the project chooses)
POLICIES = {
    "project": ({}, None),
    "all_cores_spin_then_sleep": ({"OMP_WAIT_POLICY": ""}, 0),  # libgomp's default: spin ~0.3 M turns, then sleep
    "all_cores_passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0),
    "all_cores_active": ({"OMP_WAIT_POLICY": "ACTIVE"}, 0),
    "one_thread": ({"OMP_WAIT_POLICY": ""}, 1),
}
BUSY_LOOP = "while True: pass"


def child(policy: str) -> None:
    """Measure one policy in this process; print its figures as JSON on the last line."""
    from stages.common.runtime import apply_threads  # before torch: it may set the wait policy

    import torch

    from bench.train_speed import images_per_second, write_figures
    from stages.common import engine
    from stages.common.config import load_params
    from stages.common.dataset import ForgeryDataset, build_train_transform
    from stages.common.distributed import DistContext
    from stages.common.model import build_model

    params = load_params()
    threads = POLICIES[policy][1]
    used = apply_threads(params.train.threads if threads is None else (threads or "auto"))
    torch.manual_seed(0)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_figures(Path(tmp), N_IMAGES)
        dataset = ForgeryDataset(rows, Path(tmp), build_train_transform(params.augment), params.data.max_image_pixels)
        loader = engine.make_train_loader(dataset, params.train, DistContext(rank=0, world_size=1, device=device))
        model = build_model(params.model, load_weights=False).to(device)
        optimizer = engine.build_optimizer(model, params.train)
        images_per_second(model, optimizer, loader, device)  # warm-up: allocator, kernels, thread pools
        alone, loaded = [], []
        for repeat in range(REPEATS):
            loader.sampler.set_epoch(repeat)
            alone.append(images_per_second(model, optimizer, loader, device))
            with competing_process():
                loaded.append(images_per_second(model, optimizer, loader, device))
    print(json.dumps({"threads": used, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "alone_images_per_second": round(statistics.median(alone), 3),
                      "loaded_images_per_second": round(statistics.median(loaded), 3),
                      "ratio": round(statistics.median(loaded) / statistics.median(alone), 3)}))


@contextlib.contextmanager
def competing_process():
    """A CPU-bound busy loop in another process for the duration of a `with` block."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.5)  # let it start spinning before the clock starts
        yield proc
    finally:
        proc.kill()
        proc.wait()


def run() -> dict:
    figures: dict = {"images_per_repeat": N_IMAGES, "repeats": REPEATS, "competitor": BUSY_LOOP,
                     "cores": len(os.sched_getaffinity(0)), "policies": {}}
    for policy, (env, _) in POLICIES.items():
        out = subprocess.run([sys.executable, "-m", "bench.train_under_load", "--child", policy],
                             env={**os.environ, **env}, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"train under load, policy {policy}, failed:\n{out.stderr[-3000:]}")
        figures["policies"][policy] = json.loads(out.stdout.strip().splitlines()[-1])
        print(policy, figures["policies"][policy], flush=True)
    figures["ratio"] = figures["policies"]["project"]["ratio"]
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        print(json.dumps(run(), indent=2))
