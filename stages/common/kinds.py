"""Results and data broken down by kind: the forgery kind of each copy-move event, the figure kind.

The synthetic data's `meta.csv` says, per image, its figure kind and, per instance, its forgery
kind, transform, area share and blob count (";"-separated, in mask channel order). Real data has
no such file; every breakdown here is then absent rather than guessed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

META_FILE = "meta.csv"  # written by the synthesize stage; not part of the competition layout
FOUND_F1 = 0.5  # a true instance is found when the prediction oF1 matches to it has this pixel F1 or more
INSTANCE_COLUMNS = {"forgery_kinds": "forgery_kind", "transforms": "transform",
                    "instance_fractions": "area_fraction", "instance_blobs": "blobs"}


def read_meta(root: Path) -> pd.DataFrame | None:
    """The data root's meta.csv (one row per image), or None where there is none."""
    path = Path(root) / META_FILE
    if not path.is_file():
        return None
    meta = pd.read_csv(path, dtype={"case_id": str}, keep_default_na=False)
    if not {"case_id", "kind", "label"} <= set(meta.columns):
        print(f"{path} has no case_id, kind and label columns; it is not used")
        return None
    return meta


def instances(meta: pd.DataFrame) -> pd.DataFrame:
    """One row per forged instance: case_id, split, kind (of figure), forgery_kind, transform, area_fraction, blobs."""
    forged = meta[meta["label"] == "forged"]
    if forged.empty or not set(INSTANCE_COLUMNS) <= set(meta.columns):
        return pd.DataFrame(columns=["case_id", "split", "kind", *INSTANCE_COLUMNS.values()])
    split = forged.assign(**{c: forged[c].astype(str).str.split(";") for c in INSTANCE_COLUMNS})
    table = split.explode(list(INSTANCE_COLUMNS))[["case_id", "split", "kind", *INSTANCE_COLUMNS]]
    table = table.rename(columns=INSTANCE_COLUMNS).reset_index(drop=True)
    return table.astype({"area_fraction": float, "blobs": int})


def kind_distribution(meta: pd.DataFrame) -> dict:
    """Per forgery kind: instances, images holding one, and the quantiles of the instances' area share."""
    table = instances(meta)
    return {kind: {"instances": int(len(rows)), "images": int(rows[["case_id", "split"]].drop_duplicates().shape[0]),
                   "area_fraction": _quantiles(rows["area_fraction"])}
            for kind, rows in table.groupby("forgery_kind")}


def _quantiles(values: pd.Series) -> dict[str, float]:
    found = np.quantile(values.to_numpy(float), [0.0, 0.5, 1.0])
    return {"min": round(float(found[0]), 5), "median": round(float(found[1]), 5), "max": round(float(found[2]), 5)}


def per_kind_report(results: pd.DataFrame, meta: pd.DataFrame, instance_results: pd.DataFrame | None = None) -> dict:
    """One detector's results by kind. `results` has case_id, label, predicted and of1 per image;
    `instance_results`, where given, case_id, instance (its mask channel), matched_f1,
    matched_precision and matched_recall per true instance (evaluation.per_instance_rows).

    - forgery_kind: for the forged images holding an event of that kind, their number, the share
      called forged and their mean oF1 (an image with two kinds counts under both); with
      `instance_results`, also that kind's instances, the share found (matched at FOUND_F1 or
      more) and their mean matched F1. An image called forged can still miss most of its events:
      these say which kinds are missed. The mean precision and recall over the instances a
      prediction overlaps say whether the masks fall short of them (recall) or spill past them
      (precision);
    - figure_kind: false alarms on its authentic images, and the same three numbers for its forged ones.
    """
    image_kinds = meta.drop_duplicates(["case_id", "label"]).set_index(["case_id", "label"])
    joined = results.join(image_kinds[["kind", "forgery_kinds"]], on=["case_id", "label"], how="left")
    forged, authentic = joined[joined["label"] == "forged"], joined[joined["label"] == "authentic"]
    by_forgery = forged.assign(forgery_kind=forged["forgery_kinds"].fillna("").str.split(";")).explode("forgery_kind")
    found = {} if instance_results is None else _instances_found(instance_results, meta)
    report = {"forgery_kind": {kind: _forged_scores(rows) | found.get(kind, {})
                               for kind, rows in by_forgery.groupby("forgery_kind") if kind},
              "figure_kind": {}}
    for kind in sorted(set(joined["kind"].dropna())):
        fakes, reals = forged[forged["kind"] == kind], authentic[authentic["kind"] == kind]
        report["figure_kind"][kind] = {
            "n_authentic": int(len(reals)),
            "false_alarm_rate": _share(reals["predicted"] == "forged"),
            **_forged_scores(fakes),
        }
    return report


def describe_forgery_kind(row: dict) -> str:
    """One line of a forgery kind's report (per_kind_report), for a person."""
    line = f"{row['n_forged']:3d} forged images, {row['detection_rate']:.0%} called forged, oF1 {row['of1']:.3f}"
    if "n_instances" in row:
        line += f"; {row['instances_found']:.0%} of {row['n_instances']} instances found"
    if row.get("instance_precision") is not None:
        line += f", their masks' precision {row['instance_precision']:.2f} and recall {row['instance_recall']:.2f}"
    return line


def _instances_found(instance_results: pd.DataFrame, meta: pd.DataFrame) -> dict[str, dict]:
    """Per forgery kind: n_instances, instances_found, instance_f1, instance_precision and
    instance_recall (see per_kind_report)."""
    table = instances(meta)
    table = table.assign(instance=table.groupby(["case_id", "split"]).cumcount()).drop_duplicates(["case_id", "instance"])
    joined = instance_results.join(table.set_index(["case_id", "instance"])["forgery_kind"], on=["case_id", "instance"],
                                   how="inner")
    return {kind: {"n_instances": int(len(rows)), "instances_found": _share(rows["matched_f1"] >= FOUND_F1),
                   "instance_f1": round(float(rows["matched_f1"].mean()), 4),
                   "instance_precision": _mean(rows["matched_precision"]),
                   "instance_recall": _mean(rows["matched_recall"])}
            for kind, rows in joined.groupby("forgery_kind")}


def _forged_scores(rows: pd.DataFrame) -> dict:
    return {"n_forged": int(len(rows)), "detection_rate": _share(rows["predicted"] == "forged"),
            "of1": round(float(rows["of1"].mean()), 4) if len(rows) else None}


def _share(flags: pd.Series) -> float | None:
    return round(float(flags.mean()), 4) if len(flags) else None


def _mean(values: pd.Series) -> float | None:
    """The mean of the values that are not nan; None where none is."""
    return round(float(values.mean()), 4) if values.notna().any() else None
