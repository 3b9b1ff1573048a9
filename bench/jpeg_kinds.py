"""The keypoint detector by forgery kind on the validation figures as a journal passes them on: recompressed.

    python -m bench jpeg                                   lossless, quality 90 and 75, on the validation split
    python -m bench.jpeg_kinds --quality 85 --split train val --no-report

Every built-in figure is saved lossless after its copy is pasted (some were JPEG before the paste),
so a pasted copy repeats its source's grain exactly, and the validation table in
reports/metrics.json cannot show what a journal's recompression does: it re-quantises each 8x8
block, copy and source differently. Here each figure goes through a JPEG of each quality at its
own size (stages/common/io.py `jpeg_roundtrip`, as the CVIP sets are), then the detector. Writes
reports/bench.json "jpeg_kinds": per quality, the oF1 beside its all-authentic floor, the share of
authentic figures called forged, and per forgery kind the share of its figures called forged, of
its instances found, and the precision and recall of the masks that overlap their instances: a
recompressed copy is often found with a mask that lies on it but covers only part of it
(stages/common/kinds.py `per_kind_report`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench.cmfd_convert import JPEG_QUALITIES
from bench.report import update_report
from stages.common.config import KeypointParams, load_params
from stages.common.copymove import detect_copy_move
from stages.common.detectors import keypoint_prediction
from stages.common.evaluation import LabelledImage, labelled_images, per_image_rows, per_instance_rows, summarize
from stages.common.io import jpeg_roundtrip
from stages.common.kinds import per_kind_report, read_meta

DEFAULT_QUALITIES = (90, 75)
LOSSLESS = "lossless"


def as_published(image: np.ndarray, quality: int | None) -> np.ndarray:
    """The RGB figure as a reader decodes it after a JPEG of `quality`; unchanged where None."""
    if quality is None:
        return image
    return jpeg_roundtrip(image, quality)


def score_at(images: list[LabelledImage], meta: pd.DataFrame, quality: int | None, params: KeypointParams) -> dict:
    """The keypoint detector's oF1, false alarms and per-kind results on `images` recompressed at `quality`."""
    name = LOSSLESS if quality is None else f"q{quality}"
    preds = [keypoint_prediction(detect_copy_move(as_published(im.image, quality), params))
             for im in tqdm(images, desc=f"jpeg kinds ({name})", unit="img")]
    summary = summarize([im.truth for im in images], preds)
    kinds = per_kind_report(per_image_rows("keypoint", images, preds), meta, per_instance_rows("keypoint", images, preds))
    kept = ("n_forged", "detection_rate", "n_instances", "instances_found", "instance_precision", "instance_recall")
    forgery_kinds = {kind: {k: row[k] for k in kept if k in row} for kind, row in kinds["forgery_kind"].items()}
    return {"of1": round(summary["of1"], 4), "all_authentic_of1": round(summary["all_authentic_of1"], 4),
            "false_alarm_rate": round(1.0 - summary["authentic_accuracy"], 4), "forgery_kind": forgery_kinds}


def jpeg_kinds(images: list[LabelledImage], meta: pd.DataFrame, qualities: list[int | None], params: KeypointParams) -> dict:
    return {(LOSSLESS if q is None else f"q{q}"): score_at(images, meta, q, params) for q in qualities}


def print_table(report: dict) -> None:
    """Per quality: oF1, floor, false alarms, and per kind the figures called forged / instances
    found, then the precision / recall of the masks that overlap their instances."""
    kinds = sorted({k for row in report.values() for k in row["forgery_kind"]})
    print(f"{'':9s} {'oF1':>6s} {'floor':>6s} {'false':>6s}  " + "  ".join(f"{k:>19s}" for k in kinds))
    for name, row in report.items():
        cells = [row["forgery_kind"].get(k, {}) for k in kinds]
        print(f"{name:9s} {row['of1']:6.3f} {row['all_authentic_of1']:6.3f} {row['false_alarm_rate']:6.1%}  "
              + "  ".join(_cell(c) for c in cells))


def _cell(kind: dict) -> str:
    found = f"{kind.get('detection_rate') or 0:.0%}/{kind.get('instances_found') or 0:.0%}"
    masks = "/".join("-" if kind.get(k) is None else f"{kind[k]:.2f}" for k in ("instance_precision", "instance_recall"))
    return f"{found:>9s} {masks:>9s}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jpeg_kinds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", type=int, nargs="+", default=list(DEFAULT_QUALITIES),
                        help=f"JPEG qualities, {JPEG_QUALITIES.start}-{JPEG_QUALITIES.stop - 1} (the lossless figures are scored too)")
    parser.add_argument("--split", nargs="+", default=["val"], help="splits under data.splits_dir to score")
    parser.add_argument("--no-report", action="store_true", help="print only; leave reports/bench.json alone")
    args = parser.parse_args([] if argv is None else argv)
    bad = [q for q in args.quality if q not in JPEG_QUALITIES]
    if bad:
        raise SystemExit(f"error: --quality {bad[0]}: the quality must be {JPEG_QUALITIES.start} to {JPEG_QUALITIES.stop - 1}")
    params = load_params()
    meta = read_meta(Path(params.data.root))
    if meta is None:
        raise SystemExit(f"error: {params.data.root} has no meta.csv: the per-kind table needs the synthetic data")
    splits = Path(params.data.splits_dir)
    rows = pd.concat([pd.read_csv(splits / f"{s}.csv", dtype={"case_id": str}) for s in args.split], ignore_index=True)
    images = list(labelled_images(rows, Path(params.data.root), params.data.max_image_pixels))
    report = jpeg_kinds(images, meta, [None, *args.quality], params.keypoint)
    print_table(report)
    if not args.no_report:
        update_report("jpeg_kinds", {"splits": args.split, "n_images": len(images), **report})


if __name__ == "__main__":
    main(sys.argv[1:])
