"""Score detectors on a converted copy-move benchmark, with their speed.

    python -m bench cmfd --root /tmp/cvip_d0 --name cvip_d0 [--detector keypoint fusion] [--per-image FILE]

ROOT holds `test_images/` and `solution.csv` (see bench/cmfd_convert.py). For each detector it
writes, under reports/bench.json "cmfd" -> NAME -> detector: the oF1, the all-authentic floor,
the detection rate on forged images, the accuracy on authentic ones, and the median and mean
seconds per image (wall time of the detector on an image already decoded, on every core the
machine lends it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from bench.report import REPORT, machine
from stages.common.config import load_params
from stages.common.detectors import DETECTORS, needs_model, predict_image
from stages.common.io import list_images, read_image, write_csv, write_json
from stages.common.metric import read_solution, score_report, score_rows
from stages.common.model import load_model
from stages.common.rle import encode_instances
from stages.common.runtime import resolve_device

MODEL = Path("models/model.pt")


def run_detector(root: Path, detector: str, params) -> tuple[pd.DataFrame, list[float]]:
    """The submission of `detector` on ROOT/test_images, and the seconds each image took."""
    device = resolve_device(params.train.device)
    model, max_side = None, 0
    if needs_model(detector):
        model, model_params = load_model(MODEL, device)
        max_side = model_params.max_size
    rows, seconds = [], []
    for path in tqdm(list_images(root / "test_images"), desc=f"cmfd ({detector})", unit="img"):
        image = read_image(path, params.data.max_image_pixels)
        start = time.perf_counter()
        pred = predict_image(image, detector, model, device, params.infer, params.keypoint, max_side)
        seconds.append(time.perf_counter() - start)
        rows.append({"case_id": path.stem, "annotation": encode_instances(pred.instances)})
    return pd.DataFrame(rows, columns=["case_id", "annotation"]), seconds


def bench_figures(solution: pd.DataFrame, submission: pd.DataFrame, seconds: list[float]) -> dict:
    report = score_report(solution, submission)
    return {
        "of1": round(report["score"], 4),
        "all_authentic_floor": round(report["all_authentic_score"], 4),
        "forged_detection_rate": report["forged_detection_rate"],
        "authentic_accuracy": report["authentic_accuracy"],
        "forged_mean_of1": report["forged_mean"],
        "n_forged": report["n_forged"],
        "n_authentic": report["n_authentic"],
        "seconds_per_image_median": round(statistics.median(seconds), 3),
        "seconds_per_image_mean": round(statistics.fmean(seconds), 3),
    }


def update_cmfd_report(name: str, detector: str, figures: dict, path: Path = REPORT) -> None:
    """Replace one (set, detector) entry under "cmfd", keeping every other entry."""
    report = json.loads(path.read_text()) if path.is_file() else {}
    section = report.setdefault("cmfd", {})
    section.setdefault(name, {})[detector] = {**figures, "machine": machine()}
    write_json(path, report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cmfd", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, type=Path, help="folder with test_images/ and solution.csv")
    parser.add_argument("--name", required=True, help="the set's name in reports/bench.json")
    parser.add_argument("--detector", nargs="+", choices=DETECTORS, default=["keypoint"])
    parser.add_argument("--per-image", type=Path, help="also write each image's score to this CSV")
    parser.add_argument("--no-report", action="store_true", help="print only; leave reports/bench.json alone")
    args = parser.parse_args(argv)
    if not (args.root / "solution.csv").is_file():
        raise SystemExit(f"error: {args.root / 'solution.csv'} not found (convert with python -m bench.cmfd_convert)")
    params = load_params()
    solution = read_solution(args.root / "solution.csv")
    per_image = []
    for detector in args.detector:
        with torch.inference_mode():
            submission, seconds = run_detector(args.root, detector, params)
        figures = bench_figures(solution, submission, seconds)
        print(f"{args.name} {detector}: " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
        if not args.no_report:
            update_cmfd_report(args.name, detector, figures)
        scored = score_rows(solution, submission).frame.assign(detector=detector)
        per_image.append(scored.merge(pd.DataFrame({"case_id": submission["case_id"], "seconds": seconds})))
    if args.per_image:
        write_csv(args.per_image, pd.concat(per_image, ignore_index=True))


if __name__ == "__main__":
    main()
