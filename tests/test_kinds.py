import numpy as np
import pandas as pd
import pytest

from stages.common.kinds import describe_forgery_kind, instances, kind_distribution, per_kind_report, read_meta

META = pd.DataFrame([
    # case 1: a blot with a lane and a patch event; case 2: a panels figure with one panel event
    {"case_id": "1", "split": "train", "kind": "blot", "label": "authentic", "forgery_kinds": "", "transforms": "",
     "instance_fractions": "", "instance_blobs": ""},
    {"case_id": "1", "split": "train", "kind": "blot", "label": "forged", "forgery_kinds": "lane;patch",
     "transforms": "none;flip-h|none", "instance_fractions": "0.1;0.02", "instance_blobs": "2;3"},
    {"case_id": "2", "split": "train", "kind": "panels", "label": "authentic", "forgery_kinds": "", "transforms": "",
     "instance_fractions": "", "instance_blobs": ""},
    {"case_id": "2", "split": "train", "kind": "panels", "label": "forged", "forgery_kinds": "panel",
     "transforms": "x0.90", "instance_fractions": "0.3", "instance_blobs": "2"},
])


def results(called: dict[tuple[str, str], tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"case_id": c, "label": l, "predicted": p, "of1": f} for (c, l), (p, f) in called.items()])


def test_instances_are_one_row_each_in_mask_order():
    table = instances(META)
    assert table["forgery_kind"].tolist() == ["lane", "patch", "panel"]
    assert table["blobs"].tolist() == [2, 3, 2]
    assert table["area_fraction"].tolist() == pytest.approx([0.1, 0.02, 0.3])
    assert table["transform"].tolist() == ["none", "flip-h|none", "x0.90"]


def test_kind_distribution_counts_instances_and_images():
    dist = kind_distribution(META)
    assert dist["lane"]["instances"] == 1 and dist["panel"]["area_fraction"]["max"] == pytest.approx(0.3)
    assert set(dist) == {"lane", "patch", "panel"}


def test_per_kind_report_counts_an_image_under_each_of_its_kinds():
    report = per_kind_report(results({("1", "forged"): ("forged", 0.5), ("1", "authentic"): ("forged", 0.0),
                                      ("2", "forged"): ("authentic", 0.0), ("2", "authentic"): ("authentic", 1.0)}),
                             META)
    by_forgery = report["forgery_kind"]
    assert by_forgery["lane"] == by_forgery["patch"] == {"n_forged": 1, "detection_rate": 1.0, "of1": 0.5}
    assert by_forgery["panel"] == {"n_forged": 1, "detection_rate": 0.0, "of1": 0.0}
    assert report["figure_kind"]["blot"]["false_alarm_rate"] == 1.0
    assert report["figure_kind"]["panels"] == {"n_authentic": 1, "false_alarm_rate": 0.0, "n_forged": 1,
                                               "detection_rate": 0.0, "of1": 0.0}


def test_per_kind_report_counts_the_instances_found_of_each_kind():
    called = results({("1", "forged"): ("forged", 0.4), ("2", "forged"): ("forged", 0.3)})
    # case 1's lane (channel 0) is found, its patch (channel 1) is not; case 2's one panel half.
    # The lane's mask lies on it but covers two thirds; the patch's misses it altogether.
    matched = pd.DataFrame({"case_id": ["1", "1", "2"], "instance": [0, 1, 0], "matched_f1": [0.8, 0.0, 0.5],
                            "matched_precision": [1.0, np.nan, 0.5], "matched_recall": [2 / 3, np.nan, 0.5]})
    by_forgery = per_kind_report(called, META, matched)["forgery_kind"]
    assert by_forgery["lane"] == {"n_forged": 1, "detection_rate": 1.0, "of1": 0.4, "n_instances": 1,
                                  "instances_found": 1.0, "instance_f1": 0.8, "instance_precision": 1.0,
                                  "instance_recall": 0.6667}
    assert by_forgery["patch"]["instance_precision"] is None and by_forgery["patch"]["instance_recall"] is None
    assert by_forgery["patch"]["instances_found"] == 0.0 and by_forgery["patch"]["instance_f1"] == 0.0
    assert by_forgery["panel"]["instances_found"] == 1.0  # FOUND_F1 itself counts as found
    assert "n_instances" not in per_kind_report(called, META)["forgery_kind"]["lane"]


def test_a_forgery_kind_reads_as_one_line_and_leaves_out_what_it_lacks():
    row = {"n_forged": 8, "detection_rate": 0.875, "of1": 0.6685}
    assert describe_forgery_kind(row) == "  8 forged images, 88% called forged, oF1 0.668"
    row |= {"n_instances": 8, "instances_found": 0.625, "instance_precision": None, "instance_recall": None}
    assert describe_forgery_kind(row).endswith("; 62% of 8 instances found")
    row |= {"instance_precision": 0.951, "instance_recall": 0.58}
    assert describe_forgery_kind(row).endswith("found, their masks' precision 0.95 and recall 0.58")


def test_data_without_meta_has_no_breakdown(tmp_path):
    assert read_meta(tmp_path) is None
    (tmp_path / "meta.csv").write_text("case_id,width\n1,3\n")
    assert read_meta(tmp_path) is None
