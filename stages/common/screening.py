"""Screening a corpus of figures: one task per image, here, on every core, or on a Dask cluster.

A task (`screen_source`) reads its own figure (an image file, or an image inside a PDF), runs
the chosen detector and returns a small picklable `ImageResult`: the submission row, the image
score, what each instance is (a keypoint-verified copy with its transforms, or the model's own),
why a figure that could not be predicted was written as `authentic`, and, when an evidence
report is asked for, the figure's entry in it (the task writes the figure's report files
itself). So images stream from disk to the workers, never through one process, and the results
of any runner are the same values in the same order.

Every process that runs tasks holds one torch and one OpenCV thread: the cores are spent as
processes, one image each. That is faster than threads on one image (predict's speed-up at two
workers is in reports/bench.json), and it keeps the output the same bytes however many
workers run: torch's sums split their work by thread count, so a model's scores move in the
last bits with it, and a score at a threshold can flip an answer.

- `screen_here`: in this process;
- `screen_on_pool`: a pool of N local processes, each loading the model once;
- `screen_on_cluster`: a Dask distributed cluster; the workers read the images from a path they
  share (and the report folder, when there is one). A task on a worker that dies is run again elsewhere; the result says how many times
  it was started, so predict can report what was retried.
"""
from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from .config import InferParams, KeypointParams
from .detectors import needs_model, predict_with_evidence
from .infer import Prediction
from .io import InputError
from .keypoint import CopyMoveInstance
from .metric import SubmissionError, score_report
from .model import load_model
from .report import FigureEntry, add_figure
from .rle import encode_instances
from .runtime import apply_threads, resolve_device
from .sources import FigureSource, read_source

START_TOPIC = "forgery-detect-screening-start"  # Dask event a task logs when it starts on a worker
IN_FLIGHT_PER_WORKER = 4  # tasks submitted ahead of the one being collected: keeps workers busy, memory flat


class ClusterError(RuntimeError):
    """The Dask scheduler cannot be reached."""


@dataclass(frozen=True)
class ScreeningSetup:
    """Everything a task needs besides its figure; sent to every worker."""

    detector: str
    model_path: str  # absolute, so workers elsewhere find it; "" for the keypoint detector
    device: str  # train.device
    max_image_pixels: int
    infer: InferParams
    keypoint: KeypointParams
    report_dir: str = ""  # where each task writes its figure's evidence-report files; "" for no report


@dataclass(frozen=True)
class InstanceEvidence:
    """What one predicted instance is, cheap to carry: the mask itself is in the annotation."""

    source: str  # "keypoint": a verified copy; "model": the Mask R-CNN's own detection
    area: int  # pixels at the original size
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) at the original size
    score: float | None  # the keypoint instance's score; None for the model's own
    transforms: tuple[tuple[float, ...], ...] = ()  # 2x3 source -> copy affine maps, row-major
    n_inliers: int = 0


@dataclass(frozen=True)
class ImageResult:
    """One figure's outcome: its submission row, and the evidence behind it."""

    name: str  # the file name, or the case_id of an image inside a PDF
    case_id: str
    annotation: str
    image_score: float
    image_hw: tuple[int, int] | None  # None when the image could not be read
    instances: tuple[InstanceEvidence, ...] = ()
    failure: str = ""  # why it was written as `authentic` without a prediction; "" when it was predicted
    attempts: int = 1  # times its task was started (more than 1: retried after a worker was lost)
    report: FigureEntry | None = None  # the figure in the evidence report, when one is written

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> ImageResult:
        instances = tuple(InstanceEvidence(**{**i, "bbox": tuple(i["bbox"]),
                                              "transforms": tuple(tuple(t) for t in i["transforms"])})
                          for i in row["instances"])
        hw = tuple(row["image_hw"]) if row["image_hw"] is not None else None
        report = FigureEntry.from_dict(row["report"]) if row.get("report") else None
        return cls(**{**row, "instances": instances, "image_hw": hw, "report": report})


# ---------------------------------------------------------------- one task


_process_state: dict[str, tuple] = {}  # model path -> (model, max_side), loaded once per process
_process_lock = threading.Lock()  # a Dask worker may run tasks on several threads


def prepare_process(setup: ScreeningSetup) -> tuple:
    """Set this process's threads and load the model, once; return (model, max_side)."""
    with _process_lock:
        if setup.model_path not in _process_state:
            apply_threads(1)
            loaded = (None, 0)
            if needs_model(setup.detector):
                model, model_params = load_model(setup.model_path, resolve_device(setup.device))
                loaded = (model, model_params.max_size)
            _process_state[setup.model_path] = loaded
        return _process_state[setup.model_path]


def screen_source(source: FigureSource, setup: ScreeningSetup) -> ImageResult:
    """One figure through the detector; a figure that cannot be read or predicted is a failure, never an exception."""
    model, max_side = prepare_process(setup)
    try:
        image = read_source(source, setup.max_image_pixels)
    except InputError as e:
        return failed(source, str(e))
    try:
        with torch.inference_mode():
            pred, keypoint_instances = predict_with_evidence(
                image, setup.detector, model, resolve_device(setup.device), setup.infer, setup.keypoint, max_side)
    except Exception as e:  # one bad figure must never cost the corpus its predictions
        return failed(source, f"{source.name}: prediction failed ({type(e).__name__}: {e})", image.shape[:2])
    # Outside the try: a report that cannot be written stops the run rather than hide a figure.
    entry = add_figure(Path(setup.report_dir), source.case_id, image, pred) if setup.report_dir else None
    return ImageResult(source.name, source.case_id, encode_instances(pred.instances), float(pred.image_score),
                       image.shape[:2], explain(pred, keypoint_instances), report=entry)


def failed(source: FigureSource, reason: str, image_hw: tuple[int, int] | None = None) -> ImageResult:
    return ImageResult(source.name, source.case_id, "authentic", 0.0, image_hw, failure=reason)


def explain(pred: Prediction, keypoint_instances: list[CopyMoveInstance]) -> tuple[InstanceEvidence, ...]:
    by_mask = {id(kp.mask): kp for kp in keypoint_instances}  # fusion keeps the keypoint masks themselves
    evidence = []
    for mask in pred.instances:
        ys, xs = np.nonzero(mask)
        bbox = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else (0, 0, 0, 0)
        kp = by_mask.get(id(mask))
        if kp is None:
            evidence.append(InstanceEvidence("model", int(len(xs)), bbox, None))
        else:
            transforms = tuple(tuple(float(v) for v in t.ravel()) for t in kp.transforms)
            evidence.append(InstanceEvidence("keypoint", int(len(xs)), bbox, float(kp.score), transforms, kp.n_inliers))
    return tuple(evidence)


# ---------------------------------------------------------------- runners


def screen(sources: list[FigureSource], setup: ScreeningSetup, workers: int,
           scheduler: str | None = None) -> tuple[Iterator[ImageResult], str]:
    """The runner predict asked for, and how to say where it runs."""
    if scheduler:
        return screen_on_cluster(sources, setup, scheduler), f"on {scheduler}"
    if min(workers, len(sources)) > 1:
        return screen_on_pool(sources, setup, workers), f"{workers} workers"
    return screen_here(sources, setup), "1 process"


def screen_here(sources: Iterable[FigureSource], setup: ScreeningSetup) -> Iterator[ImageResult]:
    for source in sources:
        yield screen_source(source, setup)


def screen_on_pool(sources: Iterable[FigureSource], setup: ScreeningSetup, workers: int) -> Iterator[ImageResult]:
    """N worker processes, one thread each; results in the input's order."""
    # Not a plain fork: a child forked from a process whose OpenMP pool has run can hang. A fork
    # server starts clean, imports this module once, and forks each worker from that.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=context, initializer=prepare_process, initargs=(setup,)) as pool:
        yield from in_order(lambda source: pool.submit(screen_source, source, setup), sources,
                            IN_FLIGHT_PER_WORKER * workers)


def screen_on_cluster(sources: Iterable[FigureSource], setup: ScreeningSetup, address: str) -> Iterator[ImageResult]:
    """Tasks on the Dask cluster at `address`; results in the input's order.

    A worker that dies takes its running task with it; the scheduler runs the task again on
    another worker (up to `distributed.scheduler.allowed-failures` times, then the image is a
    failure). Each start is logged as an event, so each result carries its number of starts.
    """
    from distributed import Client, KilledWorker

    starts: collections.Counter[str] = collections.Counter()
    run = uuid.uuid4().hex[:8]
    try:
        client = Client(address, timeout="30s")
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from e
    with client:
        client.subscribe_topic(START_TOPIC, lambda event: starts.update([event[1]["case_id"]]))
        workers = max(1, sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()))

        def submit(source: FigureSource):
            return source, client.submit(screen_source_on_worker, source, setup,
                                         key=f"screen-{run}-{source.case_id}", pure=False)

        def collect(submitted) -> ImageResult:
            source, future = submitted
            try:
                result = future.result()
            except KilledWorker as e:
                result = failed(source, f"{source.name}: every worker that ran it died ({e})")
            future.release()
            return dataclasses.replace(result, attempts=max(1, starts[source.case_id]))

        yield from in_order(submit, sources, IN_FLIGHT_PER_WORKER * workers, collect)


def screen_source_on_worker(source: FigureSource, setup: ScreeningSetup) -> ImageResult:
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(START_TOPIC, {"case_id": source.case_id, "worker": worker.address})
    return screen_source(source, setup)


def in_order(submit: Callable, items: Iterable, window: int,
             collect: Callable = lambda future: future.result()) -> Iterator:
    """Submit up to `window` items ahead; yield their results in submission order."""
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append(submit(item))
        if len(pending) >= window:
            yield collect(pending.popleft())
    while pending:
        yield collect(pending.popleft())


# ---------------------------------------------------------------- the run's outputs


def run_fingerprint(setup: ScreeningSetup, inputs: list[Path]) -> dict:
    """What a resumed run must share with the killed one; how and where it runs may differ."""
    stat = Path(setup.model_path).stat() if setup.model_path else None
    model = f"{stat.st_size}:{stat.st_mtime_ns}" if stat else ""
    return {**dataclasses.asdict(setup), "inputs": [str(p.resolve()) for p in inputs], "model": model}


def submission_frame(results: list[ImageResult]) -> pd.DataFrame:
    return pd.DataFrame([(r.case_id, r.annotation) for r in results], columns=["case_id", "annotation"])


def summarize(results: list[ImageResult], detector: str, solution_path: Path | None) -> dict:
    """Counts, failures, retries, and the self-score when a solution file exists."""
    submission = submission_frame(results)
    summary = {
        "detector": detector,
        "n_images": len(results),
        "n_called_forged": int((submission["annotation"] != "authentic").sum()),
        "n_failed": sum(bool(r.failure) for r in results),
        "failed": [r.name for r in results if r.failure],
        "n_retried": sum(r.attempts > 1 for r in results),
        "retried": [r.name for r in results if r.attempts > 1],
    }
    if solution_path is not None and solution_path.is_file():
        solution = pd.read_csv(solution_path, dtype={"case_id": str})
        try:
            summary |= {"solution": str(solution_path), **score_report(solution, submission)}
        except SubmissionError as e:
            summary["score_error"] = f"cannot score against {solution_path}: {e}"
    return summary
