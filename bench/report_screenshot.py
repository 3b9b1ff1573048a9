"""The README's picture of the evidence report: reports/figures/report_screenshot.png.

    python -m bench.report_screenshot

Screens the synthetic test images (data/synthetic/test_images, from `python -m stages.synthesize`)
with the keypoint detector into a temporary report, opens it in headless Chromium and saves the
top of the page: the run's summary and the best-scored flagged figures.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from bench.browser import chromium, open_page
from stages import predict
from stages.common.io import atomic_path

SCREENSHOT = Path("reports/figures/report_screenshot.png")
TEST_IMAGES = Path("data/synthetic/test_images")


def main(out: Path = SCREENSHOT) -> None:
    with tempfile.TemporaryDirectory(prefix="report-screenshot-") as tmp:
        report = Path(tmp) / "report"
        if predict.main(["--images", str(TEST_IMAGES), "--detector", "keypoint", "--report", str(report),
                         "--out", str(Path(tmp) / "submission.csv")]) != 0:
            raise SystemExit(f"screening {TEST_IMAGES} failed (run `python -m stages.synthesize` first?)")
        with chromium(1200, 1500) as driver, atomic_path(out) as tmp_png:
            open_page(driver, report / "index.html")
            driver.execute_script("return document.fonts.ready")
            if not driver.save_screenshot(str(tmp_png)):
                raise SystemExit("Chromium could not take the screenshot")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
