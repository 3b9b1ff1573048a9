import dataclasses
import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from stages.common import synth
from stages.common.config import ParamsError, SynthParams
from stages.common.io import load_mask, probe_image, read_image
from stages.common.rle import AUTHENTIC, decode_annotation
from stages.common.synth import (
    KINDS, MAX_FORGED_FRACTION, MIN_FORGED_FRACTION, check_synth_params, forge, generate_dataset,
    make_case, plan_cases, render_figure,
)

MAX_PIXELS = 40_000_000

TINY = SynthParams(
    seed=7, n_cases=12, forged_share=0.5, n_test=6, test_forged_share=0.5, min_side=96, max_side=160,
    kinds={kind: 1.0 for kind in KINDS}, instances=(1, 3), copies=(1, 3),
    p_flip=0.3, p_rotate=0.4, p_scale=0.4, p_brightness=0.4, p_jpeg=0.6,
    modes={"RGB": 0.5, "RGBA": 0.25, "L": 0.25},
)


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def components(mask: np.ndarray) -> int:
    count, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return count - 1


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "synthetic"
    summary = generate_dataset(TINY, root)
    meta = pd.read_csv(root / "meta.csv", dtype={"case_id": str})
    return root, meta, summary


def forged_train_cases(meta: pd.DataFrame) -> list[str]:
    return meta.query("split == 'train' and label == 'forged'")["case_id"].tolist()


def test_layout_and_case_ids(dataset):
    root, meta, summary = dataset
    train = meta[meta["split"] == "train"]
    train_ids = sorted(set(train["case_id"]))
    test_ids = meta.loc[meta["split"] == "test", "case_id"].tolist()
    forged_ids = forged_train_cases(meta)

    assert len(train_ids) == TINY.n_cases and len(test_ids) == TINY.n_test
    expected_forged = TINY.forged_share * TINY.n_cases
    assert math.floor(expected_forged) <= len(forged_ids) <= math.ceil(expected_forged)
    assert not set(train_ids) & set(test_ids)
    assert all(case_id.isdigit() for case_id in train_ids + test_ids)
    expected = (
        {f"train_images/authentic/{c}.png" for c in train_ids}
        | {f"train_images/forged/{c}.png" for c in forged_ids}
        | {f"train_masks/{c}.npy" for c in forged_ids}
        | {f"test_images/{c}.png" for c in test_ids}
        | {"solution.csv", "meta.csv"}
    )
    assert set(file_hashes(root)) == expected
    assert len(summary.meta) == len(meta) and summary.size_bytes > 0
    assert [p.name for p in root.parent.iterdir()] == [root.name], "a staging folder was left behind"


def test_meta_matches_the_files(dataset):
    root, meta, _ = dataset
    for row in meta.itertuples():
        if row.split == "test":
            path = root / "test_images" / f"{row.case_id}.png"
        else:
            path = root / "train_images" / row.label / f"{row.case_id}.png"
        assert probe_image(path, MAX_PIXELS) == (row.width, row.height, row.mode), path
        assert TINY.min_side <= min(row.width, row.height) and max(row.width, row.height) <= TINY.max_side
    assert set(meta["mode"]) <= set(TINY.modes)
    assert meta["jpeg"].dtype == bool
    assert (meta.loc[meta["label"] == "authentic", "n_instances"] == 0).all()


def test_masks_are_instances_of_source_and_copies(dataset):
    root, meta, _ = dataset
    for row in meta.query("split == 'train' and label == 'forged'").itertuples():
        image = read_image(root / "train_images" / "forged" / f"{row.case_id}.png", MAX_PIXELS)
        raw = np.load(root / "train_masks" / f"{row.case_id}.npy")
        assert raw.dtype == np.uint8 and raw.ndim == 3 and set(np.unique(raw)) == {0, 1}
        assert raw.shape[1:] == image.shape[:2]
        masks = load_mask(root / "train_masks" / f"{row.case_id}.npy", image.shape[:2])
        assert TINY.instances[0] <= len(masks) <= TINY.instances[1] and len(masks) == row.n_instances
        assert masks.sum(axis=0).max() == 1, "instances overlap"
        for instance in masks:
            assert components(instance) >= 2, f"{row.case_id}: an instance needs its source and a copy"


def all_forged_masks(root: Path, meta: pd.DataFrame) -> dict[str, np.ndarray]:
    masks = {c: np.load(root / "train_masks" / f"{c}.npy") for c in forged_train_cases(meta)}
    solution = pd.read_csv(root / "solution.csv", dtype={"case_id": str})
    for row in solution[solution["annotation"] != AUTHENTIC].itertuples():
        masks[row.case_id] = np.stack(decode_annotation(row.annotation, tuple(json.loads(row.shape))))
    return masks


def test_forged_area_stays_in_range(dataset):
    root, meta, _ = dataset
    masks = all_forged_masks(root, meta)
    assert len(masks) == len(meta[meta["label"] == "forged"])
    for case_id, mask in masks.items():
        fraction = mask.any(axis=0).mean()
        assert MIN_FORGED_FRACTION <= fraction <= MAX_FORGED_FRACTION, (case_id, fraction)


def test_forged_twin_equals_authentic_outside_the_mask(dataset):
    root, meta, _ = dataset
    forged = meta.query("split == 'train' and label == 'forged'")
    assert forged["jpeg"].any(), "no JPEG forged case at this seed: the JPEG twin path would go untested"
    for case_id in forged["case_id"]:
        authentic = read_image(root / "train_images" / "authentic" / f"{case_id}.png", MAX_PIXELS)
        twin = read_image(root / "train_images" / "forged" / f"{case_id}.png", MAX_PIXELS)
        inside = np.load(root / "train_masks" / f"{case_id}.npy").any(axis=0)
        assert np.array_equal(authentic[~inside], twin[~inside]), case_id
        assert (authentic[inside] != twin[inside]).any(), f"{case_id}: the copies changed nothing"


def test_solution_decodes_to_exactly_the_test_masks(dataset):
    root, _, _ = dataset
    solution = pd.read_csv(root / "solution.csv", dtype={"case_id": str})
    plans = [p for p in plan_cases(TINY) if p.split == "test"]
    assert solution["case_id"].tolist() == [p.case_id for p in plans]
    for plan, row in zip(plans, solution.itertuples()):
        case = make_case(plan, TINY)
        saved = read_image(root / "test_images" / f"{plan.case_id}.png", MAX_PIXELS)
        if not plan.forged:
            assert row.annotation == AUTHENTIC and row.shape == AUTHENTIC
            assert np.array_equal(saved, case.authentic)
            continue
        assert json.loads(row.shape) == list(saved.shape[:2])
        decoded = np.stack(decode_annotation(row.annotation, tuple(json.loads(row.shape))))
        assert np.array_equal(decoded, case.forgery.masks.astype(bool))
        assert np.array_equal(saved, case.forgery.image)


def test_same_seed_same_bytes_and_another_seed_differs(dataset, tmp_path):
    root, _, _ = dataset
    again = generate_dataset(TINY, tmp_path / "again").root
    other = generate_dataset(dataclasses.replace(TINY, seed=TINY.seed + 1), tmp_path / "other").root
    assert file_hashes(again) == file_hashes(root)
    differing = {k for k, v in file_hashes(other).items() if file_hashes(root).get(k) != v}
    assert any(k.endswith(".png") for k in differing)


def test_every_kind_is_produced_and_forged_in_its_share(dataset):
    _, meta, _ = dataset
    train = meta[meta["split"] == "train"]
    assert set(train["kind"]) == set(KINDS)
    cases = train[train["label"] == "authentic"]["kind"].value_counts()
    forged = train[train["label"] == "forged"]["kind"].value_counts().reindex(cases.index, fill_value=0)
    for kind, n in cases.items():
        assert math.floor(n * TINY.forged_share) <= forged[kind] <= math.ceil(n * TINY.forged_share), kind


@pytest.mark.parametrize("kind", KINDS)
def test_render_figure_draws_every_kind(kind):
    rng = np.random.default_rng(0)
    figure = render_figure(kind, 130, 170, rng)
    assert figure.image.shape == (130, 170, 3) and figure.image.dtype == np.uint8
    assert figure.layout.shape == (130, 170) and set(np.unique(figure.layout)) <= {0, 1}
    picture = figure.image[figure.layout == 0]
    assert picture.size and picture.std() > 5, "a figure needs visible content"
    again = render_figure(kind, 130, 170, np.random.default_rng(0))
    assert np.array_equal(figure.image, again.image)


@pytest.mark.parametrize("kind", KINDS)
def test_forge_with_every_transform(kind):
    params = dataclasses.replace(TINY, p_flip=1.0, p_rotate=1.0, p_scale=1.0, p_brightness=1.0, copies=(2, 4))
    rng = np.random.default_rng(1)
    figure = render_figure(kind, 200, 260, rng)
    forgery = forge(figure.image, rng, params, avoid=figure.layout)
    inside = forgery.masks.any(axis=0)
    assert MIN_FORGED_FRACTION <= inside.mean() <= MAX_FORGED_FRACTION
    assert np.array_equal(forgery.image[~inside], figure.image[~inside])
    assert not (inside & figure.layout.astype(bool)).any(), "a copy touched text or the page"
    assert all(regions >= 2 for regions in forgery.regions)
    found = [components(instance) for instance in forgery.masks]
    assert found == list(forgery.regions), "a copy touches its source or another copy, or split in pieces"


@pytest.mark.parametrize("kind", ["fluorescence", "em"])
def test_crowded_copies_stay_separate_blobs(kind):
    # Many copies in a small figure: copies land close together, so any that touched its source,
    # another copy or another event would merge with it into one blob and show here.
    params = dataclasses.replace(TINY, instances=(3, 3), copies=(4, 4))
    for seed in range(6):
        rng = np.random.default_rng(seed)
        figure = render_figure(kind, 80, 96, rng)
        forgery = forge(figure.image, rng, params, avoid=figure.layout)
        assert [components(instance) for instance in forgery.masks] == list(forgery.regions), seed
        assert components(forgery.masks.any(axis=0)) == sum(forgery.regions), seed


def test_forge_rejects_what_it_cannot_use():
    with pytest.raises(ValueError, match="RGB uint8"):
        forge(np.zeros((64, 64), np.uint8), np.random.default_rng(0), TINY)
    with pytest.raises(ValueError, match="unknown figure kind 'poster'"):
        render_figure("poster", 100, 100, np.random.default_rng(0))


@pytest.mark.parametrize("change, named", [
    ({"kinds": {"blot": 1.0, "poster": 1.0}}, "poster"),
    ({"kinds": {"blot": 0.0}}, "kinds"),
    ({"modes": {"CMYK": 1.0}}, "CMYK"),
    ({"min_side": 300, "max_side": 200}, "min_side"),
    ({"instances": (0, 2)}, "instances"),
    ({"p_jpeg": 1.5}, "p_jpeg"),
    ({"n_cases": 0, "n_test": 0}, "n_cases"),
])
def test_bad_params_are_named(change, named):
    with pytest.raises(ParamsError, match=named):
        check_synth_params(dataclasses.replace(TINY, **change))


def test_rerun_replaces_stale_files(tmp_path):
    small = dataclasses.replace(TINY, n_cases=3, n_test=1)
    root = tmp_path / "synthetic"
    generate_dataset(small, root)
    (root / "train_images" / "authentic" / "99999.png").write_bytes(b"stale")
    generate_dataset(small, root)
    assert not (root / "train_images" / "authentic" / "99999.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]


def test_a_failed_run_leaves_the_previous_dataset(tmp_path, monkeypatch):
    small = dataclasses.replace(TINY, n_cases=3, n_test=1)
    root = tmp_path / "synthetic"
    generate_dataset(small, root)
    before = file_hashes(root)
    calls = []

    def failing_make_case(plan, params):
        calls.append(plan)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return make_case(plan, params)

    monkeypatch.setattr(synth, "make_case", failing_make_case)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(dataclasses.replace(small, seed=99), root)
    assert file_hashes(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hw", [(800, 800), (100, 900), (64, 74)])
def test_render_figure_handles_sizes_beyond_the_defaults(kind, hw):
    figure = render_figure(kind, *hw, np.random.default_rng(3))
    assert figure.image.shape == (*hw, 3)
