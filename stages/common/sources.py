"""Where the figures to screen come from: image files in a folder, or images embedded in PDFs.

A `FigureSource` names one figure and says how to read it, without holding its pixels, so that a
long list of them costs little memory and can be handed to worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import list_images, read_image


@dataclass(frozen=True)
class FigureSource:
    case_id: str  # the submission's case_id: the file's stem, or `<pdf stem>-p<page>-i<image>`
    path: Path  # the image file, or the PDF that holds the image
    xref: int | None = None  # the image's object number inside the PDF; None for an image file

    @property
    def name(self) -> str:
        """How warnings and summaries name the figure: its file name, or its case_id inside a PDF."""
        return self.path.name if self.xref is None else self.case_id


def folder_sources(folder: str | Path) -> list[FigureSource]:
    return [FigureSource(path.stem, path) for path in list_images(folder)]


def read_source(source: FigureSource, max_pixels: int) -> np.ndarray:
    """The figure as RGB uint8 (H, W, 3); raises InputError when it cannot be used."""
    if source.xref is None:
        return read_image(source.path, max_pixels)
    from .pdf_images import read_pdf_image  # here, not above: pdf_images imports this module

    return read_pdf_image(source, max_pixels)


@dataclass
class Inputs:
    """Everything one run screens: the figures, and what the PDFs left out."""

    sources: list[FigureSource]
    described: list[str]  # the folders and PDFs, for people
    pdf: object | None = None  # a pdf_images.PdfListing when PDFs were given


def gather_inputs(images_dir: Path | None, pdfs: list[Path], min_pdf_side: int) -> Inputs:
    """The images in `images_dir` (if any), then every figure in the PDFs, in that order."""
    inputs = Inputs([], [])
    if images_dir is not None:
        inputs.sources += folder_sources(images_dir)
        inputs.described.append(f"images in {images_dir}")
    if pdfs:
        from .pdf_images import list_pdf_figures  # (see read_source)

        inputs.pdf = list_pdf_figures(pdfs, min_pdf_side)
        inputs.sources += inputs.pdf.sources
        inputs.described += [f"PDFs in {path}" if path.is_dir() else f"PDF {path}" for path in pdfs]
    return inputs


def pdf_summary(inputs: Inputs, min_pdf_side: int) -> dict:
    if inputs.pdf is None:
        return {}
    return {"n_pdfs": inputs.pdf.n_files, "n_pdf_images": len(inputs.pdf.sources),
            "n_pdf_skipped_small": inputs.pdf.n_skipped_small, "pdf_min_side": min_pdf_side,
            "pdf_without_images": inputs.pdf.without_images, "n_pdf_failed": len(inputs.pdf.failures),
            "pdf_failed": [{"file": f.name, "reason": f.reason} for f in inputs.pdf.failures]}
