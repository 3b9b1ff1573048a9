"""The evidence report: one self-contained HTML page, with one set of image files per figure.

`add_figure` writes a figure's files as soon as it is screened and returns a small summary of
it, so that a batch of thousands of figures never holds more than one image in memory;
`write_report` then renders the page from those summaries with Jinja2. Layout of the folder:

    index.html              the page: flagged figures first, by score; authentic ones; failures
    overlays/<case>.png     each flagged figure with its events drawn on it, for a slide or an e-mail
    figures/<case>.png      each flagged figure as it was screened, losslessly
    thumbs/<case>.jpg       a small preview of every figure

The page loads nothing from the network (no CDN, no web fonts, the style sheet is inline) and
every image is lazily loaded, so it opens from file:// with thousands of figures.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
from PIL import Image

from ..infer import Prediction
from ..io import atomic_path, write_text
from .draw import colour_of, draw_overlay, thumbnail
from .events import event_views

INDEX = "index.html"
DETECTOR_NAMES = {"keypoint": "keypoint matching", "maskrcnn": "learned model (Mask R-CNN)",
                  "fusion": "fusion of keypoint matching and the learned model"}


@dataclass(frozen=True)
class CopySummary:
    letter: str
    words: str


@dataclass(frozen=True)
class EventSummary:
    number: int
    colour: str  # hex, the same as on the overlay
    found_by: str  # keypoint | maskrcnn
    summary: str
    copies: tuple[CopySummary, ...]


@dataclass(frozen=True)
class FigureEntry:
    """One screened figure as the page shows it; paths are relative to the report folder."""

    case_id: str
    score: float
    width: int
    height: int
    thumb: str
    thumb_size: tuple[int, int]
    events: tuple[EventSummary, ...] = ()
    figure: str | None = None  # flagged figures only
    overlay: str | None = None
    overlay_size: tuple[int, int] = (0, 0)

    @property
    def flagged(self) -> bool:
        return bool(self.events)

    @classmethod
    def from_dict(cls, row: dict) -> FigureEntry:
        """The entry `dataclasses.asdict` made into JSON, back (a resumed run's kept figures)."""
        events = tuple(EventSummary(**{**e, "copies": tuple(CopySummary(**c) for c in e["copies"])})
                       for e in row["events"])
        return cls(**{**row, "events": events, "thumb_size": tuple(row["thumb_size"]),
                      "overlay_size": tuple(row["overlay_size"])})


@dataclass(frozen=True)
class Failure:
    name: str  # the file, or the PDF image's case_id
    reason: str


def add_figure(report_dir: Path, case_id: str, image: np.ndarray, prediction: Prediction) -> FigureEntry:
    """Write the figure's files into the report folder and return what the page needs of it."""
    stem = file_stem(case_id)
    small = thumbnail(image)
    thumb = save_image(report_dir, f"thumbs/{stem}.jpg", small)
    height, width = image.shape[:2]
    entry = FigureEntry(case_id, float(prediction.image_score), width, height, thumb, (small.shape[1], small.shape[0]))
    if prediction.is_authentic:
        return entry
    events = event_views(prediction)
    overlay = draw_overlay(image, events)
    return dataclasses.replace(
        entry, events=tuple(summarize_event(e) for e in events),
        figure=save_image(report_dir, f"figures/{stem}.png", image),
        overlay=save_image(report_dir, f"overlays/{stem}.png", overlay),
        overlay_size=(overlay.shape[1], overlay.shape[0]))


def summarize_event(event) -> EventSummary:
    return EventSummary(event.number, colour_of(event.number), event.found_by, event.summary,
                        tuple(CopySummary(c.letter, c.words) for c in event.copies))


def write_report(report_dir: Path, entries: list[FigureEntry], failures: list[Failure], run: dict) -> Path:
    """Render index.html; `run` describes the screening (detector, inputs, counts, self-score)."""
    flagged = sorted((e for e in entries if e.flagged), key=lambda e: (-e.score, e.case_id))
    authentic = sorted((e for e in entries if not e.flagged), key=lambda e: e.case_id)
    html = template().render(flagged=flagged, authentic=authentic, failures=failures, run=run,
                             detector_name=DETECTOR_NAMES.get(run.get("detector"), run.get("detector")))
    path = Path(report_dir) / INDEX
    write_text(path, html)
    return path


def template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("stages.common.report", "templates"),
                             autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("index.html.j2")


def file_stem(case_id: str) -> str:
    """A file name for the case: the case_id itself where it is safe, else a cleaned one with a hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_id).lstrip(".") or "_"
    if safe == case_id:
        return safe
    return f"{safe[:80]}-{hashlib.sha1(case_id.encode()).hexdigest()[:8]}"


def save_image(report_dir: Path, relative: str, image: np.ndarray) -> str:
    with atomic_path(Path(report_dir) / relative) as tmp:
        if relative.endswith(".jpg"):
            Image.fromarray(image).save(tmp, quality=85)
        else:
            Image.fromarray(image).save(tmp, compress_level=6)
    return relative
