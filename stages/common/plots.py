"""The figures of the plot stage: training curves, a gallery of predictions, score histograms,
synthetic samples and the per-kind results."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .figures import overlay, plt, save_figure
from .io import load_mask, read_image
from .kinds import instances, read_meta
from .rle import decode_annotation


def plot_training_curves(metrics_dir: Path, out: Path) -> None:
    series = {p.relative_to(metrics_dir).with_suffix("").as_posix(): pd.read_csv(p, sep="\t")
              for p in sorted(metrics_dir.rglob("*.tsv"))}
    panels = {
        "loss": [k for k in series if "loss" in k],
        "validation oF1 and image AUC": [k for k in series if "of1" in k or "image_auc" in k],
        "learning rate": [k for k in series if k.endswith("lr")],
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, keys) in zip(axes, panels.items()):
        for key in keys:
            frame = series[key]
            ax.plot(frame["step"] + 1, frame.iloc[:, -1], marker="o", label=key)
        ax.set(title=title, xlabel="epoch")
        if keys:
            ax.legend(fontsize=7)
    save_figure(fig, out)


def pick_gallery(per_image: pd.DataFrame, size: int) -> pd.DataFrame:
    """Up to `size` rows, a third each of hits, misses and false alarms, worst first."""
    forged = per_image[per_image.label == "forged"]
    groups = {
        "hit": forged[forged.predicted == "forged"].sort_values("of1", ascending=False),
        "miss": forged[forged.predicted == "authentic"],
        "false alarm": per_image[(per_image.label == "authentic") & (per_image.predicted == "forged")]
                      .sort_values("image_score", ascending=False),
    }
    share = max(1, size // 3)
    return pd.concat([g.head(share).assign(kind=kind) for kind, g in groups.items()], ignore_index=True)


def plot_gallery(rows: pd.DataFrame, val: pd.DataFrame, root: Path, max_pixels: int, out: Path) -> None:
    paths = val.set_index("case_id")
    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 3, figsize=(9, 3 * n), squeeze=False)
    for ax_row, row in zip(axes, rows.itertuples(index=False)):
        entry = paths.loc[row.case_id]
        entry = entry[entry.label == row.label].iloc[0] if isinstance(entry, pd.DataFrame) else entry
        image = read_image(root / entry.image_path, max_pixels)
        truth = load_mask(root / entry.mask_path, image.shape[:2]) if row.label == "forged" else []
        pred = decode_annotation(row.annotation, image.shape[:2])
        panels = [(image, f"{row.kind}: {row.case_id}"), (overlay(image, truth), f"truth ({len(truth)})"),
                  (overlay(image, pred), f"predicted ({len(pred)}), oF1 {row.of1:.2f}")]
        for ax, (picture, title) in zip(ax_row, panels):
            ax.imshow(picture)
            ax.set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    save_figure(fig, out)


def plot_score_histograms(per_image: pd.DataFrame, out: Path) -> None:
    detectors = list(dict.fromkeys(per_image.detector))
    fig, axes = plt.subplots(1, len(detectors), figsize=(5 * len(detectors), 3.5), squeeze=False)
    bins = np.linspace(0, 1, 21)
    for ax, name in zip(axes[0], detectors):
        rows = per_image[per_image.detector == name]
        for label in ("authentic", "forged"):
            ax.hist(rows[rows.label == label].image_score.clip(0, 1), bins=bins, alpha=0.6, label=label)
        ax.set(title=name, xlabel="image score", ylabel="images")
        ax.legend()
    save_figure(fig, out)


def plot_synthetic_samples(root: Path, out: Path, max_pixels: int) -> None:
    """The first forged training image holding each forgery kind: authentic, forged, masks overlaid."""
    table = instances(read_meta(root))
    train = table[table.split == "train"]
    # Prefer an image not shown yet for the next kind, so five kinds show five figures where they can.
    chosen, shown = [], set()
    for _, rows in train.groupby("forgery_kind", sort=False):
        fresh = rows[~rows.case_id.isin(shown)]
        chosen.append((fresh if len(fresh) else rows).iloc[0])
        shown.add(chosen[-1].case_id)
    chosen = pd.DataFrame(chosen)
    fig, axes = plt.subplots(len(chosen), 3, figsize=(10, 3.3 * len(chosen)), squeeze=False)
    for ax_row, row in zip(axes, chosen.itertuples(index=False)):
        authentic = read_image(root / "train_images/authentic" / f"{row.case_id}.png", max_pixels)
        image = read_image(root / "train_images/forged" / f"{row.case_id}.png", max_pixels)
        masks = load_mask(root / "train_masks" / f"{row.case_id}.npy", image.shape[:2])
        transform = row.transform if len(row.transform) < 28 else row.transform[:25] + "..."
        titles = (f"{row.forgery_kind} copy, in a {row.kind} figure", f"forged; copies: {transform}",
                  f"{len(masks)} event(s); the {row.forgery_kind} one is {row.area_fraction:.1%} of it")
        for ax, picture, title in zip(ax_row, (authentic, image, overlay(image, masks)), titles):
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    save_figure(fig, out)


def plot_per_kind(per_kind: dict, out: Path) -> None:
    """Detection rate and instances found by forgery kind, and false alarms by figure kind, one bar per detector.

    Without per-kind results (data with no meta.csv) the figure says so, so the stage's output exists.
    """
    if not per_kind:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.text(0.5, 0.5, "no per-kind results: the data root has no meta.csv", ha="center", va="center")
        ax.axis("off")
        save_figure(fig, out)
        return
    detectors = list(per_kind)
    panels = (("forgery_kind", "detection_rate", "n_forged", "forged images called forged,\nby forgery kind", "images"),
              ("forgery_kind", "instances_found", "n_instances",
               "instances found (matched pixel F1 >= 0.5),\nby forgery kind", "instances"),
              ("figure_kind", "false_alarm_rate", "n_authentic", "authentic images called forged,\nby figure kind", "images"))
    fig, axes = plt.subplots(1, 3, figsize=(19, 4))
    width = 0.8 / len(detectors)
    for ax, (group, key, count, title, unit) in zip(axes, panels):
        kinds = list(per_kind[detectors[0]][group])
        for i, name in enumerate(detectors):
            values = [per_kind[name][group][k].get(key) or 0.0 for k in kinds]
            ax.bar(np.arange(len(kinds)) + (i - (len(detectors) - 1) / 2) * width, values, width, label=name)
        counts = [per_kind[detectors[0]][group][k].get(count, 0) for k in kinds]
        ax.set_xticks(np.arange(len(kinds)), [f"{k}\n(n={n})" for k, n in zip(kinds, counts)])
        ax.tick_params(axis="x", labelsize=8)
        # The headroom above 1 keeps the legend off the bars.
        ax.set(title=title, ylim=(0, 1.22), yticks=np.linspace(0, 1, 6), ylabel=f"share of {unit}")
        ax.legend(fontsize=8, loc="upper center", ncol=len(detectors))
    save_figure(fig, out)
