"""The evidence report in a real browser: headless Chromium opens it from file:// and finds it whole.

Needs the Debian packages chromium and chromium-driver (.ci/run installs them); without them the
test fails and says what to install: it is never skipped.
"""
from __future__ import annotations

from urllib.parse import urlparse

import pytest

from bench.browser import chromium, load_every_image, open_page, requested_urls
from screening_inputs import authentic_figure, forged_figure, save_png
from stages import predict


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    images = root / "images"
    save_png(images / "forged_a.png", forged_figure(seed=3))
    save_png(images / "forged_b.png", forged_figure(seed=11))
    save_png(images / "clean.png", authentic_figure())
    (images / "broken.png").write_bytes(b"not a png")
    assert predict.main(["--images", str(images), "--detector", "keypoint", "--out", str(root / "s.csv"),
                         "--report", str(root / "report")]) == 0
    return root / "report" / "index.html"


def test_chromium_shows_every_image_flagged_first_in_score_order_and_fetches_nothing(report):
    with chromium() as driver:
        open_page(driver, report)
        load_every_image(driver)
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        flagged = driver.execute_script(
            "return Array.from(document.querySelectorAll('article.flagged')).map("
            "a => [a.dataset.caseId, parseFloat(a.dataset.score), a.getBoundingClientRect().top + scrollY])")
        first_authentic = driver.execute_script(
            "return document.querySelector('figure.authentic').getBoundingClientRect().top + scrollY")
        failures = driver.execute_script(
            "return Array.from(document.querySelectorAll('tr.failure')).map(r => r.innerText)")
        urls = requested_urls(driver)

    assert len(images) == 2 * 2 + 1 and all(width > 0 for _, width in images), images
    assert sorted(case for case, _, _ in flagged) == ["forged_a", "forged_b"]
    scores = [score for _, score, _ in flagged]
    assert scores == sorted(scores, reverse=True)
    assert max(top for _, _, top in flagged) < first_authentic
    assert len(failures) == 1 and "broken.png" in failures[0] and "not a readable image" in failures[0]
    assert any(url.endswith("index.html") for url in urls) and len(urls) >= len(images)
    remote = [url for url in urls if urlparse(url).scheme not in ("file", "data", "about")]
    assert not remote, remote
