"""Predict a folder of figures into a competition submission.

    python -m stages.predict [--images DIR] [--pdf FILE_OR_DIR] [--out FILE] [--model PATH]
                             [--detector NAME] [--report DIR]

Defaults: the data root's `test_images/` into `reports/submission.csv`, with the detector from
`infer.detector`. Every image is handled on its own: one that cannot be read or predicted is
written as `authentic`, named in a warning and counted in the summary. When a `solution.csv`
sits beside the images folder (the synthetic data has one), the stage scores itself.
`--pdf` screens every embedded image of every page; `--report` writes the HTML evidence report.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from stages.common.config import PARAMS_FILE, load_params
from stages.common.detectors import DETECTORS, needs_model, predict_image
from stages.common.io import InputError, write_csv, write_json
from stages.common.metric import SubmissionError, score_report
from stages.common.model import ModelError, load_model
from stages.common.pdf_images import MIN_FIGURE_SIDE
from stages.common.report import Failure, add_figure, write_report
from stages.common.rle import encode_instances
from stages.common.runtime import resolve_device
from stages.common.sources import FigureSource, gather_inputs, pdf_summary, read_source

SUBMISSION = Path("reports/submission.csv")
SUMMARY = Path("reports/predict_summary.json")
MODEL = Path("models/model.pt")


@dataclass
class PredictionRun:
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # with reasons, for the report
    figures: list = field(default_factory=list)  # report entries, when a report is asked for

    def add(self, case_id: str, annotation: str) -> None:
        self.rows.append({"case_id": case_id, "annotation": annotation})


def parse_args(argv=None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: <data.root>/test_images)")
    parser.add_argument("--out", type=Path, default=SUBMISSION, help=f"submission CSV (default: {SUBMISSION})")
    parser.add_argument("--model", type=Path, default=MODEL, help=f"checkpoint (default: {MODEL})")
    parser.add_argument("--detector", choices=DETECTORS, help="override infer.detector")
    parser.add_argument("--pdf", type=Path, action="append", default=[],
                        help="a PDF, or a folder of PDFs, whose embedded images are screened (repeatable)")
    parser.add_argument("--pdf-min-side", type=int, default=MIN_FIGURE_SIDE,
                        help=f"PDF images smaller than this on a side are skipped (default: {MIN_FIGURE_SIDE})")
    parser.add_argument("--report", type=Path, help="folder for the HTML evidence report (index.html)")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help=f"params file (default: {PARAMS_FILE})")
    return parser.parse_args(argv)


def main(argv=None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    params = load_params(args.params)
    images_dir = args.images or (None if args.pdf else Path(params.data.root) / "test_images")
    detector = args.detector or params.infer.detector
    inputs = gather_inputs(images_dir, args.pdf, args.pdf_min_side)
    pdf_failures = [Failure(f.name, f.reason) for f in (inputs.pdf.failures if inputs.pdf else [])]
    for failure in pdf_failures:
        print(f"warning: {failure.reason}; skipped", file=sys.stderr)
    if not inputs.sources:
        print(f"error: no images found in {', '.join(inputs.described)}", file=sys.stderr)
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
    for source in tqdm(inputs.sources, desc=f"predict ({detector})", unit="img"):
        try:
            image = read_source(source, params.data.max_image_pixels)
            pred = predict_image(image, detector, model, device, params.infer, params.keypoint, max_side)
            run.add(source.case_id, encode_instances(pred.instances))
        except InputError as e:
            warn_and_skip(run, source, str(e))
        except Exception as e:  # one bad image must never cost the whole folder its predictions
            warn_and_skip(run, source, f"{source.name}: prediction failed ({type(e).__name__}: {e})")
        else:
            if args.report:  # outside the try: a report that cannot be written stops the run
                run.figures.append(add_figure(args.report, source.case_id, image, pred))

    submission = pd.DataFrame(run.rows, columns=["case_id", "annotation"])
    write_csv(args.out, submission)
    summary = summarize_run(run, detector, images_dir) | pdf_summary(inputs, args.pdf_min_side)
    write_json(SUMMARY if args.out == SUBMISSION else args.out.with_suffix(".summary.json"), summary)
    print(f"wrote {args.out}: {len(run.rows)} images, {summary['n_called_forged']} called forged, "
          f"{len(run.failed)} failed and written as authentic")
    if args.report:
        run_info = {**summary, "inputs": inputs.described, "params": str(args.params)}
        print(f"wrote the evidence report {write_report(args.report, run.figures, run.failures + pdf_failures, run_info)}")
    if "score" in summary:
        print(f"self-score against {summary['solution']}: oF1 {summary['score']:.4f} "
              f"(all-authentic floor {summary['all_authentic_score']:.4f})")
    return 0


def warn_and_skip(run: PredictionRun, source: FigureSource, reason: str) -> None:
    tqdm.write(f"warning: {reason}; written as authentic")
    run.add(source.case_id, "authentic")
    run.failed.append(source.name)
    run.failures.append(Failure(source.name, reason))


def summarize_run(run: PredictionRun, detector: str, images_dir: Path | None) -> dict:
    submission = pd.DataFrame(run.rows, columns=["case_id", "annotation"])
    summary = {
        "detector": detector,
        "n_images": len(run.rows),
        "n_called_forged": int((submission["annotation"] != "authentic").sum()),
        "n_failed": len(run.failed),
        "failed": run.failed,
    }
    solution_path = images_dir.parent / "solution.csv" if images_dir else None
    if solution_path and solution_path.is_file():
        solution = pd.read_csv(solution_path, dtype={"case_id": str})
        try:
            summary |= {"solution": str(solution_path), **score_report(solution, submission)}
        except SubmissionError as e:
            print(f"warning: cannot score against {solution_path}: {e}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    with torch.inference_mode():
        sys.exit(main())
