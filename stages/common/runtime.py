"""Where the pipeline runs: the device, and how many threads, shared by train, evaluate and predict."""
from __future__ import annotations

import os

import cv2
import torch
from threadpoolctl import threadpool_limits


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("train.device is 'mps' but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (a Slurm or container limit), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_threads(setting: int | str) -> int:
    """`auto`: this process's share of its cores; torchrun's processes on one machine split them."""
    if setting != "auto":
        return int(setting)
    return max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def apply_threads(setting: int | str) -> int:
    """Set torch's intra-op and inter-op pools, OpenCV's and numpy's BLAS to `train.threads`; return the count.

    BLAS too: the keypoint detector's numpy algebra would otherwise start a thread per core in
    every one of predict's workers."""
    threads = resolve_threads(setting)
    threadpool_limits(threads, user_api="blas")
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # fixed once any inter-op work has run in this process; the intra-op count is what matters
        pass
    cv2.setNumThreads(threads)
    return threads
