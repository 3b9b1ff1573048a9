"""Predict a folder of figures into a competition submission, on every core or on a Dask cluster.

    python -m stages.predict [--images DIR] [--out FILE] [--model PATH] [--detector NAME]
                             [--workers N | --scheduler ADDRESS] [--resume]

Defaults: the data root's `test_images/` into `reports/submission.csv`, with the detector from
`infer.detector`, on as many worker processes as this process has cores. Every image is handled
on its own: one that cannot be read or predicted is written as `authentic`, named in a warning
and counted in the summary. Rows are kept in chunks as they come, so `--resume` continues a
killed run. When a `solution.csv` sits beside the images folder, the stage scores itself.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from stages.common.config import load_params
from stages.common.detectors import DETECTORS, needs_model
from stages.common.io import list_images, write_csv, write_json
from stages.common.journal import ResumeError, close_journal, journaled, open_journal
from stages.common.model import ModelError
from stages.common.runtime import resolve_threads
from stages.common.screening import (ClusterError, ScreeningSetup, prepare_process, run_fingerprint, screen,
                                     submission_frame, summarize)

SUBMISSION = Path("reports/submission.csv")
SUMMARY = Path("reports/predict_summary.json")
MODEL = Path("models/model.pt")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: <data.root>/test_images)")
    parser.add_argument("--out", type=Path, default=SUBMISSION, help=f"submission CSV (default: {SUBMISSION})")
    parser.add_argument("--model", type=Path, default=MODEL, help=f"checkpoint (default: {MODEL})")
    parser.add_argument("--detector", choices=DETECTORS, help="override infer.detector")
    parser.add_argument("--workers", type=int, help="local worker processes, one thread each (default: train.threads)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:8786): run on its workers instead")
    parser.add_argument("--resume", action="store_true", help="keep the rows of a killed run and predict the rest")
    parser.add_argument("--chunk", type=int, default=100, help="rows per resumable chunk (default: 100)")
    args = parser.parse_args(argv)
    if (args.workers is not None and args.workers < 1) or args.chunk < 1:
        parser.error("--workers and --chunk must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    params = load_params()
    images_dir = args.images or Path(params.data.root) / "test_images"
    detector = args.detector or params.infer.detector
    paths = list_images(images_dir)
    if not paths:
        print(f"error: no images found in {images_dir}", file=sys.stderr)
        return 2
    workers = args.workers or resolve_threads(params.train.threads)
    setup = ScreeningSetup(detector, str(args.model.resolve()) if needs_model(detector) else "", params.train.device,
                           params.data.max_image_pixels, params.infer, params.keypoint)
    try:
        prepare_process(setup)  # a missing or wrong checkpoint stops the run here, not in every worker
        kept = open_journal(args.out, run_fingerprint(setup, images_dir), args.resume)
    except (ModelError, ResumeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    kept = [r for r in kept if r.name in {p.name for p in paths}]
    todo = [p for p in paths if p.name not in {r.name for r in kept}]
    runner, where = screen(todo, setup, workers, args.scheduler)
    if kept:
        print(f"resuming: {len(kept)} rows kept from the interrupted run, {len(todo)} images to go")
    new = []
    try:
        for result in tqdm(journaled(runner, args.out, args.chunk), total=len(paths), initial=len(kept),
                           desc=f"predict ({detector}, {where})", unit="img"):
            new.append(result)
            if result.failure:
                tqdm.write(f"warning: {result.failure}; written as authentic")
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    by_name = {r.name: r for r in kept + new}
    results = [by_name[p.name] for p in paths]

    write_csv(args.out, submission_frame(results))
    summary = summarize(results, detector, images_dir.parent / "solution.csv")
    write_json(SUMMARY if args.out == SUBMISSION else args.out.with_suffix(".summary.json"), summary)
    close_journal(args.out)
    report(args.out, summary, len(kept))
    return 0


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
