"""Training speed of both architectures at the default size, and the data pipeline's overhead.

    python -m bench.train_speed

For each `model.arch`, a train step (forward, backward, optimiser step) is timed two ways on the
same model: fed by the real pipeline (PNG decoding, mask loading, augmentation, collation,
DataLoader with `train.num_workers`) over figures written to a temporary data root, and fed by
tensors already in memory with the same sizes and targets. Their ratio is the pipeline's
overhead. Each figure is the median over repeats, run alternately so that a busy machine
slows both alike. On CUDA the same is measured on the GPU as well.

`under_load` is bench/train_under_load.py: the speed beside one competing CPU-bound process over
the speed alone, for each thread policy; its `ratio` is the project's default policy.
"""
from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from bench import train_under_load
from bench.report import update_report
from stages.common import engine
from stages.common.config import Params, load_params
from stages.common.dataset import ForgeryDataset, build_train_transform, evidence_params
from stages.common.distributed import DistContext
from stages.common.model import build_model

ARCHS = ("fpn", "seed")
N_IMAGES = 24  # per repeat: six batches of four at the default batch size
REPEATS = 3
SIDES = (192, 448)  # the synthetic figures' range (synth.min_side, synth.max_side)


def write_figures(root: Path, n: int, seed: int = 0) -> pd.DataFrame:
    """Half authentic, half forged PNG figures with two-blob instances, as split rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(*SIDES, size=2))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        label = "forged" if i % 2 else "authentic"
        image_path = Path(f"train_images/{label}/{i}.png")
        (root / image_path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / image_path)
        mask_path = ""
        if label == "forged":
            masks = np.zeros((int(rng.integers(1, 4)), h, w), np.uint8)
            for mask in masks:
                for _ in range(2):  # the source and one copy
                    y, x = rng.integers(0, h - 24), rng.integers(0, w - 24)
                    mask[y:y + 20, x:x + 20] = 1
            mask_path = f"train_masks/{i}.npy"
            (root / mask_path).parent.mkdir(parents=True, exist_ok=True)
            np.save(root / mask_path, masks)
        rows.append(dict(case_id=str(i), label=label, image_path=str(image_path), mask_path=mask_path, status="ok"))
    return pd.DataFrame(rows)


def train_steps(model, optimizer, batches, device: torch.device) -> int:
    """Train on every batch of `batches` (any iterable of (images, targets)); return the image count."""
    model.train()
    n = 0
    for images, targets in batches:
        images, targets = engine.to_device(images, targets, device)
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n


def images_per_second(model, optimizer, batches, device: torch.device) -> float:
    start = time.perf_counter()
    n = train_steps(model, optimizer, batches, device)
    return n / (time.perf_counter() - start)


def measure_arch(params: Params, arch: str, rows: pd.DataFrame, root: Path, device: torch.device) -> dict:
    torch.manual_seed(0)
    model_params = dataclasses.replace(params.model, arch=arch, backbone_weights="none")
    model = build_model(model_params).to(device)
    optimizer = engine.build_optimizer(model, params.train)
    # With keypoint evidence the first repeat also runs the keypoint detector; later ones hit its cache.
    dataset = ForgeryDataset(rows, root, build_train_transform(params.augment), params.data.max_image_pixels,
                             evidence_params(params))
    loader = engine.make_train_loader(dataset, params.train, DistContext(rank=0, world_size=1, device=device))
    # The bare loop sees the same sizes and targets, but its images are random and already in memory.
    in_memory = [([torch.rand_like(im) for im in images], targets) for images, targets in loader]

    train_steps(model, optimizer, in_memory[:2], device)  # warm-up: allocator, kernels, thread pools
    pipeline, bare = [], []
    for repeat in range(REPEATS):
        loader.sampler.set_epoch(repeat)
        pipeline.append(images_per_second(model, optimizer, loader, device))
        bare.append(images_per_second(model, optimizer, in_memory, device))
    pipeline_ips, bare_ips = statistics.median(pipeline), statistics.median(bare)
    figures = {
        "pipeline_images_per_second": round(pipeline_ips, 3),
        "bare_images_per_second": round(bare_ips, 3),
        "pipeline_overhead": round(bare_ips / pipeline_ips - 1.0, 3),
        "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }
    print(f"{arch} on {device}: {figures}")
    return figures


def run() -> dict:
    params = load_params()
    figures = {
        "model": {"min_size": params.model.min_size, "max_size": params.model.max_size},
        "batch_size": params.train.batch_size, "num_workers": params.train.num_workers,
        "image_sides": list(SIDES), "images_per_repeat": N_IMAGES, "repeats": REPEATS,
        "cpu_threads": torch.get_num_threads(),
        # Other processes on the machine slow a multi-threaded CPU step far more than their share.
        "load_average_1min_before": round(os.getloadavg()[0], 2),
    }
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_figures(Path(tmp), N_IMAGES)
        for device in devices:
            figures[device.type] = {arch: measure_arch(params, arch, rows, Path(tmp), device) for arch in ARCHS}
    if torch.cuda.is_available():
        figures["cuda"]["card"] = torch.cuda.get_device_name(0)
    figures["under_load"] = train_under_load.run()
    return figures


def main() -> None:
    update_report("train", run())


if __name__ == "__main__":
    main()
