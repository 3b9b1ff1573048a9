"""Predict a folder of figures, or the figures in PDFs, into a competition submission, on every
core or on a Dask cluster, with an HTML evidence report if asked.

    python -m stages.predict [--images DIR] [--pdf FILE_OR_DIR] [--out FILE] [--model PATH]
                             [--detector NAME] [--report DIR] [--workers N | --scheduler ADDRESS] [--resume]

Defaults: the data root's `test_images/` into `reports/submission.csv`, with the detector from
`infer.detector`, on as many worker processes as this process has cores. Every figure is handled
on its own: one that cannot be read or predicted is written as `authentic`, named in a warning
and counted in the summary. Files of the folder that are not images are named and counted
too, and files that share a stem (fig1.png, fig1.tif) are named by their whole file name, so each
keeps its own row; each page of a multi-page TIFF is a figure of its own (`fig1-p2`). Rows are kept in chunks as they come, so `--resume` continues a
killed run. When a `solution.csv` sits beside the images folder, the stage scores itself.
`--pdf` screens every embedded image of every page; `--report` writes the evidence report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from stages.common.config import PARAMS_FILE, load_params
from stages.common.detectors import DETECTORS, needs_model
from stages.common.io import IMAGE_SUFFIXES, write_csv, write_json
from stages.common.journal import ResumeError, close_journal, journaled, open_journal
from stages.common.model import ModelError
from stages.common.pdf_images import MIN_FIGURE_SIDE
from stages.common.report import Failure, write_report
from stages.common.runtime import resolve_threads
from stages.common.screening import (ClusterError, ScreeningSetup, prepare_process, run_fingerprint, screen,
                                     submission_frame, summarize)
from stages.common.sources import Inputs, InputsError, folder_summary, gather_inputs, paged_files, pdf_summary

SUBMISSION = Path("reports/submission.csv")
SUMMARY = Path("reports/predict_summary.json")
MODEL = Path("models/model.pt")


def parse_args(argv=None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: <data.root>/test_images)")
    parser.add_argument("--pdf", type=Path, action="append", default=[],
                        help="a PDF, or a folder of PDFs, whose embedded images are screened (repeatable)")
    parser.add_argument("--pdf-min-side", type=int, default=MIN_FIGURE_SIDE,
                        help=f"PDF images smaller than this on a side are skipped (default: {MIN_FIGURE_SIDE})")
    parser.add_argument("--out", type=Path, default=SUBMISSION, help=f"submission CSV (default: {SUBMISSION})")
    parser.add_argument("--model", type=Path, default=MODEL, help=f"checkpoint (default: {MODEL})")
    parser.add_argument("--detector", choices=DETECTORS, help="override infer.detector")
    parser.add_argument("--report", type=Path, help="folder for the HTML evidence report (index.html)")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help=f"params file (default: {PARAMS_FILE})")
    parser.add_argument("--workers", type=int, help="local worker processes, one thread each (default: train.threads)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:8786): run on its workers instead")
    parser.add_argument("--resume", action="store_true", help="keep the rows of a killed run and predict the rest")
    parser.add_argument("--chunk", type=int, default=100, help="rows per resumable chunk (default: 100)")
    args = parser.parse_args(argv)
    if (args.workers is not None and args.workers < 1) or args.chunk < 1:
        parser.error("--workers and --chunk must be at least 1")
    return args


def main(argv=None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    params = load_params(args.params)
    images_dir = args.images or (None if args.pdf else Path(params.data.root) / "test_images")
    detector = args.detector or params.infer.detector
    try:
        inputs = gather_inputs(images_dir, args.pdf, args.pdf_min_side)
    except InputsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    explain_names(inputs)
    pdf_failures = [Failure(f.name, f.reason) for f in (inputs.pdf.failures if inputs.pdf else [])]
    for failure in pdf_failures:
        print(f"warning: {failure.reason}; skipped", file=sys.stderr)
    if not inputs.sources:
        print(f"error: no images found in {', '.join(inputs.described)}", file=sys.stderr)
        return 2
    setup = ScreeningSetup(detector, str(args.model.resolve()) if needs_model(detector) else "", params.train.device,
                           params.data.max_image_pixels, params.infer, params.keypoint,
                           str(args.report.resolve()) if args.report else "")
    try:
        prepare_process(setup)  # a missing or wrong checkpoint stops the run here, not in every worker
        fingerprint = run_fingerprint(setup, ([images_dir] if images_dir else []) + args.pdf)
        kept = open_journal(args.out, fingerprint, args.resume)
    except (ModelError, ResumeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wanted = {s.case_id for s in inputs.sources}
    kept = [r for r in kept if r.case_id in wanted]
    done = {r.case_id for r in kept}
    todo = [s for s in inputs.sources if s.case_id not in done]
    if kept:
        print(f"resuming: {len(kept)} rows kept from the interrupted run, {len(todo)} images to go")
    workers = args.workers or resolve_threads(params.train.threads)
    runner, where = screen(todo, setup, workers, args.scheduler)
    new = []
    try:
        for result in tqdm(journaled(runner, args.out, args.chunk), total=len(inputs.sources), initial=len(kept),
                           desc=f"predict ({detector}, {where})", unit="img"):
            new.append(result)
            if result.failure:
                tqdm.write(f"warning: {result.failure}; written as authentic")
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    by_case = {r.case_id: r for r in kept + new}
    results = [by_case[s.case_id] for s in inputs.sources]

    write_csv(args.out, submission_frame(results))
    solution = images_dir.parent / "solution.csv" if images_dir else None
    summary = summarize(results, detector, solution) | folder_summary(inputs) | pdf_summary(inputs, args.pdf_min_side)
    write_json(SUMMARY if args.out == SUBMISSION else args.out.with_suffix(".summary.json"), summary)
    close_journal(args.out)
    if args.report:
        failures = [Failure(r.name, r.failure) for r in results if r.failure] + pdf_failures
        run_info = {**summary, "inputs": inputs.described, "params": str(args.params)}
        entries = [r.report for r in results if r.report is not None]
        print(f"wrote the evidence report {write_report(args.report, entries, failures, run_info)}")
    report(args.out, summary, len(kept))
    return 0


def explain_names(inputs: Inputs) -> None:
    """Say which files of the folder are not screened, which rows are named by their file name, and which
    files are screened page by page."""
    if inputs.not_images:
        print(f"note: {len(inputs.not_images)} file(s) not screened, their type not one of "
              f"{', '.join(IMAGE_SUFFIXES)}: {', '.join(inputs.not_images)}", file=sys.stderr)
    if inputs.renamed:
        print(f"note: files that share a name but not a suffix are named by their whole file name: "
              f"{', '.join(inputs.renamed)}", file=sys.stderr)
    if paged := paged_files(inputs):
        print(f"note: multi-page TIFFs screened page by page, as <name>-p<page>: {', '.join(paged)}", file=sys.stderr)


def report(out: Path, summary: dict, n_kept: int) -> None:
    print(f"wrote {out}: {summary['n_images']} images ({n_kept} kept from an interrupted run), "
          f"{summary['n_called_forged']} called forged, {summary['n_failed']} failed and written as authentic")
    if summary["n_retried"]:
        print(f"retried after a worker was lost: {', '.join(summary['retried'])}")
    if "score_error" in summary:
        print(f"warning: {summary['score_error']}", file=sys.stderr)
    if "score" in summary:
        print(f"self-score against {summary['solution']}: oF1 {summary['score']:.4f} "
              f"(all-authentic floor {summary['all_authentic_score']:.4f})")


if __name__ == "__main__":
    with torch.inference_mode():
        sys.exit(main())
