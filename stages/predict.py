"""Predict a folder of figures into a competition submission.

    python -m stages.predict [--images DIR] [--out FILE] [--model PATH] [--detector NAME]

Defaults: the data root's `test_images/` into `reports/submission.csv`, with the detector from
`infer.detector`. Every image is handled on its own: one that cannot be read or predicted is
written as `authentic`, named in a warning and counted in the summary. When a `solution.csv`
sits beside the images folder (the synthetic data has one), the stage scores itself.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from stages.common.config import load_params
from stages.common.detectors import DETECTORS, needs_model, predict_image
from stages.common.io import InputError, list_images, read_image, write_csv, write_json
from stages.common.metric import SubmissionError, score_report
from stages.common.model import ModelError, load_model
from stages.common.rle import encode_instances
from stages.common.runtime import resolve_device

SUBMISSION = Path("reports/submission.csv")
SUMMARY = Path("reports/predict_summary.json")
MODEL = Path("models/model.pt")


@dataclass
class PredictionRun:
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, case_id: str, annotation: str) -> None:
        self.rows.append({"case_id": case_id, "annotation": annotation})


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: <data.root>/test_images)")
    parser.add_argument("--out", type=Path, default=SUBMISSION, help=f"submission CSV (default: {SUBMISSION})")
    parser.add_argument("--model", type=Path, default=MODEL, help=f"checkpoint (default: {MODEL})")
    parser.add_argument("--detector", choices=DETECTORS, help="override infer.detector")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    params = load_params()
    images_dir = args.images or Path(params.data.root) / "test_images"
    detector = args.detector or params.infer.detector
    paths = list_images(images_dir)
    if not paths:
        print(f"error: no images found in {images_dir}", file=sys.stderr)
        return 2

    device = resolve_device(params.train.device)
    model, max_side = None, 0  # the keypoint detector needs neither
    if needs_model(detector):
        try:
            model, model_params = load_model(args.model, device)
        except ModelError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        max_side = model_params.max_size

    run = PredictionRun()
    for path in tqdm(paths, desc=f"predict ({detector})", unit="img"):
        try:
            image = read_image(path, params.data.max_image_pixels)
            pred = predict_image(image, detector, model, device, params.infer, params.keypoint, max_side)
            run.add(path.stem, encode_instances(pred.instances))
        except InputError as e:
            warn_and_skip(run, path, str(e))
        except Exception as e:  # one bad image must never cost the whole folder its predictions
            warn_and_skip(run, path, f"{path.name}: prediction failed ({type(e).__name__}: {e})")

    submission = pd.DataFrame(run.rows, columns=["case_id", "annotation"])
    write_csv(args.out, submission)
    summary = summarize_run(run, detector, images_dir)
    write_json(SUMMARY if args.out == SUBMISSION else args.out.with_suffix(".summary.json"), summary)
    print(f"wrote {args.out}: {len(run.rows)} images, {summary['n_called_forged']} called forged, "
          f"{len(run.failed)} failed and written as authentic")
    if "score" in summary:
        print(f"self-score against {summary['solution']}: oF1 {summary['score']:.4f} "
              f"(all-authentic floor {summary['all_authentic_score']:.4f})")
    return 0


def warn_and_skip(run: PredictionRun, path: Path, reason: str) -> None:
    tqdm.write(f"warning: {reason}; written as authentic")
    run.add(path.stem, "authentic")
    run.failed.append(path.name)


def summarize_run(run: PredictionRun, detector: str, images_dir: Path) -> dict:
    submission = pd.DataFrame(run.rows, columns=["case_id", "annotation"])
    summary = {
        "detector": detector,
        "n_images": len(run.rows),
        "n_called_forged": int((submission["annotation"] != "authentic").sum()),
        "n_failed": len(run.failed),
        "failed": run.failed,
    }
    solution_path = images_dir.parent / "solution.csv"
    if solution_path.is_file():
        solution = pd.read_csv(solution_path, dtype={"case_id": str})
        try:
            summary |= {"solution": str(solution_path), **score_report(solution, submission)}
        except SubmissionError as e:
            print(f"warning: cannot score against {solution_path}: {e}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    with torch.inference_mode():
        sys.exit(main())
