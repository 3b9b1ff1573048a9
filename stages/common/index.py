"""The index: one row per file under a data root in the competition layout, each with a status.

Every file in the scanned folders gets exactly one row, or is named in the `mask_path` of the
forged image it belongs to. A file that cannot be used keeps its row, with a short status code
and a sentence saying why, so nothing is ever dropped silently. Only rows with status `ok` go
on to training.

Images are fully decoded through `io.read_image`, the same call training makes: a PNG cut short
still has a readable header, so a header probe alone would let it through to crash a later stage.
16-bit images are accepted (mode `I;16`): `io.read_image` scales them to 8 bits.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .io import IMAGE_SUFFIXES, InputError, load_mask, probe_image, read_image

OK = "ok"
MASK_SUFFIX = ".npy"
HASH_CHUNK_BYTES = 1 << 20
WORKER_CHUNK = 8  # files handed to a worker process at a time


@dataclass(frozen=True)
class ImageFolder:
    """A folder of images, and the folder holding the masks of its forged images."""

    source: str
    label: str
    images: str
    masks: str | None


IMAGE_FOLDERS = (
    ImageFolder("train_authentic", "authentic", "train_images/authentic", None),
    ImageFolder("train_forged", "forged", "train_images/forged", "train_masks"),
    ImageFolder("supplemental", "forged", "supplemental_images", "supplemental_masks"),
)


@dataclass(frozen=True)
class IndexRow:
    case_id: str
    source: str
    label: str
    image_path: str
    mask_path: str
    width: int | None = None
    height: int | None = None
    mode: str = ""
    n_instances: int | None = None
    forged_fraction: float | None = None
    sha1: str = ""
    status: str = OK
    reason: str = ""


INDEX_COLUMNS = tuple(f.name for f in fields(IndexRow))
INT_COLUMNS = ("width", "height", "n_instances")
FLOAT_COLUMNS = ("forged_fraction",)


@dataclass(frozen=True)
class Fault:
    """A status code and its reason, as an InputError carries them, but picklable for workers."""

    status: str
    reason: str


@dataclass(frozen=True)
class Candidate:
    """A file found by the scan: paths relative to the data root, and any fault that the folder
    listing alone reveals (no mask, an orphan, a stray file) before a byte is read."""

    case_id: str
    source: str
    label: str
    image: str = ""
    mask: str = ""
    fault: Fault | None = None


# ---------------------------------------------------------------- scanning


def scan(root: Path) -> list[Candidate]:
    """Every entry of every indexed folder, forged images paired with their masks, in a stable order."""
    candidates = [c for folder in IMAGE_FOLDERS for c in scan_image_folder(root, folder)]
    claimed_masks = {c.mask for c in candidates}
    for folder in IMAGE_FOLDERS:
        if folder.masks:
            candidates += [c for c in scan_mask_folder(root, folder) if c.mask not in claimed_masks]
    return candidates


def scan_image_folder(root: Path, folder: ImageFolder) -> list[Candidate]:
    entries = folder_entries(root, folder.images)
    images = {p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    repeated = {stem for stem, n in Counter(p.stem for p in images).items() if n > 1}
    found = []
    for path in entries:
        rel = relative(root, path)
        if path in images:
            found.append(image_candidate(root, folder, path, repeated))
        else:
            found.append(Candidate(path.stem, folder.source, folder.label, image=rel, fault=non_image(path, rel)))
    return found


def image_candidate(root: Path, folder: ImageFolder, path: Path, repeated: set[str]) -> Candidate:
    case_id, rel = path.stem, relative(root, path)
    mask = root / folder.masks / f"{case_id}{MASK_SUFFIX}" if folder.masks else None
    mask_rel = relative(root, mask) if mask is not None and mask.is_file() else ""
    fault = None
    if case_id in repeated:
        fault = Fault(
            "duplicate_case_id",
            f"{rel}: another image in {folder.images} has case_id {case_id}; "
            "which one a mask or a prediction belongs to is ambiguous",
        )
    elif mask is not None and not mask_rel:
        fault = Fault("missing_mask", f"{rel}: forged image has no mask {relative(root, mask)}")
    return Candidate(case_id, folder.source, folder.label, image=rel, mask=mask_rel, fault=fault)


def non_image(path: Path, rel: str) -> Fault:
    if (stray := stray_entry(path, rel)) is not None:
        return stray
    return Fault("not_an_image", f"{rel}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")


def scan_mask_folder(root: Path, folder: ImageFolder) -> list[Candidate]:
    """Entries of the mask folder of `folder`; each row's source is the mask folder's name."""
    found = []
    for path in folder_entries(root, folder.masks):
        rel = relative(root, path)
        found.append(Candidate(path.stem, folder.masks, "forged", mask=rel, fault=unclaimed_mask(path, rel, folder)))
    return found


def unclaimed_mask(path: Path, rel: str, folder: ImageFolder) -> Fault:
    if (stray := stray_entry(path, rel)) is not None:
        return stray
    if path.suffix.lower() != MASK_SUFFIX:
        return Fault("not_a_mask", f"{rel}: not a {MASK_SUFFIX} mask file")
    return Fault("orphan_mask", f"{rel}: no image with case_id {path.stem} in {folder.images}")


def folder_entries(root: Path, folder: str) -> list[Path]:
    path = root / folder
    return sorted(path.iterdir()) if path.is_dir() else []


def relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def stray_entry(path: Path, rel: str) -> Fault | None:
    """The fault of a folder or a broken link where files are expected; None for a file."""
    if path.is_dir():
        return Fault("unexpected_folder", f"{rel}: a folder inside an indexed folder; its contents are not indexed")
    if not path.exists():
        return Fault("unreadable", f"{rel}: a broken link")
    return None


# ---------------------------------------------------------------- checking

# Faults of entries with no image to read; an image with another fault (missing_mask,
# duplicate_case_id) is still read, so that its size and mode appear in the analysis.
FAULTS_WITHOUT_IMAGE = frozenset({"unexpected_folder", "not_an_image", "not_a_mask", "orphan_mask", "unreadable"})


def check(candidate: Candidate, root: Path, max_pixels: int) -> IndexRow:
    """The index row of one candidate: its image decoded, its mask validated, one at a time."""
    row = IndexRow(candidate.case_id, candidate.source, candidate.label, candidate.image, candidate.mask)
    primary = candidate.image or candidate.mask
    if (root / primary).is_file():
        try:
            row = replace(row, sha1=file_sha1(root / primary))
        except OSError as e:
            return failed(row, Fault("unreadable", f"{primary}: cannot read ({e.strerror or e})"))
    if candidate.fault is not None and candidate.fault.status in FAULTS_WITHOUT_IMAGE:
        return failed(row, candidate.fault)
    try:
        width, height, mode = probe_image(root / candidate.image, max_pixels)
        row = replace(row, width=width, height=height, mode=mode)
        read_image(root / candidate.image, max_pixels)
        if candidate.fault is not None:
            return failed(row, candidate.fault)
        if not candidate.mask:
            return replace(row, n_instances=0, forged_fraction=0.0)
        n_instances, forged_fraction = mask_statistics(root / candidate.mask, (height, width))
    except InputError as e:
        return failed(row, Fault(e.code, str(e)))
    return replace(row, n_instances=n_instances, forged_fraction=forged_fraction)


def mask_statistics(path: Path, image_hw: tuple[int, int]) -> tuple[int, float]:
    """(instances, share of the image covered by any instance) of a mask that must fit the image."""
    mask = load_mask(path, image_hw)
    # load_mask lifts an (H, W) mask to (1, H, W) without comparing it to the image.
    if mask.shape[1:] != image_hw:
        raise InputError(
            "mask_shape", f"{path.name}: mask shape {mask.shape[1:]} does not match image {image_hw[0]}x{image_hw[1]}"
        )
    return int(mask.shape[0]), float(mask.any(axis=0).mean())


def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def failed(row: IndexRow, fault: Fault) -> IndexRow:
    return replace(row, status=fault.status, reason=fault.reason)


# ---------------------------------------------------------------- the index as a table


def build_index(root: str | Path, max_pixels: int, workers: int = 1) -> pd.DataFrame:
    """Scan and check every file under `root`, decoding in `workers` processes.

    Raises FileNotFoundError when `root` is absent. Each worker holds one image at a time.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist or is not a folder (params: data.root)")
    candidates = scan(root)
    check_one = partial(check, root=root, max_pixels=max_pixels)
    progress = partial(tqdm, total=len(candidates), desc="index", unit="file")
    if workers <= 1:
        return rows_to_frame([check_one(c) for c in progress(candidates)])
    with ProcessPoolExecutor(workers) as pool:
        return rows_to_frame(list(progress(pool.map(check_one, candidates, chunksize=WORKER_CHUNK))))


def rows_to_frame(rows: list[IndexRow]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(r) for r in rows], columns=list(INDEX_COLUMNS))
    return frame.astype({c: "Int64" for c in INT_COLUMNS} | {c: "float64" for c in FLOAT_COLUMNS})


def read_index(path: str | Path) -> pd.DataFrame:
    """Read an index or split CSV with its column types: case_id stays a string ("00123")."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run the build-index stage first")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in INDEX_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; rebuild it with the build-index stage")
    for column in INT_COLUMNS + FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column].mask(frame[column] == ""))
    return frame.astype({c: "Int64" for c in INT_COLUMNS} | {c: "float64" for c in FLOAT_COLUMNS})


def usable_rows(index: pd.DataFrame) -> pd.DataFrame:
    return index[index["status"] == OK].reset_index(drop=True)


def status_counts(index: pd.DataFrame) -> dict[str, int]:
    """Rows per status, `ok` first, then the most frequent faults."""
    counts = index["status"].value_counts()
    faults = sorted((s for s in counts.index if s != OK), key=lambda s: (-counts[s], s))
    ordered = ([OK] if OK in counts.index else []) + faults
    return {s: int(counts[s]) for s in ordered}


def format_status_counts(index: pd.DataFrame) -> str:
    counts = status_counts(index)
    width = max((len(s) for s in counts), default=0)
    return "\n".join(f"  {s:<{width}}  {n}" for s, n in counts.items())


def no_usable_row_message(index: pd.DataFrame, root: Path, index_path: Path) -> str:
    if index.empty:
        folders = ", ".join(f.images for f in IMAGE_FOLDERS)
        return f"no files found in {root} under {folders}; is data.root the competition data folder?"
    return f"no usable image in {root}: every file has a fault; see the reason column of {index_path}"
