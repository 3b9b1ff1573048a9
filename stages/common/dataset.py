"""Split rows to Mask R-CNN samples: an RGB float image in [0, 1] and its instance targets.

One mask channel is one instance: the source object plus every copy of it. Instances are kept as
they are (never merged or re-split by contours), and each box spans the whole instance. Authentic
images are negatives with empty targets.

With keypoint parameters, each sample also carries the keypoint detector's copy-evidence map as
a fourth channel (`model.evidence: keypoint`); it is computed once per image, on the image as
read, cached, and moved by the same flips and turns as the image.

Augmentation moves image and masks together. An instance whose mask loses its pixels, or loses
its copies (only one blob of several left in frame), is no longer a copy-move event and is
dropped; boxes are always recomputed from the augmented masks.
"""
from __future__ import annotations

import random
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from .config import AugmentParams, KeypointParams, Params
from .copymove import detect_copy_move
from .io import InputError, load_mask, read_image
from .keypoint import evidence_map

# An instance smaller than this after augmentation carries too little signal to learn from.
MIN_INSTANCE_PIXELS = 4
JPEG_QUALITY = (60, 95)
BLUR_LIMIT = (3, 5)
REQUIRED_COLUMNS = ("case_id", "label", "image_path", "mask_path")
LABELS = ("authentic", "forged")
OK_STATUS = "ok"


class DatasetError(ValueError):
    """Split rows that cannot be turned into training samples."""


def build_train_transform(params: AugmentParams) -> A.Compose:
    """Flips, right-angle turns, blur, brightness/contrast and JPEG, each with its own probability.

    None of them crops or rescales, so the resize stays Mask R-CNN's own (aspect-preserving).
    """
    return A.Compose([
        A.HorizontalFlip(p=params.hflip),
        A.VerticalFlip(p=params.vflip),
        A.RandomRotate90(p=params.rot90),
        A.GaussianBlur(blur_limit=BLUR_LIMIT, p=params.blur),
        A.RandomBrightnessContrast(p=params.brightness_contrast),
        A.ImageCompression(quality_range=JPEG_QUALITY, p=params.jpeg),
    ])


def evidence_params(params: Params) -> KeypointParams | None:
    """The keypoint params a dataset needs to add the evidence channel, or None when the model takes RGB only."""
    return params.keypoint if params.model.evidence == "keypoint" else None


class ForgeryDataset(Dataset):
    """Rows of a split CSV as (image, target) pairs; `transform` is None for validation.

    Paths in the rows are relative to `root`. A file that cannot be read raises InputError naming
    the case, the split row and the reason. With `keypoint` params the image tensor has a fourth
    channel, the copy-evidence map.
    """

    def __init__(self, rows: pd.DataFrame, root: str | Path, transform: A.Compose | None, max_pixels: int,
                 keypoint: KeypointParams | None = None):
        missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
        if missing:
            raise DatasetError(f"split rows lack column(s) {', '.join(missing)}")
        self.rows = rows.reset_index(drop=True)
        self.root = Path(root)
        self.transform = transform
        self.max_pixels = max_pixels
        self.keypoint = keypoint
        self._evidence: dict[int, np.ndarray] = {}  # per process: DataLoader workers fill their own

    def __len__(self) -> int:
        return len(self.rows)

    def is_forged(self, index: int) -> bool:
        return self.rows.at[index, "label"] == "forged"

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, masks = self.load(index)
        evidence = self.evidence(index, image) if self.keypoint is not None else None
        if self.transform is not None:
            image, masks, evidence = augment(self.transform, image, masks, evidence)
        return image_to_tensor(image, evidence), make_target(masks, index)

    def evidence(self, index: int, image: np.ndarray) -> np.ndarray:
        """The keypoint detector's copy-evidence map of the image, float16 (H, W), cached."""
        if index not in self._evidence:
            self._evidence[index] = evidence_map(detect_copy_move(image, self.keypoint), image.shape[:2]).astype(np.float16)
        return self._evidence[index]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image (H, W, 3) uint8 and its instance masks (N, H, W) uint8, before augmentation."""
        row = self.rows.iloc[index]
        try:
            image = read_image(self.root / row.image_path, self.max_pixels)
            if not self.is_forged(index):
                return image, np.zeros((0, *image.shape[:2]), np.uint8)
            if not isinstance(row.mask_path, str) or not row.mask_path:
                raise InputError("mask_missing", "forged image without a mask_path")
            masks = load_mask(self.root / row.mask_path, image.shape[:2])
            empty = [i for i, m in enumerate(masks) if not m.any()]
            if empty:
                raise InputError("mask_empty", f"instance channel(s) {empty} of the mask have no pixel")
            return image, masks
        except InputError as e:
            raise InputError(e.code, f"case {row.case_id} ({row.label}, {row.image_path}): {e}") from e


def augment(transform: A.Compose, image: np.ndarray, masks: np.ndarray, evidence: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Apply `transform` to the image, every instance mask and the evidence map (geometry only),
    dropping instances it destroyed.

    The transform's randomness is drawn from torch's generator, which the training loop seeds (and
    DataLoader seeds per worker), so a run is reproducible whatever albumentations does by default.
    One shared generator for the whole pipeline: seeding each transform alike would correlate them.
    """
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    targets = {"masks": list(masks)} if len(masks) else {}
    if evidence is not None:
        targets["mask"] = evidence
    out = transform(image=image, **targets)
    image_out, evidence_out = out["image"], out.get("mask")
    if not len(masks):
        return image_out, np.zeros((0, *image_out.shape[:2]), np.uint8), evidence_out
    kept = [after for before, after in zip(masks, out["masks"]) if instance_survives(before, np.asarray(after))]
    masks_out = np.stack(kept).astype(np.uint8) if kept else np.zeros((0, *image_out.shape[:2]), np.uint8)
    return image_out, masks_out, evidence_out


def instance_survives(before: np.ndarray, after: np.ndarray) -> bool:
    """True unless augmentation left too few pixels, or cut a copy-move event down to one blob."""
    area = int(np.count_nonzero(after))
    if area < MIN_INSTANCE_PIXELS:
        return False
    if area == np.count_nonzero(before):
        return True  # geometry changed but nothing left the frame: still every blob
    return count_blobs(after) >= min(2, count_blobs(before))


def count_blobs(mask: np.ndarray) -> int:
    n_labels, _ = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    return n_labels - 1


def make_target(masks: np.ndarray, index: int) -> dict[str, torch.Tensor]:
    """Mask R-CNN's target for (N, H, W) instance masks; N = 0 makes a negative example."""
    n = len(masks)
    return {
        "boxes": masks_to_boxes(masks),
        "labels": torch.ones(n, dtype=torch.int64),
        "masks": torch.from_numpy(np.ascontiguousarray(masks, dtype=np.uint8)),
        "image_id": torch.tensor(index, dtype=torch.int64),
        "area": torch.from_numpy(masks.sum(axis=(1, 2), dtype=np.float32)),
        "iscrowd": torch.zeros(n, dtype=torch.int64),
    }


def masks_to_boxes(masks: np.ndarray) -> torch.Tensor:
    """(N, 4) float boxes x0, y0, x1, y1 with exclusive ends, over all the pixels of each instance.

    Exclusive ends give a one-pixel-wide blob a box of width 1 rather than 0, which Mask R-CNN
    would reject. An empty mask gets a zero box.
    """
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
        if rows.any():
            y0, y1 = np.flatnonzero(rows)[[0, -1]]
            x0, x1 = np.flatnonzero(cols)[[0, -1]]
            boxes[i] = (x0, y0, x1 + 1, y1 + 1)
    return torch.from_numpy(boxes)


def image_to_tensor(image: np.ndarray, evidence: np.ndarray | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 to (3, H, W) float32 in [0, 1]; Mask R-CNN normalises it, nothing else.

    An evidence map (H, W) in [0, 1] becomes a fourth channel.
    """
    # read_image's arrays are read-only views of PIL's buffer; torch wants a writable array.
    tensor = torch.from_numpy(np.require(image, np.uint8, ["C", "W"])).permute(2, 0, 1).float().div_(255.0)
    if evidence is None:
        return tensor
    return torch.cat([tensor, torch.from_numpy(evidence.astype(np.float32))[None]])


def collate_fn(batch):
    """Lists of images and targets: Mask R-CNN takes images of different sizes."""
    return tuple(zip(*batch))


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from the seed torch gave it."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def read_split(path: str | Path) -> pd.DataFrame:
    """A split CSV's usable rows; a missing, empty or malformed file is a DatasetError.

    Rows whose status is not `ok` should not be in a split; if some are, they are left out and
    counted in the warning printed here, never dropped silently.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} not found: run the split stage first (dvc repro split)")
    try:
        rows = pd.read_csv(path, dtype={"case_id": str, "image_path": str, "mask_path": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a readable CSV ({e})") from e
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise DatasetError(f"{path}: lacks column(s) {', '.join(missing)}")
    labels = set(rows["label"]) - set(LABELS)
    if labels:
        raise DatasetError(f"{path}: unknown label(s) {sorted(labels)}; expected {', '.join(LABELS)}")
    if "status" in rows.columns and (rows["status"] != OK_STATUS).any():
        bad = rows[rows["status"] != OK_STATUS]
        print(f"warning: {path}: leaving out {len(bad)} row(s) whose status is not ok "
              f"({', '.join(sorted(set(bad['status'])))})")
        rows = rows[rows["status"] == OK_STATUS]
    if rows.empty:
        raise DatasetError(f"{path}: no usable row; check the index (data/index.csv) for the reasons")
    return rows.reset_index(drop=True)
