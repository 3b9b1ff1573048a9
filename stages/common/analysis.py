"""Dataset analysis from the index: counts, sizes, mask statistics and a sample grid.

Everything the index already records (status, size, mode, instances, forged area) is read from
it; only the connected components of each mask and the sample pictures need the files, read one
at a time. Statistics of the data describe the usable (`ok`) rows, what training will see; the
status counts describe every file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from .figures import overlay, plt, save_figure
from .index import usable_rows
from .io import load_mask, read_image

QUANTILES = {"min": 0.0, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "max": 1.0}
SAMPLE_COLUMNS = 5
SAMPLE_SEED = 0
SAMPLE_MAX_SIDE = 384  # pixels; large figures are shrunk for the grid


@dataclass(frozen=True)
class SampleCase:
    case_id: str
    kind: str
    authentic: pd.Series | None
    forged: pd.Series | None


# ---------------------------------------------------------------- statistics


def summarize(index: pd.DataFrame, components: list[int]) -> dict:
    """The analysis report as plain JSON values; `components` holds connected blobs per instance."""
    rows = usable_rows(index)
    forged = rows[rows["label"] == "forged"]
    labels_per_case = rows.groupby("case_id")["label"].nunique()
    return {
        "files": len(index),
        "by_status": counts(index["status"]),
        "by_source": counts(index["source"]),
        "usable": {
            "images": len(rows),
            "cases": int(rows["case_id"].nunique()),
            "cases_with_both_labels": int((labels_per_case == 2).sum()),
            "duplicate_images": int(rows["sha1"].duplicated(keep=False).sum()),
            "by_label": counts(rows["label"]),
            "by_mode": counts(rows["mode"]),
        },
        "sizes": {"width": quantiles(rows["width"]), "height": quantiles(rows["height"])},
        "instances_per_image": counts(forged["n_instances"]),
        "components_per_instance": {"counts": counts(pd.Series(components, dtype=int)), "quantiles": quantiles(components)},
        "forged_fraction": quantiles(forged["forged_fraction"]),
    }


def counts(values: pd.Series) -> dict[str, int]:
    """Occurrences of each value, keyed by its text: numbers in order, words most frequent first."""
    tally = values.value_counts()
    if pd.api.types.is_numeric_dtype(values):
        tally = tally.sort_index()
    return {str(k): int(v) for k, v in tally.items()}


def quantiles(values) -> dict[str, float] | None:
    values = np.asarray(pd.Series(values, dtype=float).dropna())
    if values.size == 0:
        return None
    found = np.quantile(values, list(QUANTILES.values()))
    return {name: float(v) for name, v in zip(QUANTILES, found)} | {"mean": float(values.mean())}


def instance_components(index: pd.DataFrame, root: Path) -> list[int]:
    """Connected blobs (8-connected) of every instance of every usable forged image.

    One copy-move event is the source plus its copies, so most instances should have two or
    more; an instance of one blob is worth a look.
    """
    forged = usable_rows(index)
    forged = forged[forged["label"] == "forged"]
    found = []
    for row in tqdm(forged.itertuples(index=False), total=len(forged), desc="components", unit="mask"):
        mask = load_mask(root / row.mask_path, (int(row.height), int(row.width)))
        found.extend(cv2.connectedComponents(instance, connectivity=8)[0] - 1 for instance in mask)
    return [int(n) for n in found]


# ---------------------------------------------------------------- figures


def plot_sizes(index: pd.DataFrame, path: Path) -> None:
    rows = usable_rows(index)
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    for label, group in rows.groupby("label"):
        ax.scatter(group["width"], group["height"], s=8, alpha=0.5, label=f"{label} ({len(group)})")
    ax.set(xlabel="width (px)", ylabel="height (px)", title="Image sizes", xscale="log", yscale="log")
    if len(rows):
        ax.legend()
    save_figure(fig, path)


def plot_instances(index: pd.DataFrame, components: list[int], path: Path) -> None:
    rows = usable_rows(index)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    bar_counts(left, rows.loc[rows["label"] == "forged", "n_instances"], "instances per forged image")
    bar_counts(right, pd.Series(components, dtype=int), "connected blobs per instance")
    save_figure(fig, path)


def bar_counts(ax, values: pd.Series, xlabel: str) -> None:
    tally = values.astype(int).value_counts().sort_index()
    ax.bar(tally.index.astype(str), tally.to_numpy())
    ax.set(xlabel=xlabel, ylabel="count")


def plot_forged_area(index: pd.DataFrame, path: Path) -> None:
    rows = usable_rows(index)
    percent = rows.loc[rows["label"] == "forged", "forged_fraction"].dropna() * 100
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    ax.hist(percent, bins=30)
    ax.set(xlabel="forged area (% of the image)", ylabel="forged images", title="Forged area")
    save_figure(fig, path)


def plot_sample_grid(samples: list[SampleCase], root: Path, max_pixels: int, path: Path) -> None:
    """Authentic images on the top row, their forged twins below, each instance in its own colour."""
    fig, axes = plt.subplots(2, max(len(samples), 1), figsize=(3 * max(len(samples), 1), 6.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for column, sample in enumerate(samples):
        for ax, row in zip(axes[:, column], (sample.authentic, sample.forged)):
            if row is not None:
                ax.imshow(sample_picture(row, root, max_pixels))
                ax.set_title(sample_title(sample, row), fontsize=8)
    save_figure(fig, path)


def sample_picture(row: pd.Series, root: Path, max_pixels: int) -> np.ndarray:
    image = read_image(root / row["image_path"], max_pixels)
    if row["label"] == "forged":
        image = overlay(image, load_mask(root / row["mask_path"], image.shape[:2]))
    scale = SAMPLE_MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image


def sample_title(sample: SampleCase, row: pd.Series) -> str:
    kind = f" {sample.kind}" if sample.kind else ""
    events = f", {row['n_instances']} event(s)" if row["label"] == "forged" else ""
    return f"{row['case_id']}{kind} {row['label']}\n{row['width']}x{row['height']} {row['mode']}{events}"


# ---------------------------------------------------------------- choosing samples


def read_kinds(meta: pd.DataFrame | None) -> dict[str, str]:
    """case_id -> figure kind from the synthetic data's meta.csv; empty for other data."""
    return {} if meta is None else dict(zip(meta["case_id"], meta["kind"]))


def pick_samples(index: pd.DataFrame, kinds: dict[str, str], n: int = SAMPLE_COLUMNS, seed: int = SAMPLE_SEED) -> list[SampleCase]:
    """Up to `n` cases, taken in turn from each figure kind, cases with a forged image first."""
    rows = usable_rows(index)
    rng = np.random.default_rng(seed)
    cases = rows.groupby("case_id")["label"].agg(lambda labels: "forged" in set(labels))
    order = list(cases.index[rng.permutation(len(cases))])
    order.sort(key=lambda case_id: not cases[case_id])  # stable: forged cases first, shuffled
    by_kind: dict[str, list[str]] = {}
    for case_id in order:
        by_kind.setdefault(kinds.get(case_id, ""), []).append(case_id)
    chosen = round_robin(list(by_kind.values()), n)
    return [sample_case(rows, case_id, kinds.get(case_id, "")) for case_id in chosen]


def round_robin(queues: list[list[str]], n: int) -> list[str]:
    taken: list[str] = []
    for position in range(max((len(q) for q in queues), default=0)):
        taken += [q[position] for q in queues if position < len(q)]
    return taken[:n]


def sample_case(rows: pd.DataFrame, case_id: str, kind: str) -> SampleCase:
    case = rows[rows["case_id"] == case_id]
    return SampleCase(case_id, kind, first_with_label(case, "authentic"), first_with_label(case, "forged"))


def first_with_label(rows: pd.DataFrame, label: str) -> pd.Series | None:
    matching = rows[rows["label"] == label]
    return matching.iloc[0] if len(matching) else None
