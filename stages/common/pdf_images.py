"""Figures embedded in PDFs: every raster image of every page, extracted with PyMuPDF.

Each image becomes one figure to screen, named `<pdf stem>-p<page>-i<image>` (both counted from
1, images in the order the page lists them), so a finding points at the page it is on.
Images too small to hold a forgery (icons, logos, rules) are skipped and counted. A PDF that
cannot be opened, or is encrypted, is named with the reason and counted; the other PDFs are
still screened. An image that cannot be decoded fails on its own, like an unreadable image file.

PyMuPDF is AGPL-3.0 licensed (see the README).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pymupdf

from .io import InputError, visible_files
from .sources import FigureSource

# MuPDF pads an image it cannot decode and carries on; its messages, not an exception, say so.
# They are collected and turned into a failure here instead of being printed.
pymupdf.TOOLS.mupdf_display_errors(False)
DECODE_TROUBLE = re.compile(r"error|truncated|premature end", re.IGNORECASE)

# The competition's smallest figure is 64x74 px; below 64 px on a side an embedded image is an
# icon, a logo or a rule, not a figure whose parts could be copied.
MIN_FIGURE_SIDE = 64


@dataclass(frozen=True)
class PdfFailure:
    name: str  # the PDF's file name
    reason: str


@dataclass
class PdfListing:
    """The figures found in some PDFs, with what was left out and why."""

    sources: list[FigureSource] = field(default_factory=list)
    n_files: int = 0
    n_skipped_small: int = 0
    failures: list[PdfFailure] = field(default_factory=list)
    without_images: list[str] = field(default_factory=list)  # readable PDFs with no raster image at all


def pdf_files(path: str | Path) -> list[Path]:
    """`path` itself if it is a file, else the PDFs directly in the folder, sorted by name (hidden
    files left out, see `io.visible_files`)."""
    path = Path(path)
    if path.is_dir():
        return [p for p in visible_files(path) if p.suffix.lower() == ".pdf"]
    return [path]


def list_pdf_figures(paths: list[Path], min_side: int = MIN_FIGURE_SIDE) -> PdfListing:
    """The figures in every PDF of `paths` (PDF files, or folders of them)."""
    listing = PdfListing()
    for pdf in (pdf for path in paths for pdf in pdf_files(path)):
        listing.n_files += 1
        try:
            add_figures_of(pdf, listing, min_side)
        except InputError as e:
            listing.failures.append(PdfFailure(pdf.name, str(e)))
    return listing


def add_figures_of(pdf: Path, listing: PdfListing, min_side: int) -> None:
    with open_pdf(pdf) as doc:
        n_images = 0
        for page in doc:
            for index, (xref, _smask, width, height, *_rest) in enumerate(page.get_images(full=True), start=1):
                n_images += 1
                if min(width, height) < min_side:
                    listing.n_skipped_small += 1
                    continue
                case_id = f"{pdf.stem}-p{page.number + 1}-i{index}"
                listing.sources.append(FigureSource(case_id, pdf, xref))
        if n_images == 0:
            listing.without_images.append(pdf.name)


def open_pdf(pdf: Path) -> pymupdf.Document:
    if not pdf.is_file():
        raise InputError("missing", f"{pdf.name}: no such file")
    pymupdf.TOOLS.reset_mupdf_warnings()
    try:
        doc = pymupdf.open(pdf, filetype="pdf")
    except Exception as e:  # PyMuPDF raises FileDataError, RuntimeError, ... for damaged files
        raise InputError("unreadable", f"{pdf.name}: not a readable PDF ({type(e).__name__}: {e})") from e
    if doc.needs_pass:
        doc.close()
        raise InputError("encrypted", f"{pdf.name}: encrypted; it needs a password to be opened")
    if doc.page_count == 0:  # MuPDF "repairs" a truncated file into an empty document
        doc.close()
        why = pymupdf.TOOLS.mupdf_warnings().splitlines()[:1] or ["no pages"]
        raise InputError("unreadable", f"{pdf.name}: no readable pages; damaged or truncated ({why[0]})")
    return doc


def read_pdf_image(source: FigureSource, max_pixels: int) -> np.ndarray:
    """One embedded image as RGB uint8 (H, W, 3); alpha is dropped, CMYK and gray converted."""
    with open_pdf(source.path) as doc:
        check_size(doc, source, max_pixels)  # before decoding: a huge image is a decompression bomb
        pymupdf.TOOLS.reset_mupdf_warnings()
        try:
            pix = pymupdf.Pixmap(doc, source.xref)
        except Exception as e:
            raise undecodable(source, f"{type(e).__name__}: {e}") from e
        trouble = [line for line in pymupdf.TOOLS.mupdf_warnings().splitlines() if DECODE_TROUBLE.search(line)]
        if trouble:
            raise undecodable(source, trouble[-1])
        return pixmap_to_rgb8(pix)


def check_size(doc: pymupdf.Document, source: FigureSource, max_pixels: int) -> None:
    try:
        width, height = (int(doc.xref_get_key(source.xref, key)[1]) for key in ("Width", "Height"))
    except ValueError as e:
        raise undecodable(source, "no valid /Width and /Height") from e
    if width * height > max_pixels:
        raise InputError("too_large", f"{source.case_id}: {width}x{height} exceeds data.max_image_pixels={max_pixels}")


def undecodable(source: FigureSource, why: str) -> InputError:
    return InputError("unreadable", f"{source.case_id}: the embedded image cannot be decoded ({why})")


def pixmap_to_rgb8(pix: pymupdf.Pixmap) -> np.ndarray:
    if pix.alpha:
        pix = pymupdf.Pixmap(pix, 0)
    if pix.colorspace is None or pix.colorspace.n != 3 or pix.n != 3:
        pix = pymupdf.Pixmap(pymupdf.csRGB, pix)
    pixels = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.stride)
    return pixels[:, : pix.width * 3].reshape(pix.height, pix.width, 3).copy()
