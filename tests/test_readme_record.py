"""The README's "Results of the default run" quotes the committed record: its tables and its test
self-score are the numbers in reports/metrics.json and reports/predict_summary.json, as the README
rounds them. A record made again (on another host, with other code) whose numbers moved fails here
until the README says what it measured.
"""
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ("maskrcnn", "keypoint", "fusion")


@pytest.fixture(scope="module")
def results() -> str:
    """The README's "Results of the default run" section."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Results of the default run")
    return readme[start:readme.index("\n## ", start + 1)]


def table(section: str, header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table whose header line starts with `header`, by their first cell."""
    lines = section[section.index(header):].splitlines()
    rows = {}
    for line in lines[2:]:  # past the header and its rule
        if not line.startswith("|"):
            break
        first, *cells = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows[first] = cells
    return rows


def as_quoted(value: float, cell: str) -> str:
    """`value` written as `cell` writes its number: a whole percentage, or as many decimals."""
    if cell.endswith("%"):
        return f"{100 * value:.0f}%"
    decimals = len(cell.split(".")[1]) if "." in cell else 0
    return f"{value:.{decimals}f}"


def parts(cell: str) -> list[str]:
    return [part.strip() for part in cell.split("/")]


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((REPO / "reports/metrics.json").read_text())


def test_the_detectors_table_is_the_committed_validation_record(results, metrics):
    rows = table(results, "| detector | validation oF1 |")
    assert [name.split()[0] for name in rows] == list(DETECTORS)
    keys = ("of1", "all_authentic_of1", "forged_of1", "authentic_accuracy", "image_auc", "pixel_f1")
    for name, cells in rows.items():
        recorded = metrics["detectors"][name.split()[0]]
        quoted = [as_quoted(recorded[key], cell) for key, cell in zip(keys, cells)]
        assert cells == quoted, (name, dict(zip(keys, cells)), "the record reads", dict(zip(keys, quoted)))


def test_the_test_self_score_is_the_committed_predict_summary(results):
    summary = json.loads((REPO / "reports/predict_summary.json").read_text())
    said = re.search(r"predict scores itself at oF1 (\S+) against a floor of (\S+) \((\w+)\)", results)
    assert said, "the README no longer quotes predict's self-score"
    score, floor, detector = said.groups()
    assert (score, floor, detector) == (as_quoted(summary["score"], score),
                                        as_quoted(summary["all_authentic_score"], floor), summary["detector"])


def test_the_forgery_kind_table_is_the_committed_per_kind_record(results, metrics):
    rows = table(results, "| forgery kind |")
    per_kind = {d: metrics["per_kind"][d]["forgery_kind"] for d in DETECTORS}
    assert set(rows) == set(per_kind["keypoint"])
    for kind, (n_forged, called, of1, n_instances, found, masks) in rows.items():
        by = {d: per_kind[d][kind] for d in DETECTORS}
        assert int(n_forged) == by["keypoint"]["n_forged"] and int(n_instances) == by["keypoint"]["n_instances"], kind
        for cell, key in ((called, "detection_rate"), (of1, "of1"), (found, "instances_found")):
            assert parts(cell) == [as_quoted(by[d][key], q) for d, q in zip(DETECTORS, parts(cell))], (kind, key)
        precision, recall = parts(masks)
        assert [precision, recall] == [as_quoted(by["keypoint"]["instance_precision"], precision),
                                       as_quoted(by["keypoint"]["instance_recall"], recall)], kind
