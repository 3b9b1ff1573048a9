"""Where the figures to screen come from: image files in a folder, or images embedded in PDFs.

A `FigureSource` names one figure and says how to read it, without holding its pixels, so that a
long list of them costs little memory and can be handed to worker processes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .io import count_pages, is_image_file, page_label, read_image, visible_files


@dataclass(frozen=True)
class FigureSource:
    case_id: str  # the submission's case_id: the file's stem, `<stem>-p<page>` or `<pdf stem>-p<page>-i<image>`
    path: Path  # the image file, or the PDF that holds the image
    xref: int | None = None  # the image's object number inside the PDF; None for an image file
    page: int | None = None  # the page (from 1) of a multi-page TIFF; None for a one-page image

    @property
    def name(self) -> str:
        """How warnings and summaries name the figure: its file name, a TIFF's page, or its case_id inside a PDF."""
        if self.xref is not None:
            return self.case_id
        return page_label(self.path, self.page)


class InputsError(ValueError):
    """The inputs cannot be screened as given; the message says why and what to change."""


def folder_sources(folder: str | Path) -> tuple[list[FigureSource], list[str]]:
    """The figures in `folder`, each page of a multi-page TIFF a figure of its own, and the names of
    the files that are not screened, because their suffix is not an image's."""
    files = visible_files(folder)
    sources = [source for path in files if is_image_file(path) for source in file_sources(path)]
    return sources, [path.name for path in files if not is_image_file(path)]


def file_sources(path: Path) -> list[FigureSource]:
    pages = count_pages(path)
    if pages == 1:
        return [FigureSource(path.stem, path)]
    return [FigureSource(f"{path.stem}-p{page}", path, page=page) for page in range(1, pages + 1)]


def with_unique_case_ids(sources: list[FigureSource]) -> tuple[list[FigureSource], list[str]]:
    """The sources, each with a case_id of its own, and the names of the image files renamed for it.

    A case_id is a file's stem, so `fig1.png` and `fig1.tif` would share one, and the submission
    would hold one answer twice and lose the other; such files are named by their whole file name
    instead. Raises InputsError where names still clash (a PDF of one name in two folders).
    """
    shared = Counter(s.case_id for s in sources)
    clashing_files = {s.path for s in sources if shared[s.case_id] > 1 and s.xref is None}  # every page of them
    unique = [by_file_name(s) if s.path in clashing_files and s.xref is None else s for s in sources]
    clashes = sorted(case_id for case_id, n in Counter(s.case_id for s in unique).items() if n > 1)
    if clashes:
        raise InputsError(f"several inputs would be named {', '.join(clashes)} in the submission; "
                          "rename the files, or screen them in separate runs")
    return unique, [u.case_id for s, u in zip(sources, unique) if u is not s]


def by_file_name(source: FigureSource) -> FigureSource:
    """An image file's source named by its whole file name: `fig1.tif`, or `fig1.tif-p2` for a page."""
    return replace(source, case_id=source.path.name + source.case_id.removeprefix(source.path.stem))


def read_source(source: FigureSource, max_pixels: int) -> np.ndarray:
    """The figure as RGB uint8 (H, W, 3); raises InputError when it cannot be used."""
    if source.xref is None:
        return read_image(source.path, max_pixels, source.page)
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
        inputs.sources, inputs.not_images = folder_sources(images_dir)
        inputs.described.append(f"images in {images_dir}")
    if pdfs:
        from .pdf_images import list_pdf_figures  # (see read_source)

        inputs.pdf = list_pdf_figures(pdfs, min_pdf_side)
        inputs.sources += inputs.pdf.sources
        inputs.described += [f"PDFs in {path}" if path.is_dir() else f"PDF {path}" for path in pdfs]
    inputs.sources, inputs.renamed = with_unique_case_ids(inputs.sources)
    return inputs


def paged_files(inputs: Inputs) -> list[str]:
    """The multi-page TIFFs, whose pages are screened one by one."""
    return sorted({s.path.name for s in inputs.sources if s.page is not None})


def folder_summary(inputs: Inputs) -> dict:
    """What the summary says of the folder's files: those not screened, those renamed, those paged."""
    return {"n_not_images": len(inputs.not_images), "not_images": inputs.not_images, "renamed": inputs.renamed,
            "paged": paged_files(inputs)}


def pdf_summary(inputs: Inputs, min_pdf_side: int) -> dict:
    if inputs.pdf is None:
        return {}
    return {"n_pdfs": inputs.pdf.n_files, "n_pdf_images": len(inputs.pdf.sources),
            "n_pdf_skipped_small": inputs.pdf.n_skipped_small, "pdf_min_side": min_pdf_side,
            "pdf_without_images": inputs.pdf.without_images, "n_pdf_failed": len(inputs.pdf.failures),
            "pdf_failed": [{"file": f.name, "reason": f.reason} for f in inputs.pdf.failures]}
