import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stages import build_index as build_index_stage
from stages.common.index import INDEX_COLUMNS, OK, build_index, read_index, status_counts, usable_rows
from stages.common.io import write_csv
from messy_data import MESSY_MAX_PIXELS, make_competition_root, make_messy_root, save_image, texture

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy")
    expected = make_messy_root(root)
    return root, expected, build_index(root, MESSY_MAX_PIXELS)


def rows_naming(index: pd.DataFrame, rel: str) -> pd.DataFrame:
    return index[(index["image_path"] == rel) | (index["mask_path"] == rel)]


def test_every_file_gets_its_expected_status(messy):
    _, expected, index = messy
    wrong = {}
    for rel, status in expected.items():
        found = rows_naming(index, rel)["status"].tolist()
        if not found or set(found) != {status}:
            wrong[rel] = (status, found)
    assert not wrong, f"expected vs found statuses: {wrong}"


def test_every_file_appears_and_nothing_else(messy):
    root, expected, index = messy
    named = set(index["image_path"]) | set(index["mask_path"])
    named.discard("")
    assert named == set(expected)
    assert not any(p.startswith("test_images/") for p in named)


def test_one_row_per_image_or_unclaimed_file(messy):
    _, expected, index = messy
    # masks claimed by an image share its row; every other file is a row of its own
    claimed = set(index.loc[index["image_path"] != "", "mask_path"]) - {""}
    assert len(index) == len(set(expected) - claimed)
    assert index["image_path"].replace("", np.nan).dropna().is_unique


def test_faults_have_reasons_that_name_the_file(messy):
    _, _, index = messy
    faults = index[index["status"] != OK]
    assert (index.loc[index["status"] == OK, "reason"] == "").all()
    for row in faults.itertuples():
        named = Path(row.image_path or row.mask_path)
        assert row.reason, row
        assert named.name in row.reason or named.stem in row.reason, row


def test_specific_reasons_explain_the_problem(messy):
    _, _, index = messy
    reason = dict(zip(index["image_path"].where(index["image_path"] != "", index["mask_path"]), index["reason"]))
    assert "truncated" in reason["train_images/authentic/truncated.png"]
    assert "zero-byte" in reason["train_images/authentic/empty.png"]
    assert "train_masks/no_mask.npy" in reason["train_images/forged/no_mask.png"]
    assert "does not match" in reason["train_images/forged/mask_2d_mismatch.png"]
    assert "NaN" in reason["train_images/forged/nan_mask.png"]
    assert "2" in reason["train_images/forged/values_02.png"]
    assert "max_image_pixels" in reason["train_images/authentic/huge.png"]


def test_columns_sources_labels_and_modes(messy):
    _, _, index = messy
    assert tuple(index.columns) == INDEX_COLUMNS
    by_path = index.set_index(index["image_path"].where(index["image_path"] != "", index["mask_path"]))
    assert by_path.loc["train_images/authentic/rgba.png", "mode"] == "RGBA"
    assert by_path.loc["train_images/authentic/gray.png", "mode"] == "L"
    assert by_path.loc["train_images/authentic/gray16.png", "mode"].startswith("I")
    assert by_path.loc["train_images/authentic/jpeg_named_png.png", "mode"] == "RGB"
    assert by_path.loc["train_masks/orphan.npy", "source"] == "train_masks"
    assert by_path.loc["supplemental_masks/supp_orphan.npy", "source"] == "supplemental_masks"
    assert by_path.loc["supplemental_images/supp.png", ["source", "label"]].tolist() == ["supplemental", "forged"]
    assert by_path.loc["train_images/authentic/twin.png", ["mask_path", "label"]].tolist() == ["", "authentic"]
    # a truncated image still reports the size its header announces
    assert by_path.loc["train_images/authentic/truncated.png", "width"] == 32


def test_accepted_mask_layouts_are_normalised(messy):
    _, _, index = messy
    ok_forged = usable_rows(index).query("label == 'forged'").set_index("case_id")
    reference = ok_forged.loc["twin", "forged_fraction"]
    assert ok_forged.loc["twin", "n_instances"] == 2
    assert ok_forged.loc["hwn_mask", "n_instances"] == 2
    assert ok_forged.loc["hw_mask", "n_instances"] == 1
    for case_id in ("hw_mask", "hwn_mask", "float_mask", "bool_mask", "supp"):
        assert ok_forged.loc[case_id, "forged_fraction"] == pytest.approx(reference)


def test_sha1_matches_the_file_bytes(messy):
    import hashlib

    root, _, index = messy
    for row in index.itertuples():
        rel = row.image_path or row.mask_path
        if (root / rel).is_file():
            assert row.sha1 == hashlib.sha1((root / rel).read_bytes()).hexdigest()
        else:
            assert row.sha1 == ""


def test_competition_layout_is_all_ok_with_right_statistics(tmp_path):
    truth = make_competition_root(tmp_path, n_cases=9)
    index = build_index(tmp_path, DEFAULT_MAX_PIXELS)
    assert status_counts(index) == {OK: len(truth)}
    assert set(index["mode"]) == {"RGB", "RGBA", "L"}
    twins = index.groupby("case_id")["label"].nunique()
    assert (twins == 2).sum() == 4
    for row in index.itertuples():
        n_instances, fraction = truth[row.image_path]
        assert row.n_instances == n_instances
        assert row.forged_fraction == pytest.approx(fraction)
        assert row.mask_path == (f"train_masks/{row.case_id}.npy" if row.label == "forged" else "")


def test_index_round_trips_through_csv_with_types(tmp_path, messy):
    _, _, index = messy
    write_csv(tmp_path / "index.csv", index)
    back = read_index(tmp_path / "index.csv")
    pd.testing.assert_frame_equal(back, index, check_dtype=False)
    assert back["width"].dtype == "Int64"


def test_case_ids_keep_leading_zeros(tmp_path):
    save_image(tmp_path / "train_images/authentic/00123.png", texture(np.random.default_rng(0), 8, 8), "PNG")
    write_csv(tmp_path / "index.csv", build_index(tmp_path, DEFAULT_MAX_PIXELS))
    assert read_index(tmp_path / "index.csv")["case_id"].tolist() == ["00123"]


def test_read_index_names_missing_columns(tmp_path):
    pd.DataFrame({"case_id": ["1"]}).to_csv(tmp_path / "index.csv", index=False)
    with pytest.raises(ValueError, match="missing column"):
        read_index(tmp_path / "index.csv")


def use_params(tmp_path: Path, monkeypatch, root: Path) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["root"] = str(root)
    params["data"]["index"] = str(tmp_path / "out" / "index.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return Path(params["data"]["index"])


def test_stage_writes_the_index_and_prints_a_summary(tmp_path, monkeypatch, capsys):
    make_competition_root(tmp_path / "data", n_cases=4)
    (tmp_path / "data/train_images/forged/stray.txt").write_text("x")
    index_path = use_params(tmp_path, monkeypatch, tmp_path / "data")
    build_index_stage.main()
    out = capsys.readouterr().out
    assert "ok" in out and "not_an_image" in out
    assert len(read_index(index_path)) == 7


def test_stage_exits_when_no_usable_row_remains(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "train_images/authentic").mkdir(parents=True)
    (root / "train_images/authentic/a.png").write_bytes(b"")
    index_path = use_params(tmp_path, monkeypatch, root)
    with pytest.raises(SystemExit, match="no usable image") as info:
        build_index_stage.main()
    assert str(index_path) in str(info.value)
    assert read_index(index_path)["status"].tolist() == ["empty_file"]  # written, to be read


def test_stage_exits_on_an_empty_layout(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    use_params(tmp_path, monkeypatch, tmp_path / "data")
    with pytest.raises(SystemExit, match="no files found .*train_images/authentic"):
        build_index_stage.main()


def test_stage_exits_nonzero_naming_a_missing_root(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["root"] = str(tmp_path / "nowhere")
    params["data"]["index"] = str(tmp_path / "index.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    done = subprocess.run(
        [sys.executable, "-m", "stages.build_index"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "nowhere" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "index.csv").exists()


def test_worker_processes_give_the_same_index(messy):
    root, _, index = messy
    pd.testing.assert_frame_equal(build_index(root, MESSY_MAX_PIXELS, workers=2), index)
