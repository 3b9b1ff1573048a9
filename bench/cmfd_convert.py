"""Turn a public copy-move benchmark folder (CVIP and its kind) into the competition's test layout.

    python -m bench.cmfd_convert --out /tmp/cvip_d0 "/tmp/CVIP/Dataset 0" "/tmp/CVIP/Dataset 3"
    python -m bench.cmfd_convert --out /tmp/cvip_d12_60 --forged 60 "/tmp/CVIP/Dataset 1-2"
    python -m bench.cmfd_convert --out /tmp/cvip_d0_jpeg75 --jpeg 75 "/tmp/CVIP/Dataset 0" "/tmp/CVIP/Dataset 3"

CMFD benchmarks ship each forged image `X.bmp` beside a binary mask `X_mask.bmp` that marks the
source and the copy: one copy-move event, so one instance. Any other image is an original,
hence authentic. The result is `OUT/test_images/<case_id>.png` and `OUT/solution.csv`
(case_id, annotation, shape), which `python -m bench cmfd` and `python -m stages.score` read.

`--forged N` / `--authentic N` keep a sample for quick runs: spread evenly over the folders the
images sit in (in CVIP Datasets 1-2, one folder per original image), drawn with `--seed`.

`--jpeg Q` saves every image as a JPEG of quality Q first (the PNG holds what a reader decodes):
the set as it reaches an analyst inside a published figure, whose journal recompressed it. CVIP
ships lossless BMPs, whose pasted copies repeat their source's noise exactly; recompression
re-quantises copy and source differently, which is the evidence the detector leans on.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from stages.common.io import IMAGE_SUFFIXES, jpeg_roundtrip, write_csv
from stages.common.rle import encode_instances

MASK_SUFFIX = "_mask"
AUTHENTIC = "authentic"
JPEG_QUALITIES = range(1, 96)  # Pillow's scale; above 95 its encoder is near lossless and not meant to be used


@dataclass(frozen=True)
class BenchmarkImage:
    case_id: str
    image: Path
    mask: Path | None  # None: an original (authentic)


def find_images(sources: list[Path]) -> list[BenchmarkImage]:
    """Every image under `sources`, paired with its `_mask` file; case ids are the file stems.

    Raises ValueError for a mask without its image, or two images with one stem (their rows in
    solution.csv would collide).
    """
    files = sorted(p for s in sources for p in Path(s).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images under {', '.join(map(str, sources))}")
    masks = {p.with_name(p.stem[: -len(MASK_SUFFIX)] + p.suffix): p for p in files if p.stem.endswith(MASK_SUFFIX)}
    orphans = sorted(str(m) for image, m in masks.items() if image not in set(files))
    if orphans:
        raise ValueError(f"mask(s) without their image: {', '.join(orphans[:3])}")
    found, seen = [], {}
    for path in files:
        if path.stem.endswith(MASK_SUFFIX):
            continue
        if path.stem in seen:
            raise ValueError(f"two images named {path.stem}: {seen[path.stem]} and {path}")
        seen[path.stem] = path
        found.append(BenchmarkImage(path.stem, path, masks.get(path)))
    return found


def sample_evenly(images: list[BenchmarkImage], count: int | None, seed: int) -> list[BenchmarkImage]:
    """`count` of the images (all when None), taken in turn from each folder, at random within it."""
    if count is None or count >= len(images):
        return images
    rng = np.random.default_rng(seed)
    folders: dict[Path, list[BenchmarkImage]] = {}
    for item in images:
        folders.setdefault(item.image.parent, []).append(item)
    queues = [list(rng.permutation(len(group))) for group in folders.values()]
    groups = list(folders.values())
    picked: list[BenchmarkImage] = []
    while len(picked) < count:
        for group, queue in zip(groups, queues):
            if queue and len(picked) < count:
                picked.append(group[queue.pop()])
    return sorted(picked, key=lambda item: item.case_id)


def read_mask(path: Path, image_hw: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as im:
        mask = np.asarray(im.convert("L")) > 127
    if mask.shape != image_hw:
        raise ValueError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, its image {image_hw[1]}x{image_hw[0]}")
    return mask


def solution_row(item: BenchmarkImage, folder: Path, jpeg: int | None = None) -> dict:
    """Write the image as PNG into `folder`, first through a JPEG of quality `jpeg` if given; its solution row."""
    with Image.open(item.image) as im:
        rgb = im.convert("RGB")
    if jpeg is not None:
        rgb = Image.fromarray(jpeg_roundtrip(np.asarray(rgb), jpeg))
    rgb.save(folder / f"{item.case_id}.png")
    if item.mask is None:
        return {"case_id": item.case_id, "annotation": AUTHENTIC, "shape": AUTHENTIC}
    mask = read_mask(item.mask, (rgb.height, rgb.width))
    if not mask.any():
        raise ValueError(f"{item.mask}: empty mask for a forged image")
    return {"case_id": item.case_id, "annotation": encode_instances([mask]),
            "shape": json.dumps([rgb.height, rgb.width])}


def convert(sources: list[Path], out: Path, n_forged: int | None = None, n_authentic: int | None = None,
            seed: int = 0, jpeg: int | None = None) -> pd.DataFrame:
    """Write OUT/test_images/ and OUT/solution.csv; returns the solution. OUT is replaced whole,
    through a temporary sibling, so a killed run leaves no half-converted set. Raises ValueError
    for a `jpeg` quality outside JPEG_QUALITIES, before anything is written."""
    if jpeg is not None and jpeg not in JPEG_QUALITIES:
        raise ValueError(f"--jpeg {jpeg}: the quality must be {JPEG_QUALITIES.start} to {JPEG_QUALITIES.stop - 1}")
    images = find_images(sources)
    chosen = (sample_evenly([i for i in images if i.mask is not None], n_forged, seed)
              + sample_evenly([i for i in images if i.mask is None], n_authentic, seed))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (staging / "test_images").mkdir()
        rows = [solution_row(item, staging / "test_images", jpeg) for item in tqdm(chosen, desc="convert", unit="img")]
        solution = pd.DataFrame(rows, columns=["case_id", "annotation", "shape"])
        write_csv(staging / "solution.csv", solution)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return solution


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cmfd_convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", type=Path, help="benchmark folders (searched recursively)")
    parser.add_argument("--out", required=True, type=Path, help="folder to write (replaced)")
    parser.add_argument("--forged", type=int, help="keep this many forged images (default: all)")
    parser.add_argument("--authentic", type=int, help="keep this many originals (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jpeg", type=int, metavar="Q", help="save each image as a JPEG of quality Q (1-95) first")
    args = parser.parse_args(argv)
    try:
        solution = convert(args.sources, args.out, args.forged, args.authentic, args.seed, args.jpeg)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e
    n_authentic = int((solution["annotation"] == AUTHENTIC).sum())
    print(f"wrote {args.out}: {len(solution) - n_authentic} forged, {n_authentic} authentic")


if __name__ == "__main__":
    main()
