"""The whole synthetic dataset: plan the cases, make each from its own seed, write the competition layout."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..config import ParamsError, SynthParams
from ..io import jpeg_roundtrip, write_csv
from ..rle import AUTHENTIC, encode_instances
from .figures import KINDS, render_figure
from .forge import FORGERY_KINDS, Forgery, ForgeryError, forge
from .png import write_png
from .raster import to_grey

MODES = ("RGB", "RGBA", "L")
MIN_SIDE = 48                       # smaller figures cannot hold labelled panels and separate copies
JPEG_QUALITY = (70, 95)
CASE_ID_START = 10001
# Forgery kinds that need a structure only some figure kinds have: lanes (blots), panels.
NEEDS_FIGURE = {"lane": ("blot",), "panel": ("panels",)}

TRAIN_IMAGES, TEST_IMAGES, TRAIN_MASKS = "train_images", "test_images", "train_masks"
# Per-instance columns hold one value per instance, ";"-separated, in the order of the mask's channels.
META_COLUMNS = ("case_id", "split", "kind", "label", "width", "height", "mode", "jpeg", "n_instances",
                "forged_fraction", "forgery_kinds", "transforms", "instance_fractions", "instance_blobs")


@dataclass(frozen=True)
class CasePlan:
    case_id: str
    split: str          # "train" or "test"
    kind: str
    forged: bool        # train: the case also gets a forged twin; test: the one image is forged
    seed: np.random.SeedSequence


@dataclass(frozen=True)
class SyntheticCase:
    plan: CasePlan
    mode: str
    jpeg_quality: int   # 0 where no JPEG was applied
    authentic: np.ndarray
    forgery: Forgery | None


@dataclass(frozen=True)
class GenerationSummary:
    root: Path
    meta: pd.DataFrame  # one row per written image, as in meta.csv
    seconds: float
    size_bytes: int


def check_synth_params(params: SynthParams) -> None:
    """Raise ParamsError, naming the key, for synth params no dataset can be made from."""
    problems = []
    if params.n_cases < 0 or params.n_test < 0 or params.n_cases + params.n_test == 0:
        problems.append(f"n_cases ({params.n_cases}) and n_test ({params.n_test}) must be >= 0 with a positive sum")
    for key in ("forged_share", "test_forged_share", "p_flip", "p_scale", "p_brightness", "p_jpeg"):
        if not 0.0 <= getattr(params, key) <= 1.0:
            problems.append(f"{key} is {getattr(params, key)}; expected a value in [0, 1]")
    if not MIN_SIDE <= params.min_side <= params.max_side:
        problems.append(f"min_side {params.min_side} and max_side {params.max_side}: "
                        f"need {MIN_SIDE} <= min_side <= max_side")
    for key in ("instances", "copies"):
        low, high = getattr(params, key)
        if not 1 <= low <= high:
            problems.append(f"{key} is [{low}, {high}]; expected 1 <= low <= high")
    for key, allowed in (("kinds", KINDS), ("forgery_kinds", FORGERY_KINDS), ("modes", MODES)):
        weights = getattr(params, key)
        unknown = sorted(set(weights) - set(allowed))
        if unknown:
            problems.append(f"{key}: unknown {', '.join(unknown)}; expected some of {', '.join(allowed)}")
        if any(v < 0 for v in weights.values()) or sum(weights.values()) <= 0:
            problems.append(f"{key}: weights must be >= 0 with a positive sum, got {weights}")
    problems += _unforgeable_kinds(params)
    if problems:
        raise ParamsError("synth: " + "; ".join(problems))


def _unforgeable_kinds(params: SynthParams) -> list[str]:
    """Figure kinds that no allowed forgery kind can forge (lane needs blots, panel needs panels)."""
    allowed = [k for k, v in params.forgery_kinds.items() if v > 0 and k in FORGERY_KINDS]
    if not allowed or any(k not in NEEDS_FIGURE for k in allowed) or params.forged_share + params.test_forged_share == 0:
        return []
    possible = {figure for k in allowed for figure in NEEDS_FIGURE[k]}
    stuck = sorted(k for k, v in params.kinds.items() if v > 0 and k not in possible)
    return [f"forgery_kinds allows only {', '.join(allowed)}, which cannot forge kinds {', '.join(stuck)}: "
            f"give those kinds weight 0, or allow object, rotated or patch"] if stuck else []


def plan_cases(params: SynthParams) -> list[CasePlan]:
    """Every case's id, split, kind, label and seed: training cases first, then test cases."""
    plan_seed, *case_seeds = np.random.SeedSequence(params.seed).spawn(1 + params.n_cases + params.n_test)
    rng = np.random.default_rng(plan_seed)
    plans = []
    splits = (("train", params.n_cases, params.forged_share), ("test", params.n_test, params.test_forged_share))
    for split, n, share in splits:
        kinds = _allocate(params.kinds, n, rng)
        for kind, is_forged in zip(kinds, _forged_flags(kinds, share, rng)):
            index = len(plans)
            plans.append(CasePlan(str(CASE_ID_START + index), split, kind, bool(is_forged), case_seeds[index]))
    return plans


def _allocate(weights: dict[str, float], n: int, rng: np.random.Generator) -> list[str]:
    """`n` names in proportion to their weights, in random order.

    Stratified rather than drawn case by case, so even a 12-case dataset has every kind.
    """
    names = [name for name in weights if weights[name] > 0]
    quota = np.array([weights[name] for name in names]) / sum(weights[name] for name in names) * n
    counts = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return [str(name) for name in rng.permutation(np.repeat(names, counts))]


def _forged_flags(kinds: list[str], share: float, rng: np.random.Generator) -> np.ndarray:
    """Which cases are forged: `share` of them overall and, within one or two, of every kind.

    Systematic sampling along the cases sorted by kind gives each kind its share, so per-kind
    metrics are not skewed by a kind that happened to draw mostly authentic cases.
    """
    n = len(kinds)
    order = np.lexsort((rng.random(n), np.array(kinds)))
    marks = np.floor(np.arange(n + 1) * share + rng.random())
    flags = np.zeros(n, bool)
    flags[order] = np.diff(marks) > 0
    return flags


def make_case(plan: CasePlan, params: SynthParams) -> SyntheticCase:
    """Render, convert, compress and (for forged cases) forge one case from its own seed.

    The forgery is made from the authentic pixels as saved (grey for L, after JPEG), so the twins
    differ exactly under the mask and the pasted copies are never compressed a second time.
    """
    rng = np.random.default_rng(plan.seed)
    height, width = (int(v) for v in rng.integers(params.min_side, params.max_side + 1, size=2))
    modes = list(params.modes)
    weights = np.array([params.modes[m] for m in modes], dtype=float)
    mode = str(rng.choice(modes, p=weights / weights.sum()))
    jpeg_quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)) if rng.random() < params.p_jpeg else 0
    figure = render_figure(plan.kind, height, width, rng)
    authentic = _as_saved(figure.image, mode, jpeg_quality)
    try:
        forgery = forge(authentic, rng, params, figure) if plan.forged else None
    except ForgeryError as e:
        raise ForgeryError(f"case {plan.case_id} ({plan.kind}): {e}") from None
    return SyntheticCase(plan, mode, jpeg_quality, authentic, forgery)


def _as_saved(rgb: np.ndarray, mode: str, jpeg_quality: int) -> np.ndarray:
    """The RGB pixels the PNG will decode to: grey for mode L, degraded by JPEG where asked."""
    if mode == "L":
        grey = to_grey(rgb)
        if jpeg_quality:
            grey = jpeg_roundtrip(grey, jpeg_quality)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if jpeg_quality:
        return jpeg_roundtrip(rgb, jpeg_quality)
    return rgb


def _save(path: Path, rgb: np.ndarray, mode: str) -> None:
    if mode == "L":
        write_png(path, rgb[:, :, 0])
    elif mode == "RGBA":      # opaque alpha, as in the real RGBA figures
        write_png(path, np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    else:
        write_png(path, rgb)


def _write_case(case: SyntheticCase, root: Path) -> list[dict]:
    """Write the case's files and return its meta rows, one per image written."""
    plan, forgery = case.plan, case.forgery
    if plan.split == "test":
        image = forgery.image if forgery else case.authentic
        _save(root / TEST_IMAGES / f"{plan.case_id}.png", image, case.mode)
        return [_meta_row(case, forgery)]
    _save(root / TRAIN_IMAGES / "authentic" / f"{plan.case_id}.png", case.authentic, case.mode)
    rows = [_meta_row(case, None)]
    if forgery:
        _save(root / TRAIN_IMAGES / "forged" / f"{plan.case_id}.png", forgery.image, case.mode)
        np.save(root / TRAIN_MASKS / f"{plan.case_id}.npy", forgery.masks)
        rows.append(_meta_row(case, forgery))
    return rows


def _meta_row(case: SyntheticCase, forgery: Forgery | None) -> dict:
    h, w = case.authentic.shape[:2]
    return {
        "case_id": case.plan.case_id,
        "split": case.plan.split,
        "kind": case.plan.kind,
        "label": "forged" if forgery else "authentic",
        "width": w,
        "height": h,
        "mode": case.mode,
        "jpeg": bool(case.jpeg_quality),
        "n_instances": len(forgery.masks) if forgery else 0,
        "forged_fraction": round(float(forgery.masks.any(axis=0).mean()), 5) if forgery else 0.0,
        "forgery_kinds": ";".join(forgery.kinds) if forgery else "",
        "transforms": ";".join(forgery.transforms) if forgery else "",
        "instance_fractions": ";".join(f"{m.mean():.5f}" for m in forgery.masks) if forgery else "",
        "instance_blobs": ";".join(str(n) for n in forgery.regions) if forgery else "",
    }


def _solution_row(case: SyntheticCase) -> dict:
    if case.forgery is None:
        return {"case_id": case.plan.case_id, "annotation": AUTHENTIC, "shape": AUTHENTIC}
    h, w = case.authentic.shape[:2]
    return {"case_id": case.plan.case_id, "annotation": encode_instances(case.forgery.masks),
            "shape": json.dumps([h, w])}


def generate_dataset(params: SynthParams, root: str | Path) -> GenerationSummary:
    """Write the whole dataset to `root`, replacing whatever was there.

    Files go to a hidden sibling folder that is renamed over `root` only when complete, so a killed
    run leaves the previous dataset (or none) and never half of a new one.
    """
    check_synth_params(params)
    started = time.perf_counter()
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        meta = _write_dataset(params, staging)
        size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        _replace_folder(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return GenerationSummary(root, meta, time.perf_counter() - started, size)


def _write_dataset(params: SynthParams, folder: Path) -> pd.DataFrame:
    for sub in (TRAIN_IMAGES + "/authentic", TRAIN_IMAGES + "/forged", TRAIN_MASKS, TEST_IMAGES):
        (folder / sub).mkdir(parents=True)
    meta, solution = [], []
    for plan in tqdm(plan_cases(params), desc="synthesize", unit="case"):
        case = make_case(plan, params)
        meta += _write_case(case, folder)
        if plan.split == "test":
            solution.append(_solution_row(case))
    meta_frame = pd.DataFrame(meta, columns=list(META_COLUMNS))
    write_csv(folder / "solution.csv", pd.DataFrame(solution, columns=["case_id", "annotation", "shape"]))
    write_csv(folder / "meta.csv", meta_frame)
    return meta_frame


def _replace_folder(new: Path, target: Path) -> None:
    # Two renames, not a copy: the target is only ever whole-old or whole-new (or, if killed between
    # the renames, absent with the old one parked in a hidden folder beside it).
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        target.rename(old / target.name)
        new.rename(target)
        shutil.rmtree(old)
    else:
        new.rename(target)
