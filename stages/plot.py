"""Figures for people to look at, under reports/figures/.

    python -m stages.plot

- training_curves.png: losses, validation oF1 and learning rate per epoch (from DVCLive);
- gallery.png: validation predictions beside the truth: hits, misses and false alarms;
- score_histograms.png: image scores of authentic and forged validation images, per detector;
- synthetic_samples.png: one forged example of every synthetic forgery kind, masks overlaid;
- per_kind.png: the share of forged images called forged and the share of instances found, by
  forgery kind, one bar per detector, and the false alarms by figure kind (on data with a
  meta.csv, from reports/metrics.json).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from stages.common.config import load_params
from stages.common.plots import (pick_gallery, plot_gallery, plot_per_kind, plot_score_histograms,
                                 plot_synthetic_samples, plot_training_curves)

FIGURES = Path("reports/figures")
LIVE_METRICS = Path("dvclive/plots/metrics")
PER_IMAGE = Path("reports/eval/per_image.csv")
METRICS = Path("reports/metrics.json")
SYNTHETIC = Path("data/synthetic")


def main() -> None:
    params = load_params()
    plot_training_curves(LIVE_METRICS, FIGURES / "training_curves.png")
    per_image = pd.read_csv(PER_IMAGE, dtype={"case_id": str}, keep_default_na=False)
    val = pd.read_csv(Path(params.data.splits_dir) / "val.csv", dtype={"case_id": str}, keep_default_na=False)
    root, max_pixels = Path(params.data.root), params.data.max_image_pixels
    headline = per_image[per_image.detector == params.infer.detector]
    plot_gallery(pick_gallery(headline, params.evaluate.gallery_size), val, root, max_pixels, FIGURES / "gallery.png")
    plot_score_histograms(per_image, FIGURES / "score_histograms.png")
    plot_synthetic_samples(SYNTHETIC, FIGURES / "synthetic_samples.png", max_pixels)
    per_kind = json.loads(METRICS.read_text()).get("per_kind", {})
    if not per_kind:
        print(f"{METRICS} has no per_kind results (the data has no meta.csv)")
    plot_per_kind(per_kind, FIGURES / "per_kind.png")
    print(f"wrote figures to {FIGURES}/")


if __name__ == "__main__":
    main()
