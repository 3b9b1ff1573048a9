import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from stages import analyze as analyze_stage
from stages.common.analysis import instance_components, pick_samples, summarize
from stages.common.index import build_index
from stages.common.io import write_csv
from messy_data import MESSY_MAX_PIXELS, make_competition_root, make_messy_root

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("sizes", "instances", "forged_area", "sample_grid")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    truth = make_competition_root(root, n_cases=10)
    return root, truth, build_index(root, 40_000_000)


def run_stage(tmp_path: Path, monkeypatch, root: Path, index: pd.DataFrame) -> dict:
    write_csv(tmp_path / "index.csv", index)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["root"] = str(root)
    params["data"]["index"] = str(tmp_path / "index.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    analyze_stage.main()
    return json.loads((tmp_path / "reports/analysis.json").read_text())


def assert_plain(value) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str
            assert_plain(v)
    else:
        assert value is None or type(value) in (int, float, str), (value, type(value))


def test_stage_writes_report_and_figures(tmp_path, monkeypatch, clean):
    root, truth, index = clean
    report = run_stage(tmp_path, monkeypatch, root, index)
    assert set(report) >= {"files", "by_status", "by_source", "usable", "sizes", "instances_per_image",
                           "components_per_instance", "forged_fraction"}
    assert report["by_status"] == {"ok": len(truth)}
    assert report["usable"]["by_label"] == {"authentic": 10, "forged": 5}
    assert report["usable"]["by_mode"].keys() == {"RGB", "RGBA", "L"}
    assert report["usable"]["cases_with_both_labels"] == 5
    widths = index["width"].to_numpy(dtype=float)
    assert report["sizes"]["width"]["min"] == widths.min() and report["sizes"]["width"]["p50"] == np.median(widths)
    n_instances = [n for n, _ in truth.values() if n]
    assert report["instances_per_image"] == {str(n): n_instances.count(n) for n in sorted(set(n_instances))}
    fractions = [f for n, f in truth.values() if n]
    assert report["forged_fraction"]["max"] == pytest.approx(max(fractions))
    assert_plain(report)
    for name in FIGURES:
        with Image.open(tmp_path / f"reports/figures/{name}.png") as figure:
            assert figure.format == "PNG" and figure.width > 100
    assert not list((tmp_path / "reports").rglob(".*tmp*"))


def test_components_are_counted_per_instance(clean):
    root, truth, index = clean
    components = instance_components(index, root)
    # every instance of make_competition_root is a source square and its copy
    assert components == [2] * sum(n for n, _ in truth.values())


def test_summary_counts_every_status_but_describes_usable_rows(tmp_path):
    make_messy_root(tmp_path)
    index = build_index(tmp_path, MESSY_MAX_PIXELS)
    report = summarize(index, instance_components(index, tmp_path))
    assert sum(report["by_status"].values()) == len(index) == report["files"]
    assert report["by_status"]["mask_shape"] == 3
    assert report["usable"]["images"] == report["by_status"]["ok"]
    assert report["usable"]["by_mode"]["RGBA"] == 1
    # five masks of two 2-blob instances, and one (H, W) mask merging them into 4 blobs
    assert report["components_per_instance"]["counts"] == {"2": 10, "4": 1}
    assert_plain(report)


def test_stage_survives_an_index_with_nothing_usable(tmp_path, monkeypatch):
    index = build_index(make_root_with_one_broken_file(tmp_path), 40_000_000)
    report = run_stage(tmp_path, monkeypatch, tmp_path / "data", index)
    assert report["usable"]["images"] == 0 and report["forged_fraction"] is None
    assert all((tmp_path / f"reports/figures/{name}.png").is_file() for name in FIGURES)


def make_root_with_one_broken_file(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "train_images/forged").mkdir(parents=True)
    (root / "train_images/forged/1.png").write_bytes(b"not a png")
    return root


def test_samples_cover_every_kind_and_prefer_forged_cases(clean):
    root, _, index = clean
    cases = sorted(index["case_id"].unique())
    kinds = {case_id: ("blot", "em", "histology")[i % 3] for i, case_id in enumerate(cases)}
    samples = pick_samples(index, kinds, n=3)
    assert sorted(s.kind for s in samples) == ["blot", "em", "histology"]
    assert all(s.forged is not None and s.authentic is not None for s in samples)
    assert [s.case_id for s in pick_samples(index, kinds, n=3)] == [s.case_id for s in samples]
    assert len(pick_samples(index, {}, n=20)) == 10


def test_stage_asks_for_a_new_index_when_a_mask_changed(tmp_path, monkeypatch):
    root = tmp_path / "data"
    make_competition_root(root, n_cases=4)
    index = build_index(root, 40_000_000)
    np.save(root / "train_masks/10002.npy", np.zeros((1, 3, 3), np.uint8))
    with pytest.raises(SystemExit, match="10002.npy.*run build-index again"):
        run_stage(tmp_path, monkeypatch, root, index)
