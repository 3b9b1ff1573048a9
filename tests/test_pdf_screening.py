"""Screening PDFs: every embedded image is a figure named by file, page and image; bad PDFs are named."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pymupdf
import pytest
from PIL import Image

from screening_inputs import authentic_figure, figures_pdf, forged_figure
from stages import predict
from stages.common.io import InputError
from stages.common.pdf_images import list_pdf_figures, read_pdf_image

ICON = np.full((24, 24, 3), 200, np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def two_figures_on_one_page(path):
    doc = pymupdf.open()
    page = doc.new_page(width=600, height=800)
    page.insert_image(pymupdf.Rect(20, 20, 440, 340), stream=png_bytes(forged_figure()))
    page.insert_image(pymupdf.Rect(20, 400, 420, 700), stream=png_bytes(authentic_figure()))
    doc.save(path)
    return path


def undecodable_image_pdf(path, tmp_path):
    """A PDF whose only image claims to be a JPEG but holds garbage."""
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(authentic_figure()).save(jpeg, quality=90)
    import img2pdf

    doc = pymupdf.open(stream=img2pdf.convert([str(jpeg)]), filetype="pdf")
    xref = doc[0].get_images(full=True)[0][0]
    doc.update_stream(xref, b"\xff\xd8\xff\xe0 not a jpeg " * 20, compress=False)
    doc.xref_set_key(xref, "Filter", "/DCTDecode")
    doc.save(path)
    return path


def test_predict_screens_a_pdf_and_finds_the_forged_figure(tmp_path):
    pdf = figures_pdf(tmp_path / "paper.pdf", [authentic_figure(), forged_figure(), ICON])
    out, report = tmp_path / "sub.csv", tmp_path / "out"
    assert predict.main(["--pdf", str(pdf), "--detector", "keypoint", "--report", str(report),
                         "--out", str(out)]) == 0
    calls = pd.read_csv(out, dtype=str).set_index("case_id")["annotation"]
    assert list(calls.index) == ["paper-p1-i1", "paper-p2-i1"]  # the icon on page 3 is skipped
    assert calls["paper-p1-i1"] == "authentic" and calls["paper-p2-i1"] != "authentic"
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert (summary["n_pdfs"], summary["n_pdf_images"], summary["n_pdf_skipped_small"]) == (1, 2, 1)
    html = (report / "index.html").read_text()
    assert 'data-case-id="paper-p2-i1"' in html and (report / "overlays" / "paper-p2-i1.png").is_file()
    assert "1 images in PDFs too small" in html


def test_images_are_numbered_within_their_page_and_extracted_losslessly(tmp_path):
    listing = list_pdf_figures([two_figures_on_one_page(tmp_path / "fig.pdf")])
    assert [s.case_id for s in listing.sources] == ["fig-p1-i1", "fig-p1-i2"]
    first, second = (read_pdf_image(s, 10**8) for s in listing.sources)
    assert np.array_equal(first, forged_figure()) and np.array_equal(second, authentic_figure())
    with pytest.raises(InputError, match="exceeds data.max_image_pixels"):  # checked before decoding
        read_pdf_image(listing.sources[0], 1000)


def test_bad_pdfs_are_named_and_counted_and_the_good_one_is_still_screened(tmp_path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    figures_pdf(folder / "good.pdf", [forged_figure()])
    text_only = pymupdf.open()
    text_only.new_page().insert_text((72, 72), "Methods: no figures here.")
    text_only.save(folder / "methods.pdf")
    (folder / "notes.pdf").write_text("this is not a PDF")
    (folder / "truncated.pdf").write_bytes(figures_pdf(tmp_path / "whole.pdf", [authentic_figure()]).read_bytes()[:300])
    secret = pymupdf.open()
    secret.new_page()
    secret.save(folder / "secret.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="owner")
    undecodable_image_pdf(folder / "scan.pdf", tmp_path)

    out, report = tmp_path / "sub.csv", tmp_path / "report"
    assert predict.main(["--pdf", str(folder), "--detector", "keypoint", "--out", str(out),
                         "--report", str(report)]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    reasons = {f["file"]: f["reason"] for f in summary["pdf_failed"]}
    assert set(reasons) == {"notes.pdf", "secret.pdf", "truncated.pdf"}
    assert "encrypted" in reasons["secret.pdf"] and "not a readable PDF" in reasons["notes.pdf"]
    assert "truncated" in reasons["truncated.pdf"] and summary["pdf_without_images"] == ["methods.pdf"]
    assert summary["n_pdfs"] == 6 and summary["failed"] == ["scan-p1-i1"]
    calls = pd.read_csv(out, dtype=str).set_index("case_id")["annotation"]
    assert calls["good-p1-i1"] != "authentic" and calls["scan-p1-i1"] == "authentic"
    html = (report / "index.html").read_text()
    for name in ("notes.pdf", "secret.pdf", "truncated.pdf", "scan-p1-i1"):
        assert name in html
    assert "cannot be decoded" in html
