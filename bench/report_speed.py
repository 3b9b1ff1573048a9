"""The evidence report at 1,000 figures: its size, the time to write it, and how fast it opens.

    flock -x /tmp/cpu.lock python -m bench report

The keypoint detector screens the synthetic test images once (data/synthetic/test_images, made
by `python -m stages.synthesize`); their real predictions are then reused under 1,000 distinct
case_ids, so the report holds the same share of flagged figures and the same events as a real
run, and the benchmark times the report, not the detector. Headless Chromium opens the page
from file:// several times and reads the browser's own navigation timing; the same page with
lazy loading turned off is timed beside it, to show what lazy loading buys.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from bench.browser import chromium, open_page
from bench.report import update_report
from stages.common.config import load_params
from stages.common.detectors import predict_image
from stages.common.io import list_images, read_image
from stages.common.report import add_figure, write_report

TEST_IMAGES = Path("data/synthetic/test_images")
N_FIGURES = 1000
LOADS = 5
NAVIGATION = ("const n = performance.getEntriesByType('navigation')[0];"
              "return [n.domContentLoadedEventEnd, n.loadEventEnd,"
              " Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length];")


def screened_test_images(folder: Path = TEST_IMAGES) -> list[tuple[str, object, object]]:
    params = load_params()
    paths = list_images(folder)
    if not paths:
        sys.exit(f"no images in {folder}: run `python -m stages.synthesize` first")
    screened = []
    for path in tqdm(paths, desc="keypoint detector", unit="img"):
        image = read_image(path, params.data.max_image_pixels)
        screened.append((path.stem, image, predict_image(image, "keypoint", None, None, params.infer,
                                                          params.keypoint, 0)))
    return screened


def write_big_report(report_dir: Path, screened: list, n_figures: int) -> float:
    """Seconds to write a report of `n_figures` figures, the screened ones repeated under new names."""
    start = time.perf_counter()
    entries = []
    for k in tqdm(range(n_figures), desc="report", unit="fig"):
        case_id, image, prediction = screened[k % len(screened)]
        entries.append(add_figure(report_dir, f"{case_id}-{k:04d}", image, prediction))
    n_flagged = sum(e.flagged for e in entries)
    write_report(report_dir, entries, [], {"detector": "keypoint", "n_images": n_figures,
                                           "n_called_forged": n_flagged, "inputs": [str(TEST_IMAGES)],
                                           "params": "params.yaml"})
    return time.perf_counter() - start


def load_times(page: Path) -> dict:
    with chromium(1280, 1000) as driver:
        samples = []
        for _ in range(LOADS + 1):  # the first load warms the browser up and is not counted
            open_page(driver, page)
            samples.append(driver.execute_script(NAVIGATION))
    samples = samples[1:]
    return {"dom_content_loaded_ms": statistics.median(s[0] for s in samples),
            "load_event_ms": statistics.median(s[1] for s in samples),
            "images_loaded_at_open": int(statistics.median(s[2] for s in samples))}


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    screened = screened_test_images()
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        report_dir = Path(tmp) / "report"
        seconds = write_big_report(report_dir, screened, N_FIGURES)
        page = report_dir / "index.html"
        eager = report_dir / "index_eager.html"
        eager.write_text(page.read_text().replace('loading="lazy"', 'loading="eager"'))
        n_files, n_bytes = folder_bytes(report_dir)
        html = page.read_text()
        figures = {
            "n_figures": N_FIGURES,
            "n_flagged": html.count('<article class="flagged"'),
            "n_img_tags": html.count("<img "),
            "page_bytes": page.stat().st_size,
            "folder_bytes": n_bytes - eager.stat().st_size,
            "folder_files": n_files - 1,
            "write_seconds": round(seconds, 2),
            "write_ms_per_figure": round(1000 * seconds / N_FIGURES, 2),
            "lazy": load_times(page),
            "eager": load_times(eager),
            "loads": LOADS,
            "how": "headless Chromium from file://, median of navigation timing over the loads; window 1280x1000",
        }
    update_report("report", figures)
    print(figures)


if __name__ == "__main__":
    main()
