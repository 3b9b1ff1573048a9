"""Where the figures to screen come from: image files in a folder, or images embedded in PDFs.

A `FigureSource` names one figure and says how to read it, without holding its pixels, so that a
long list of them costs little memory and can be handed to worker processes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
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


class InputsError(ValueError):
    """The inputs cannot be screened as given; the message says why and what to change."""


def folder_sources(folder: str | Path) -> list[FigureSource]:
    return [FigureSource(path.stem, path) for path in list_images(folder)]


def not_images(folder: str | Path) -> list[str]:
    """Names of the files directly in `folder` that are not screened, because their suffix is not an image's."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    screened = set(list_images(folder))
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p not in screened)


def with_unique_case_ids(sources: list[FigureSource]) -> tuple[list[FigureSource], list[str]]:
    """The sources, each with a case_id of its own, and the names of the image files renamed for it.

    A case_id is a file's stem, so `fig1.png` and `fig1.tif` would share one, and the submission
    would hold one answer twice and lose the other; such files are named by their whole file name
    instead. Raises InputsError where names still clash (a PDF of one name in two folders).
    """
    shared = Counter(s.case_id for s in sources)
    unique = [replace(s, case_id=s.path.name) if shared[s.case_id] > 1 and s.xref is None else s for s in sources]
    clashes = sorted(case_id for case_id, n in Counter(s.case_id for s in unique).items() if n > 1)
    if clashes:
        raise InputsError(f"several inputs would be named {', '.join(clashes)} in the submission; "
                          "rename the files, or screen them in separate runs")
    return unique, [u.case_id for s, u in zip(sources, unique) if u is not s]


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
    not_images: list[str] = field(default_factory=list)  # files of the folder that are not screened
    renamed: list[str] = field(default_factory=list)  # image files named by their file name (with_unique_case_ids)


def gather_inputs(images_dir: Path | None, pdfs: list[Path], min_pdf_side: int) -> Inputs:
    """The images in `images_dir` (if any), then every figure in the PDFs, in that order, each with
    a case_id of its own; raises InputsError where no such names can be given."""
    inputs = Inputs([], [])
    if images_dir is not None:
        inputs.sources += folder_sources(images_dir)
        inputs.not_images = not_images(images_dir)
        inputs.described.append(f"images in {images_dir}")
    if pdfs:
        from .pdf_images import list_pdf_figures  # (see read_source)

        inputs.pdf = list_pdf_figures(pdfs, min_pdf_side)
        inputs.sources += inputs.pdf.sources
        inputs.described += [f"PDFs in {path}" if path.is_dir() else f"PDF {path}" for path in pdfs]
    inputs.sources, inputs.renamed = with_unique_case_ids(inputs.sources)
    return inputs


def folder_summary(inputs: Inputs) -> dict:
    """What the summary says of the folder's files: those not screened, and those renamed."""
    return {"n_not_images": len(inputs.not_images), "not_images": inputs.not_images, "renamed": inputs.renamed}


def pdf_summary(inputs: Inputs, min_pdf_side: int) -> dict:
    if inputs.pdf is None:
        return {}
    return {"n_pdfs": inputs.pdf.n_files, "n_pdf_images": len(inputs.pdf.sources),
            "n_pdf_skipped_small": inputs.pdf.n_skipped_small, "pdf_min_side": min_pdf_side,
            "pdf_without_images": inputs.pdf.without_images, "n_pdf_failed": len(inputs.pdf.failures),
            "pdf_failed": [{"file": f.name, "reason": f.reason} for f in inputs.pdf.failures]}
