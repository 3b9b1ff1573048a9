"""The JPEG per-kind benchmark on a few synthetic figures generated here."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import bench.jpeg_kinds as jpeg_kinds
from stages.common.config import load_params
from stages.common.copymove import detect_copy_move
from stages.common.detectors import keypoint_prediction
from stages.common.evaluation import labelled_images, summarize
from stages.common.index import build_index, usable_rows
from stages.common.kinds import read_meta
from stages.common.synth import generate_dataset


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    """Four synthetic cases, each an authentic figure and most with a forged twin, and their meta.csv."""
    synth = dataclasses.replace(load_params().synth, n_cases=4, n_test=0, forged_share=1.0, min_side=160, max_side=224)
    root = tmp_path_factory.mktemp("jpeg") / "synthetic"
    generate_dataset(synth, root)
    rows = usable_rows(build_index(root, 10**8))
    return list(labelled_images(rows, root, 10**8)), read_meta(root)


def test_as_published_recompresses_at_the_figure_size_and_loses_more_at_lower_quality(figures):
    image = figures[0][0].image
    assert jpeg_kinds.as_published(image, None) is image
    errors = []
    for quality in (95, 75, 30):
        decoded = jpeg_kinds.as_published(image, quality)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        errors.append(np.abs(decoded.astype(int) - image).mean())
    assert 0 < errors[0] < errors[1] < errors[2]


def test_the_detector_sees_each_quality_and_the_lossless_row_is_the_plain_score(figures, monkeypatch):
    images, meta = figures
    seen = []

    def recording(image, params):
        seen.append(image)
        return detect_copy_move(image, params)

    monkeypatch.setattr(jpeg_kinds, "detect_copy_move", recording)
    params = load_params().keypoint
    report = jpeg_kinds.jpeg_kinds(images, meta, [None, 75], params)
    assert list(report) == ["lossless", "q75"]
    n = len(images)
    assert all(a is im.image for a, im in zip(seen[:n], images))
    assert all(np.array_equal(a, jpeg_kinds.as_published(im.image, 75)) for a, im in zip(seen[n:], images))
    plain = summarize([im.truth for im in images],
                      [keypoint_prediction(detect_copy_move(im.image, params)) for im in images])
    assert report["lossless"]["of1"] == round(plain["of1"], 4)
    assert report["lossless"]["all_authentic_of1"] == round(plain["all_authentic_of1"], 4)
    forged_kinds = set(";".join(meta.loc[meta["label"] == "forged", "forgery_kinds"]).split(";"))
    for row in report.values():
        assert set(row["forgery_kind"]) == forged_kinds
        assert all(0.0 <= kind["detection_rate"] <= 1.0 and kind["n_instances"] >= kind["n_forged"] >= 1
                   for kind in row["forgery_kind"].values())
        assert all(kind[k] is None or 0.0 < kind[k] <= 1.0
                   for kind in row["forgery_kind"].values() for k in ("instance_precision", "instance_recall"))


@pytest.mark.parametrize("quality", ["0", "96"])
def test_a_quality_out_of_range_is_refused_before_any_figure_is_read(quality, monkeypatch):
    monkeypatch.setattr(jpeg_kinds, "load_params", lambda: pytest.fail("params were read"))
    with pytest.raises(SystemExit, match=f"--quality {quality}: the quality must be 1 to 95"):
        jpeg_kinds.main(["--quality", "90", quality])
