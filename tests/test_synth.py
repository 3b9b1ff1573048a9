import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
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
    FORGERY_KINDS, KINDS, MAX_FORGED_FRACTION, MIN_FORGED_FRACTION, check_synth_params, forge, generate_dataset,
    make_case, plan_cases, render_figure,
)
from stages.common.synth.forge import OBJECT_FRACTION

MAX_PIXELS = 40_000_000

TINY = SynthParams(
    seed=7, n_cases=12, forged_share=0.5, n_test=6, test_forged_share=0.5, min_side=96, max_side=160,
    kinds={kind: 1.0 for kind in KINDS}, forgery_kinds={kind: 1.0 for kind in FORGERY_KINDS},
    instances=(1, 3), copies=(1, 3), p_flip=0.3, p_scale=0.4, p_brightness=0.4, p_jpeg=0.6,
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
    params = dataclasses.replace(TINY, p_flip=1.0, p_scale=1.0, p_brightness=1.0, copies=(2, 4))
    rng = np.random.default_rng(1)
    figure = render_figure(kind, 200, 260, rng)
    forgery = forge(figure.image, rng, params, figure)
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
    params = dataclasses.replace(TINY, instances=(3, 3), copies=(4, 4), forgery_kinds={"object": 1.0, "rotated": 1.0})
    for seed in range(6):
        rng = np.random.default_rng(seed)
        figure = render_figure(kind, 80, 96, rng)
        forgery = forge(figure.image, rng, params, figure)
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
    ({"forgery_kinds": {"splice": 1.0}}, "splice"),
    ({"forgery_kinds": {"object": 0.0}}, "forgery_kinds"),
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

    monkeypatch.setattr(synth.dataset, "make_case", failing_make_case)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(dataclasses.replace(small, seed=99), root)
    assert file_hashes(root) == before
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hw", [(800, 800), (100, 900), (64, 74)])
def test_render_figure_handles_sizes_beyond_the_defaults(kind, hw):
    figure = render_figure(kind, *hw, np.random.default_rng(3))
    assert figure.image.shape == (*hw, 3)


# ---------------------------------------------------------------- forgery kinds

# The figure kinds each forgery kind is tried on: lanes need blots, panels need multi-panel figures.
KIND_FIGURES = {"object": KINDS, "rotated": KINDS, "patch": ("blot", "fluorescence", "histology", "em"),
                "lane": ("blot",), "panel": ("panels",)}
CASES_PER_KIND = [(kind, figure_kind, seed) for kind, figures in KIND_FIGURES.items()
                  for figure_kind in figures for seed in range(2)]


def only(kind: str, **change) -> SynthParams:
    return dataclasses.replace(TINY, forgery_kinds={k: float(k == kind) for k in FORGERY_KINDS}, **change)


def forged_alone(kind: str, figure_kind: str, seed: int, **change):
    rng = np.random.default_rng(seed)
    figure = render_figure(figure_kind, 220, 300, rng)
    return figure, forge(figure.image, rng, only(kind, **change), figure)


def blobs(mask: np.ndarray) -> list[np.ndarray]:
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, count)]


def bounding_box(blob: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(blob.any(axis=1)), np.flatnonzero(blob.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@pytest.mark.parametrize("kind, figure_kind, seed", CASES_PER_KIND)
def test_every_forgery_kind_changes_exactly_its_masks(kind, figure_kind, seed):
    figure, forgery = forged_alone(kind, figure_kind, seed)
    assert set(forgery.kinds) == {kind}
    inside = forgery.masks.any(axis=0)
    assert np.array_equal(forgery.image[~inside], figure.image[~inside]), "a pixel changed outside the masks"
    assert not (inside & figure.layout.astype(bool)).any(), "a copy touched text or the page"
    assert MIN_FORGED_FRACTION <= inside.mean() <= MAX_FORGED_FRACTION
    for instance, regions in zip(forgery.masks, forgery.regions):
        assert regions >= 2 and components(instance) == regions, "an instance lost its source or a copy"
        changed = [(forgery.image[b] != figure.image[b]).any() for b in blobs(instance)]
        assert sum(changed) >= regions - 1, "a copy left its place unchanged"


@pytest.mark.parametrize("kind, figure_kind, seed", [c for c in CASES_PER_KIND if c[0] != "rotated"])
def test_untransformed_copies_repeat_their_source_pixel_for_pixel(kind, figure_kind, seed):
    # With no flip, scaling or retouching, each copy is the source's pixels moved: the mask says
    # exactly where they are.
    figure, forgery = forged_alone(kind, figure_kind, seed, p_flip=0.0, p_scale=0.0, p_brightness=0.0)
    for instance in forgery.masks:
        patches = [(b[bounding_box(b)], forgery.image[bounding_box(b)]) for b in blobs(instance)]
        source_shape, source_pixels = patches[0]
        for shape, pixels in patches[1:]:
            assert np.array_equal(shape, source_shape)
            assert np.array_equal(pixels[shape], source_pixels[source_shape])


@pytest.mark.parametrize("kind, figure_kind, seed", [c for c in CASES_PER_KIND if c[0] in ("patch", "lane", "panel")])
def test_rectangular_kinds_are_filled_rectangles(kind, figure_kind, seed):
    _, forgery = forged_alone(kind, figure_kind, seed)
    for instance in forgery.masks:
        for blob in blobs(instance):
            assert blob[bounding_box(blob)].all(), "a rectangular copy's mask is not its whole box"


def test_patches_reach_large_areas_and_the_border():
    fractions, touches = [], 0
    for seed in range(12):
        _, forgery = forged_alone("patch", "fluorescence", seed)
        fractions.append(forgery.masks.any(axis=0).mean())
        edge = forgery.masks.any(axis=0)
        touches += bool(edge[0].any() or edge[-1].any() or edge[:, 0].any() or edge[:, -1].any())
    assert max(fractions) > 3 * OBJECT_FRACTION, "patches stay as small as object copies"
    assert touches, "no patch ever touched the figure's border"


def test_rotated_copies_turn_by_an_arbitrary_angle():
    for seed in range(4):
        _, forgery = forged_alone("rotated", "fluorescence", seed)
        for transforms in forgery.transforms:
            for copy in transforms.split("|"):
                angle = float(copy.split("rot")[1].split()[0])
                assert min(angle % 90, 90 - angle % 90) >= 5, copy


@pytest.mark.parametrize("kind", FORGERY_KINDS)
def test_every_forgery_kind_can_be_turned_off(kind):
    params = dataclasses.replace(TINY, n_cases=10, n_test=4, forgery_kinds={
        k: float(k != kind) for k in FORGERY_KINDS})
    for plan in plan_cases(params):
        case = make_case(plan, params)
        if case.forgery is not None:
            assert kind not in case.forgery.kinds


def test_meta_records_every_instance(dataset):
    root, meta, _ = dataset
    forged = meta[meta["label"] == "forged"]
    assert set(";".join(forged["forgery_kinds"]).split(";")) <= set(FORGERY_KINDS)
    for row in forged.itertuples():
        kinds, transforms = row.forgery_kinds.split(";"), row.transforms.split(";")
        fractions = [float(v) for v in str(row.instance_fractions).split(";")]
        blob_counts = [int(v) for v in str(row.instance_blobs).split(";")]
        assert len(kinds) == len(transforms) == len(fractions) == len(blob_counts) == row.n_instances
        if row.split == "train":
            masks = np.load(root / "train_masks" / f"{row.case_id}.npy")
            assert [components(m) for m in masks] == blob_counts
            assert np.allclose([m.mean() for m in masks], fractions, atol=1e-5)
            assert all(len(t.split("|")) == n - 1 for t, n in zip(transforms, blob_counts))


def test_forgery_kinds_that_cannot_forge_a_figure_kind_are_named():
    with pytest.raises(ParamsError, match="cannot forge kinds em"):
        check_synth_params(dataclasses.replace(TINY, kinds={"blot": 1.0, "em": 1.0},
                                               forgery_kinds={"lane": 1.0, "panel": 0.0}))
    check_synth_params(dataclasses.replace(TINY, kinds={"blot": 1.0}, forgery_kinds={"lane": 1.0}))


NO_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR"  # NumPy's AVX-512 kernel groups
PIXEL_MATHS = """
import hashlib, sys
import numpy as np
from stages.common.synth import raster
rng = np.random.default_rng(0)
x, y = rng.uniform(-3, 3, (2, 200_000)).astype(np.float32)
outputs = [raster.exp(x), raster.cos(x), raster.arctan2(y, x), raster.hypot(x, y), raster.power(np.abs(x), 2.7),
           raster.soft(raster.blob_distance(20.0, 31.0, 0.7, 0.1, rng), 0.6)]
print(hashlib.sha256(b"".join(o.tobytes() for o in outputs)).hexdigest())
"""


needs_avx512 = pytest.mark.skipif("X86_V4" not in np.__config__.CONFIG["SIMD Extensions"].get("found", []),
                                  reason="this CPU has no AVX-512 kernels to compare against")


def run_python(code: str, env: dict[str, str]) -> str:
    """`code`'s standard output, run in a fresh interpreter with `env` added to this one's."""
    return subprocess.run([sys.executable, "-c", code], env=os.environ | env, check=True, text=True,
                          capture_output=True, cwd=Path(__file__).parents[1]).stdout


@needs_avx512
def test_pixels_do_not_depend_on_the_cpus_simd_kernels():
    """NumPy picks AVX-512, AVX2 or scalar kernels by CPU, and in float32 they disagree in the last
    bit; the generator's maths must give the same bits either way."""
    assert run_python(PIXEL_MATHS, {"NPY_DISABLE_CPU_FEATURES": NO_AVX512}) == run_python(PIXEL_MATHS, {})


def test_panels_never_show_two_fields_of_the_one_tissue_photograph(monkeypatch):
    """Two crops of the bundled photograph in one figure could overlap: one specimen shown as two
    conditions is a duplication, so an 'authentic' label there would be wrong."""
    from stages.common.synth import histology, panels

    procedural = []

    def no_crop(*args, **kwargs):
        raise AssertionError("a panel was cropped from the bundled photograph")

    def counted(*args, **kwargs):
        procedural.append(1)
        return stained_tissue(*args, **kwargs)

    stained_tissue = histology._stained_tissue
    monkeypatch.setattr(histology, "_crop_photograph", no_crop)
    monkeypatch.setattr(histology, "_stained_tissue", counted)
    for seed in range(12):
        panels.render(240, 320, np.random.default_rng(seed))
    assert procedural, "no tissue panel was drawn, so the test saw nothing"
