"""Train the Mask R-CNN on the train split; keep the epoch with the best validation oF1.

    python -m stages.train                                  one process (cuda, mps or cpu)
    torchrun --nproc_per_node N -m stages.train             DistributedDataParallel, N processes

Writes `models/model.pt` (best epoch), `models/last.pt` (every epoch, to resume from) and
`dvclive/` (curves). With `train.resume`, a run picks up after the last whole epoch of an
interrupted run with the same params and data; see stages/common/engine.py on determinism.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from stages.common import engine
from stages.common.config import Params, ParamsError, load_params
from stages.common.dataset import DatasetError, ForgeryDataset, build_train_transform, evidence_params, read_split
from stages.common.distributed import DistContext, barrier, close_distributed, init_distributed, wrap_model
from stages.common.io import InputError, OutputError
from stages.common.model import ModelError, build_model, save_checkpoint, unwrap
from stages.common.runtime import apply_threads

MODEL_PATH = Path("models/model.pt")
LAST_PATH = Path("models/last.pt")
LIVE_DIR = Path("dvclive")


def main() -> None:
    params = load_params()
    apply_threads(params.train.threads)
    try:
        ctx = init_distributed(params.train.device)
    except RuntimeError as e:  # no such device, or a process group that cannot form
        raise SystemExit(f"train: {e}") from None
    try:
        train(params, ctx)
    finally:
        close_distributed(ctx)


def train(params: Params, ctx: DistContext) -> None:
    log = print if ctx.is_main else (lambda *args: None)
    split_files = [Path(params.data.splits_dir) / name for name in ("train.csv", "val.csv")]
    train_rows, val_rows = (read_split(path) for path in split_files)
    val_rows = engine.validation_subset(val_rows, params.train.val_max_images, params.train.seed)
    root, max_pixels = Path(params.data.root), params.data.max_image_pixels
    keypoint = evidence_params(params)
    train_set = ForgeryDataset(train_rows, root, build_train_transform(params.augment), max_pixels, keypoint)
    val_set = ForgeryDataset(val_rows, root, None, max_pixels, keypoint)
    train_loader = engine.make_train_loader(train_set, params.train, ctx)
    val_loader = engine.make_val_loader(val_set, params.train)

    engine.seed_everything(params.train.seed)
    model = build_model(params.model).to(ctx.device)
    optimizer = engine.build_optimizer(model, params.train)
    scheduler = engine.build_scheduler(optimizer, params.train, len(train_loader))
    scaler = torch.amp.GradScaler("cuda", enabled=params.train.amp and ctx.device.type == "cuda")

    fingerprint = engine.run_fingerprint(params, split_files, train_rows)
    state, message = None, "train.resume is off: training from scratch"
    if params.train.resume:
        state, message = engine.load_resume_checkpoint(LAST_PATH, fingerprint, model, optimizer, scheduler, scaler)
    state = state or engine.TrainState()
    log(f"{message}; {len(train_set)} train / {len(val_set)} val images on {ctx.device} x {ctx.world_size}, "
        f"model.arch={params.model.arch}, {params.train.epochs} epochs")
    model = wrap_model(model, ctx)
    live = engine.open_live(LIVE_DIR, state.history) if ctx.is_main else None

    for epoch in range(state.epoch, params.train.epochs):
        engine.seed_everything(engine.epoch_seed(params.train.seed, epoch, ctx.rank))
        train_loader.sampler.set_epoch(epoch)
        stats = engine.train_one_epoch(model, optimizer, scheduler, train_loader, ctx.device, scaler,
                                       grad_clip=params.train.grad_clip, epoch=epoch, ctx=ctx)
        if ctx.is_main:
            validation = engine.validate(unwrap(model), val_loader, ctx.device, params.infer, params.model.max_size)
            record = engine.epoch_record(stats, validation)
            state.finish_epoch(record, model)
            engine.log_epoch(live, record)
            engine.save_resume_checkpoint(LAST_PATH, fingerprint, state, model, optimizer, scheduler, scaler)
            log(engine.format_record(state.epoch, record))
        barrier(ctx)

    if ctx.is_main:
        export_best(state, model, params)
        live.end()


def export_best(state: engine.TrainState, model, params: Params) -> None:
    """The best epoch's weights to MODEL_PATH, with what load_model needs to rebuild them."""
    unwrap(model).load_state_dict(state.best_weights)
    save_checkpoint(MODEL_PATH, model, params.model, epoch=state.best_epoch, val_of1=state.best_of1,
                    val_loss=state.best_val_loss)
    print(f"best epoch {state.best_epoch}: val oF1 {state.best_of1:.4f}, val loss {state.best_val_loss:.4f} "
          f"-> {MODEL_PATH}")


if __name__ == "__main__":
    try:
        main()
    except (ParamsError, DatasetError, InputError, ModelError, OutputError, engine.TrainingError) as e:
        sys.exit(f"train: {e}")
