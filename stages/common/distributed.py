"""Single-process or DistributedDataParallel, decided by the environment torchrun sets.

`python -m stages.train` runs one process. `torchrun --nproc_per_node N -m stages.train` sets
RANK, WORLD_SIZE and LOCAL_RANK, and each process then trains on its shard of every epoch: NCCL
between GPUs (one per process), gloo between CPU processes. Rank 0 alone validates and writes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .runtime import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> DistContext:
    """Join the process group torchrun describes, if any, and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world_size == 1:
        return DistContext(rank=0, world_size=1, device=device)
    if device.type == "mps":
        raise RuntimeError("multi-process training runs on CUDA or CPU; set train.device to cuda or cpu")
    if device.type == "cuda":
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around `model` when several processes train; else the model itself.

    Every parameter gets a gradient in every step (an image without instances still yields a
    zero mask loss wired to the mask head), so DDP need not search for unused parameters.
    """
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def close_distributed(ctx: DistContext) -> None:
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def sum_across_processes(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise sum of a float tensor over all processes (the tensor itself when alone)."""
    if not ctx.is_distributed:
        return values
    # NCCL reduces CUDA tensors only; gloo CPU ones.
    total = values.to(ctx.device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.cpu()
