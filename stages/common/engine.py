"""Training and validation passes, the learning-rate schedule, resumable state and logging.

Determinism. Every random stream (python, numpy, torch, the sampler's shuffle, DataLoader
workers, albumentations) is derived from (`train.seed`, epoch, rank) at the start of each epoch.
A run resumed from `models/last.pt` therefore re-enters the next epoch in exactly the state an
uninterrupted run would, without storing generator states, and for any number of processes.
- CPU, one process: bitwise reproducible; resumed and uninterrupted runs give equal weights.
- CPU, several processes (gloo): reproducible for a fixed number of processes.
- CUDA: not bitwise. RoIAlign's backward and index_put accumulate with atomics in whatever order
  the threads finish, and AMP adds its own rounding; runs agree closely but not exactly.
  torch.use_deterministic_algorithms cannot help: RoIAlign has no deterministic CUDA backward.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from dvclive import Live
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .config import InferParams, Params, TrainParams
from .dataset import ForgeryDataset, collate_fn, seed_worker
from .distributed import DistContext, sum_across_processes
from .infer import answer, detect
from .metric import image_auc, image_score
from .model import evidence_channels, save_torch, unwrap

RESUME_FORMAT = 1
VALIDATION_SEED = 12345  # proposal sampling in the validation-loss pass, the same every epoch
# Knobs that change how fast a run goes, not what it computes: a checkpoint survives their change.
RUN_ONLY_TRAIN_KEYS = ("device", "threads", "num_workers", "pin_memory", "resume")
# The per-epoch validation scores Mask R-CNN alone, so the choice of detector and the fusion
# rule do not change which epoch is best (dvc.yaml lists the same keys for the train stage).
FUSION_ONLY_INFER_KEYS = ("detector", "fusion_score_threshold")
# The code that shapes the weights: a checkpoint written by other code is not resumed from, so a
# `dvc repro` after a change to any of these trains again instead of re-exporting old weights.
TRAINING_CODE = tuple(Path(__file__).parent / name for name in ("model.py", "dataset.py", "engine.py"))


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to change."""


# ---------------------------------------------------------------- randomness


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of one process's epoch; distinct across epochs and ranks for any realistic count."""
    return seed * 1_000_003 + epoch * 1_009 + rank


# ---------------------------------------------------------------- data loaders


def make_train_loader(dataset: ForgeryDataset, params: TrainParams, ctx: DistContext) -> DataLoader:
    """Shuffled batches of this process's shard; call `loader.sampler.set_epoch(epoch)` each epoch.

    A DistributedSampler also serves a single process (one replica), so the shuffle of an epoch
    depends on (seed, epoch) alone, which is what makes resuming exact.
    """
    sampler = torch.utils.data.DistributedSampler(
        dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=params.seed,
    )
    return DataLoader(
        dataset, batch_size=params.batch_size, sampler=sampler, num_workers=params.num_workers,
        pin_memory=params.pin_memory, collate_fn=collate_fn, worker_init_fn=seed_worker,
    )


def make_val_loader(dataset: ForgeryDataset, params: TrainParams) -> DataLoader:
    return DataLoader(
        dataset, batch_size=params.batch_size, shuffle=False, num_workers=params.num_workers,
        pin_memory=params.pin_memory, collate_fn=collate_fn, worker_init_fn=seed_worker,
    )


def validation_subset(rows: pd.DataFrame, max_images: int, seed: int) -> pd.DataFrame:
    """Up to `max_images` validation rows (0 = all), drawn at random once, in their file order."""
    if max_images <= 0 or len(rows) <= max_images:
        return rows
    return rows.sample(n=max_images, random_state=seed).sort_index()


# ---------------------------------------------------------------- optimisation


def build_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)


def lr_factor(step: int, steps_per_epoch: int, params: TrainParams) -> float:
    """Multiplier of `train.lr` at optimiser step `step` (counted from 0 over the whole run).

    `train.scheduler: step` is StepLR's rule, times `gamma` every `step_size` epochs; `cosine`
    is half a cosine from 1 to 0 over all epochs. Either way, a linear warmup over the first
    `warmup_epochs`, per batch, so that a network trained from scratch starts gently.
    """
    epoch = step // steps_per_epoch
    if params.scheduler == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / (params.epochs * steps_per_epoch))))
    else:
        decay = params.gamma ** (epoch // params.step_size)
    warmup_steps = params.warmup_epochs * steps_per_epoch
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return warmup * decay


def build_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per batch. A partial of a module-level function, so its state is picklable."""
    if params.epochs < 1 or params.step_size < 1:
        raise TrainingError(f"train.epochs ({params.epochs}) and train.step_size ({params.step_size}) "
                            "must both be at least 1")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, steps_per_epoch=max(1, steps_per_epoch), params=params)
    )


# ---------------------------------------------------------------- one epoch


@dataclass(frozen=True)
class EpochStats:
    losses: dict[str, float]  # mean per image, each component and their sum under "loss"
    images: int
    seconds: float
    lr: float  # at the last step of the epoch

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def to_device(images, targets, device: torch.device):
    non_blocking = device.type == "cuda"
    images = [im.to(device, non_blocking=non_blocking) for im in images]
    targets = [{k: v.to(device, non_blocking=non_blocking) for k, v in t.items()} for t in targets]
    return images, targets


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, loader: DataLoader,
                    device: torch.device, scaler: torch.amp.GradScaler, grad_clip: float, epoch: int,
                    ctx: DistContext) -> EpochStats:
    """One pass over this process's shard; returns loss means over all processes' images."""
    model.train()
    sums: dict[str, float] = {}
    n_images = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1} train", unit="batch", disable=not ctx.is_main, leave=False)
    for images, targets in bar:
        images, targets = to_device(images, targets, device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        if not torch.isfinite(loss):
            parts = ", ".join(f"{k}={v.item():.4g}" for k, v in loss_dict.items())
            raise TrainingError(f"loss is {loss.item()} at epoch {epoch + 1} ({parts}); "
                                "lower train.lr, raise train.warmup_epochs or set train.grad_clip")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        batch = len(images)
        n_images += batch
        for name, value in {"loss": loss, **loss_dict}.items():
            sums[name] = sums.get(name, 0.0) + value.item() * batch
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{sums['loss'] / n_images:.3f}", img_s=f"{n_images / elapsed:.2f}")
    seconds = time.perf_counter() - start
    names = sorted(sums)
    totals = sum_across_processes(torch.tensor([sums[n] for n in names] + [n_images], dtype=torch.float64), ctx)
    total_images = int(totals[-1].item())
    losses = {n: float(totals[i] / max(1, total_images)) for i, n in enumerate(names)}
    return EpochStats(losses=losses, images=total_images, seconds=seconds, lr=lr if n_images else float("nan"))


# ---------------------------------------------------------------- validation


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers to eval mode: they normalise with, and no longer update, running stats."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Mean validation loss per image, each component and their sum under "loss".

    Mask R-CNN returns losses in train mode only, and train mode would update BatchNorm's
    running statistics with validation images: so train mode with every BatchNorm frozen. The
    proposal sampling of train mode draws from a forked, fixed-seed generator, so the value is
    comparable across epochs and training's random stream is left untouched.
    """
    was_training = model.training
    model.train()
    freeze_batchnorm(model)
    sums: dict[str, float] = {}
    n_images = 0
    cuda_devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            torch.manual_seed(VALIDATION_SEED)
            for images, targets in tqdm(loader, desc="validation loss", unit="batch", leave=False):
                images, targets = to_device(images, targets, device)
                loss_dict = model(images, targets)
                for name, value in {"loss": sum(loss_dict.values()), **loss_dict}.items():
                    sums[name] = sums.get(name, 0.0) + value.item() * len(images)
                n_images += len(images)
    finally:
        model.train(was_training)
    return {name: total / max(1, n_images) for name, total in sums.items()}


def tensor_to_rgb(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] back to the (H, W, 3) uint8 it was made from (exactly)."""
    return image.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@dataclass(frozen=True)
class AnswerScores:
    of1: float
    image_auc: float | None  # None when the images hold only one class


@torch.no_grad()
def evaluate_answers(model: nn.Module, loader: DataLoader, device: torch.device, infer_params: InferParams,
                     max_side: int) -> AnswerScores:
    """The competition's oF1 over the loader's images, answered as the evaluate stage answers, and
    the ROC-AUC of each image's best detection score.

    Images go through `infer.detect` and `infer.answer`, as in the evaluate stage; predictions come
    back at the original size. An authentic image scores 1 iff nothing is predicted. The AUC needs
    no threshold: a model that is learning to rank forged images first shows it there while its
    oF1 still sits on the all-authentic floor.
    """
    was_training = model.training
    model.eval()
    scores: list[float] = []
    confidences: list[float] = []
    forged: list[bool] = []
    try:
        for images, targets in tqdm(loader, desc="validation oF1", unit="batch", leave=False):
            rgb = [tensor_to_rgb(im[:3]) for im in images]
            evidence = [im[3].numpy() for im in images] if evidence_channels(model) else None
            predictions = [answer(d, infer_params, im) for d, im in zip(detect(model, rgb, device, max_side, evidence), rgb)]
            for prediction, target in zip(predictions, targets):
                truth = [m.numpy().astype(bool) for m in target["masks"]]
                scores.append(image_score(truth, prediction.instances))
                confidences.append(prediction.image_score)
                forged.append(bool(truth))
    finally:
        model.train(was_training)
    if not scores:
        return AnswerScores(of1=float("nan"), image_auc=None)
    return AnswerScores(of1=float(np.mean(scores)), image_auc=image_auc(np.array(forged), np.array(confidences)))


@dataclass(frozen=True)
class Validation:
    losses: dict[str, float]
    answers: AnswerScores
    seconds: float


def validate(model: nn.Module, loader: DataLoader, device: torch.device, infer_params: InferParams,
             max_side: int) -> Validation:
    """Validation loss, oF1 and image AUC of the bare model (never the DDP wrapper: rank 0 validates alone)."""
    start = time.perf_counter()
    losses = evaluate_loss(model, loader, device)
    answers = evaluate_answers(model, loader, device, infer_params, max_side)
    return Validation(losses=losses, answers=answers, seconds=time.perf_counter() - start)


# ---------------------------------------------------------------- run state and resuming


@dataclass
class TrainState:
    """What the loop carries from epoch to epoch, and what `last.pt` saves of it."""

    epoch: int = 0  # epochs completed
    best_epoch: int = 0  # 1-based; 0 before the first epoch
    best_of1: float = -math.inf
    best_val_loss: float = math.inf
    best_weights: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one logged record per epoch

    def is_improvement(self, of1: float, val_loss: float) -> bool:
        """Higher oF1 wins; on a tie (oF1 moves in steps of 1/n), the lower validation loss."""
        return of1 > self.best_of1 or (of1 == self.best_of1 and val_loss < self.best_val_loss)

    def finish_epoch(self, record: dict[str, float], model: nn.Module) -> None:
        self.epoch += 1
        self.history.append(record)
        of1, val_loss = record["val/of1"], record["val/loss"]
        if self.is_improvement(of1, val_loss):
            self.best_epoch, self.best_of1, self.best_val_loss = self.epoch, of1, val_loss
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def run_fingerprint(params: Params, split_files: list[Path], rows: pd.DataFrame) -> str:
    """Hash of everything a checkpoint's weights depend on: params, training code, splits, data sizes.

    File sizes stand in for image contents: hashing every image would cost a read of the whole
    data set per run, and a change of data that keeps every size is very unlikely.
    """
    train = {k: v for k, v in dataclasses.asdict(params.train).items() if k not in RUN_ONLY_TRAIN_KEYS}
    relevant = {
        "model": dataclasses.asdict(params.model), "train": train,
        "augment": dataclasses.asdict(params.augment),
        "infer": {k: v for k, v in dataclasses.asdict(params.infer).items() if k not in FUSION_ONLY_INFER_KEYS},
        "data": {"root": params.data.root, "max_image_pixels": params.data.max_image_pixels},
    }
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode())
    for path in [*TRAINING_CODE, *split_files]:
        digest.update(Path(path).read_bytes())
    root = Path(params.data.root)
    for column in ("image_path", "mask_path"):
        for rel in rows[column].fillna("").astype(str):
            path = root / rel
            digest.update(f"{rel}:{path.stat().st_size if rel and path.is_file() else -1};".encode())
    return digest.hexdigest()


def save_resume_checkpoint(path: Path, fingerprint: str, state: TrainState, model: nn.Module,
                           optimizer, scheduler, scaler) -> None:
    """Everything needed to go on after `state.epoch` epochs, written atomically."""
    saved_state = vars(state).copy()
    if state.best_epoch == state.epoch:
        saved_state["best_weights"] = None  # the same tensors as "model": don't store them twice
    payload = {
        "format": RESUME_FORMAT,
        "fingerprint": fingerprint,
        "state": saved_state,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
    }
    save_torch(payload, path)


def load_resume_checkpoint(path: Path, fingerprint: str, model: nn.Module, optimizer, scheduler,
                           scaler) -> tuple[TrainState | None, str]:
    """Restore a run from `path` when it was made with the same fingerprint.

    Returns the state (None to start afresh) and a line saying what happened, for the log.
    """
    if not path.is_file():
        return None, f"no {path}: training from scratch"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a foreign or damaged file is ignored, never fatal
        return None, f"ignoring {path}: unreadable ({type(e).__name__}: {e})"
    if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
        return None, f"ignoring {path}: not a resume checkpoint of this version"
    if payload.get("fingerprint") != fingerprint:
        return None, f"ignoring {path}: it was made with other params, data or training code"
    try:
        unwrap(model).load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        scaler.load_state_dict(payload["scaler"])
        state = TrainState(**payload["state"])
        if state.best_weights is None and state.best_epoch == state.epoch > 0:
            state.best_weights = payload["model"]
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        return None, f"ignoring {path}: it does not fit this model ({type(e).__name__}: {e})"
    return state, f"resuming from {path} after epoch {state.epoch}"


# ---------------------------------------------------------------- logging


def epoch_record(stats: EpochStats, validation: Validation) -> dict[str, float]:
    """The numbers logged for one epoch, under the names DVCLive plots them by."""
    return {
        **{f"train/{k}": v for k, v in stats.losses.items()},
        **{f"val/{k}": v for k, v in validation.losses.items()},
        "val/of1": validation.answers.of1,
        # Left out, not NaN, when undefined: a NaN breaks the plots of the whole series.
        **({"val/image_auc": validation.answers.image_auc} if validation.answers.image_auc is not None else {}),
        "lr": stats.lr,
        "train/images_per_s": stats.images_per_second,
        "train/epoch_s": stats.seconds,
        "val/epoch_s": validation.seconds,
    }


def open_live(directory: str | Path, history: list[dict[str, float]]) -> Live:
    """A fresh DVCLive log holding the epochs already trained, one step per epoch.

    The log is rebuilt from the checkpoint's history rather than appended to with
    `resume=True`: `dvc repro` deletes the stage's outputs before it runs, so after a crash the
    old log may be gone while `last.pt` (persist) remains; rebuilt, the two always agree.
    DVCLive writes no dvc.yaml (the pipeline's declares its metrics and plots) and no report.
    """
    live = Live(dir=str(directory), resume=False, report=None, save_dvc_exp=False, dvcyaml=False)
    for record in history:
        log_epoch(live, record)
    return live


def log_epoch(live: Live, record: dict[str, float]) -> None:
    for name, value in record.items():
        live.log_metric(name, value)
    live.next_step()


def format_record(epoch: int, record: dict[str, float]) -> str:
    return (f"epoch {epoch}: train loss {record['train/loss']:.4f}, val loss {record['val/loss']:.4f}, "
            f"val oF1 {record['val/of1']:.4f}, val image AUC {record.get('val/image_auc', float('nan')):.3f}, lr {record['lr']:.2e}, "
            f"{record['train/images_per_s']:.2f} img/s, {record['train/epoch_s']:.0f} s + "
            f"{record['val/epoch_s']:.0f} s validation")
