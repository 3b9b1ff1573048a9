"""Grouped, stratified train/validation folds over the usable rows of the index.

Rows are grouped before they are split, so nothing a model sees in training reappears in
validation: an authentic image and its forged twin share a case_id, and byte-identical images
share a sha1, and either link puts them in one group. Groups are stratified by label (a group is
forged if any of its images is) and by size, so folds get a like share of forged cases and of
images. The assignment depends only on the set of groups and the seed, not on row order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .io import write_csv

FOLD_DIR = re.compile(r"fold_\d+")
SPLIT_FILES = ("train.csv", "val.csv")
# Groups of this many images or more share a stratum; real groups hold one or two.
LARGEST_SIZE_STRATUM = 3


class SplitError(ValueError):
    """The rows cannot be split as asked; the message says why."""


@dataclass(frozen=True)
class Fold:
    train: pd.DataFrame
    val: pd.DataFrame


def make_folds(rows: pd.DataFrame, folds: int, val_fraction: float, seed: int) -> list[Fold]:
    """`folds` == 1: one split with about `val_fraction` of the groups in validation.
    `folds` > 1: k-fold, each group in the validation part of exactly one fold."""
    if folds < 1:
        raise SplitError(f"split.folds is {folds}; it must be 1 (one train/val split) or more (k-fold)")
    if folds == 1 and not 0.0 < val_fraction < 1.0:
        raise SplitError(f"split.val_fraction is {val_fraction}; it must be between 0 and 1")
    rows = rows.reset_index(drop=True)
    group = group_rows(rows)
    n_groups = int(group.max()) + 1 if len(group) else 0
    needed = max(folds, 2)
    if n_groups < needed:
        wanted = f"{folds}-fold validation" if folds > 1 else "a train/val split"
        raise SplitError(
            f"only {n_groups} case(s) with usable images; {wanted} needs at least {needed}. "
            "Add data, or fix the faults the index lists."
        )
    strata = group_strata(rows, group, n_groups)
    rng = np.random.default_rng(seed)
    if folds == 1:
        val_groups = [holdout_groups(strata, val_fraction, rng)]
    else:
        fold_of_group = kfold_groups(strata, folds, rng)
        val_groups = [fold_of_group == k for k in range(folds)]
    return [Fold(train=rows[~is_val[group]], val=rows[is_val[group]]) for is_val in val_groups]


def group_rows(rows: pd.DataFrame) -> np.ndarray:
    """Group number of each row: rows linked by a shared case_id or sha1, transitively.

    Groups are numbered in the order of their smallest case_id, so that the numbering, and
    the split after it, do not depend on the order of the rows.
    """
    if rows.empty:
        return np.zeros(0, dtype=int)
    # A row without a sha1 is linked by its case_id only.
    sha1 = rows["sha1"].mask(rows["sha1"] == "", "row:" + rows.index.to_series().astype(str))
    case_codes, _ = pd.factorize(rows["case_id"])
    sha_codes, _ = pd.factorize(sha1)
    # Nodes are case_ids and sha1s; each row is an edge joining its two nodes.
    n_cases = case_codes.max() + 1
    n_nodes = n_cases + sha_codes.max() + 1
    edges = coo_matrix((np.ones(len(rows)), (case_codes, n_cases + sha_codes)), shape=(n_nodes, n_nodes))
    component = connected_components(edges, directed=False)[1][case_codes]
    first_case = pd.Series(rows["case_id"].to_numpy()).groupby(component).transform("min")
    return np.unique(first_case.to_numpy(dtype=str), return_inverse=True)[1].astype(int)


def group_strata(rows: pd.DataFrame, group: np.ndarray, n_groups: int) -> np.ndarray:
    forged = np.zeros(n_groups, dtype=bool)
    np.logical_or.at(forged, group, (rows["label"] == "forged").to_numpy())
    size = np.minimum(np.bincount(group, minlength=n_groups), LARGEST_SIZE_STRATUM)
    return forged * (LARGEST_SIZE_STRATUM + 1) + size


def stratified_order(strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Group numbers stratum after stratum, shuffled within each: any evenly spaced selection
    from this order takes a proportional share of every stratum."""
    return np.concatenate([rng.permutation(np.flatnonzero(strata == s)) for s in np.unique(strata)])


def holdout_groups(strata: np.ndarray, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean per group: in validation. At least one group on each side."""
    n = len(strata)
    n_val = min(max(round(n * val_fraction), 1), n - 1)
    positions = ((np.arange(n_val) + 0.5) * n / n_val).astype(int)
    is_val = np.zeros(n, dtype=bool)
    is_val[stratified_order(strata, rng)[positions]] = True
    return is_val


def kfold_groups(strata: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number per group, dealt round-robin along the stratified order."""
    fold = np.empty(len(strata), dtype=int)
    fold[stratified_order(strata, rng)] = np.arange(len(strata)) % folds
    return fold


# ---------------------------------------------------------------- reporting and writing


def describe(rows: pd.DataFrame) -> str:
    forged = int((rows["label"] == "forged").sum())
    return f"{len(rows)} images, {rows['case_id'].nunique()} cases ({forged} forged / {len(rows) - forged} authentic images)"


def fold_summary(folds: list[Fold]) -> str:
    return "\n".join(f"fold {k}: train {describe(f.train)}; val {describe(f.val)}" for k, f in enumerate(folds))


def write_folds(folds: list[Fold], out_dir: str | Path) -> list[Path]:
    """Fold 0 as out_dir/{train,val}.csv, the one training reads; with k-fold, every fold also as
    out_dir/fold_<k>/. Fold folders left by an earlier run with more folds are removed."""
    out_dir = Path(out_dir)
    written = write_fold(folds[0], out_dir)
    if len(folds) > 1:
        for k, fold in enumerate(folds):
            written += write_fold(fold, out_dir / f"fold_{k}")
    remove_stale_folds(out_dir, keep=len(folds) if len(folds) > 1 else 0)
    return written


def write_fold(fold: Fold, folder: Path) -> list[Path]:
    paths = [folder / name for name in SPLIT_FILES]
    for path, rows in zip(paths, (fold.train, fold.val)):
        write_csv(path, rows)
    return paths


def remove_stale_folds(out_dir: Path, keep: int) -> None:
    for folder in out_dir.iterdir():
        if folder.is_dir() and FOLD_DIR.fullmatch(folder.name) and int(folder.name[5:]) >= keep:
            for name in SPLIT_FILES:
                (folder / name).unlink(missing_ok=True)
            if not any(folder.iterdir()):
                folder.rmdir()
