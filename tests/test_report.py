"""The evidence report: the transform in words, source and copies told apart, the page's order."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from screening_inputs import authentic_figure, forged_figure, save_png
from stages import predict
from stages.common.infer import Prediction
from stages.common.report import Failure, add_figure, write_report
from stages.common.report.events import LEARNED, describe_transform, event_view


@pytest.mark.parametrize("transform, anchor, words", [
    ([[1, 0, 212], [0, 1, 40]], (10, 10), "copied 212 px right and 40 px down"),
    ([[1, 0, -30], [0, 1, -5]], (50, 50), "copied 30 px left and 5 px up"),
    ([[0, -1, 0], [1, 0, 0]], (0, 0), "copied in place, rotated 90° clockwise"),  # (1, 0) -> (0, 1): downwards
    ([[0, 1, 0], [-1, 0, 0]], (0, 0), "copied in place, rotated 90° counter-clockwise"),
    ([[-1, 0, 400], [0, 1, 0]], (100, 50), "copied 200 px right, mirrored left to right"),
    ([[1, 0, 0], [0, -1, 300]], (20, 100), "copied 100 px down, mirrored top to bottom"),
    ([[0.8, 0, 0], [0, 0.8, 0]], (0, 0), "copied in place, scaled to 80 %"),
])
def test_transforms_read_as_words(transform, anchor, words):
    assert describe_transform(np.array(transform, float), anchor) == words


def two_squares(shift: int = 100) -> np.ndarray:
    mask = np.zeros((120, 240), bool)
    mask[20:60, 10:50] = True
    mask[20:60, 10 + shift:50 + shift] = True
    return mask


def test_an_event_is_split_into_its_source_and_its_copy():
    class Explanation:  # what the keypoint detector returns: one mask, one transform per copy
        transforms = (np.array([[1.0, 0, 100], [0, 1.0, 0]]),)
        n_inliers, score = 9, 0.8

    event = event_view(1, two_squares(), Explanation)
    assert event.source[40, 30] and not event.source[40, 130]
    (copy,) = event.copies
    assert copy.mask[40, 130] and not copy.mask[40, 30]
    assert copy.words == "copied 100 px right"
    assert copy.source_xy == pytest.approx((29.5, 39.5)) and copy.copy_xy == pytest.approx((129.5, 39.5))


def test_a_learned_model_instance_says_it_has_no_transform():
    event = event_view(2, two_squares(), None)
    assert event.summary == LEARNED and event.copies == () and event.found_by == "maskrcnn"


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict]]:
    parser = PageParser()
    parser.feed(html)
    return parser.tags


def test_the_page_ranks_flagged_figures_lists_the_rest_and_loads_nothing_remote(tmp_path):
    image = authentic_figure()
    mask = np.zeros(image.shape[:2], bool)
    mask[50:90, 60:100] = True
    scores = {"low": 0.55, "high": 0.97, "<b>odd name</b>": 0.71}
    entries = [add_figure(tmp_path, case_id, image, Prediction([mask], score)) for case_id, score in scores.items()]
    entries.append(add_figure(tmp_path, "clean", image, Prediction([], 0.1)))
    failures = [Failure("broken.png", "broken.png: decoding failed (truncated)")]
    run = {"detector": "maskrcnn", "n_images": 5, "n_called_forged": 3, "inputs": ["images in x"], "params": "p.yaml"}
    html = write_report(tmp_path, entries, failures, run).read_text()

    tags = parse(html)
    ranked = [a["data-case-id"] for t, a in tags if t == "article"]
    assert ranked == ["high", "<b>odd name</b>", "low"]
    assert "<b>odd name</b>" not in html  # escaped, never markup
    assert "decoding failed (truncated)" in html and "no transform estimated" in html
    images = [a for t, a in tags if t == "img"]
    assert len(images) == 3 * 2 + 1  # overlay and figure of each flagged one, a thumbnail of the authentic one
    for img in images:
        assert img["loading"] == "lazy" and (tmp_path / img["src"]).is_file(), img
        assert Image.open(tmp_path / img["src"]).size == (int(img["width"]), int(img["height"]))
    assert not [t for t, a in tags if t in ("script", "link", "iframe")]
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "@import" not in html and "url(" not in html


def test_predict_writes_a_report_with_the_transform_and_the_failure(tmp_path):
    images = tmp_path / "images"
    save_png(images / "forged.png", forged_figure())
    save_png(images / "clean.png", authentic_figure())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    report = tmp_path / "report"
    assert predict.main(["--images", str(images), "--detector", "keypoint", "--out", str(tmp_path / "s.csv"),
                         "--report", str(report)]) == 0
    html = (report / "index.html").read_text()
    assert [a["data-case-id"] for t, a in parse(html) if t == "article"] == ["forged"]
    assert "found by keypoint matching" in html
    # Which side is the source cannot be told from the pixels: the transform reads either way round.
    # The fitted shift may round a pixel or two either side of the true 200 x 140 px.
    said = re.findall(r"copied (\d+) px (right|left) and (\d+) px (down|up), rotated 90° ((?:counter-)?clockwise)", html)
    readings = {("right", "down", "counter-clockwise"), ("left", "up", "clockwise")}
    assert any(abs(int(dx) - 200) <= 3 and abs(int(dy) - 140) <= 3 and (h, v, turn) in readings
               for dx, h, dy, v, turn in said), re.findall(r"copied[^<]*", html)
    assert "broken.png" in html and "not a readable image" in html
    overlay = np.asarray(Image.open(report / "overlays" / "forged.png"))
    assert overlay.shape == (640, 840, 3)  # small figures are enlarged twice, pixel for pixel
    assert not np.array_equal(overlay[::2, ::2], forged_figure())
    assert np.array_equal(np.asarray(Image.open(report / "figures" / "forged.png")), forged_figure())
