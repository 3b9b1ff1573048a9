"""The CMFD benchmark converter and scorer on a tiny CVIP-like folder written here."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.cmfd import bench_figures, update_cmfd_report
from bench.cmfd_convert import convert, find_images, main, sample_evenly
from stages.common.metric import score_report
from stages.common.rle import decode_annotation


def write_benchmark(root, n_folders: int = 2, forged_per_folder: int = 3):
    """CVIP's layout: forged `out_*.bmp` beside a 1-bit `_mask.bmp`, and each folder's original."""
    rng = np.random.default_rng(0)
    for f in range(n_folders):
        folder = root / f"im{f + 1}"
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"im{f + 1}.bmp")
        for k in range(forged_per_folder):
            stem = f"out_r{10 * k}_im{f + 1}"
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"{stem}.bmp")
            mask = np.zeros((24, 32), bool)
            mask[2:6, 3 + k: 9 + k] = True
            mask[15:19, 20:26] = True
            Image.fromarray(mask).convert("1").save(folder / f"{stem}_mask.bmp")
    (root / "Thumbs.db").write_bytes(b"not an image")


def test_forged_images_get_their_mask_as_one_instance_and_originals_are_authentic(tmp_path):
    write_benchmark(tmp_path / "src")
    solution = convert([tmp_path / "src"], tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "test_images").iterdir()) == sorted(
        f"{cid}.png" for cid in solution["case_id"])
    assert (solution["annotation"] == "authentic").sum() == 2 and len(solution) == 8
    row = solution.set_index("case_id").loc["out_r10_im1"]
    assert json.loads(row["shape"]) == [24, 32]
    (instance,) = decode_annotation(row["annotation"], (24, 32))
    expected = np.zeros((24, 32), bool)
    expected[2:6, 4:10] = True
    expected[15:19, 20:26] = True
    assert np.array_equal(instance, expected)
    on_disk = pd.read_csv(tmp_path / "out" / "solution.csv", dtype={"case_id": str})
    assert on_disk.equals(solution)


def test_a_sample_spreads_over_the_folders(tmp_path):
    write_benchmark(tmp_path / "src", n_folders=3)
    forged = [i for i in find_images([tmp_path / "src"]) if i.mask is not None]
    picked = sample_evenly(forged, 3, seed=1)
    assert len(picked) == 3 and len({p.image.parent for p in picked}) == 3
    solution = convert([tmp_path / "src"], tmp_path / "out", n_forged=3, n_authentic=1)
    assert len(solution) == 4 and (solution["annotation"] == "authentic").sum() == 1


def test_a_mask_without_its_image_and_clashing_names_are_refused(tmp_path):
    write_benchmark(tmp_path / "src")
    write_benchmark(tmp_path / "copy")
    with pytest.raises(ValueError, match="two images named"):
        find_images([tmp_path / "src", tmp_path / "copy"])
    (tmp_path / "src" / "im1" / "out_r0_im1.bmp").unlink()
    with pytest.raises(ValueError, match="without their image"):
        find_images([tmp_path / "src"])
    with pytest.raises(ValueError, match="no images"):
        find_images([tmp_path / "empty"])


def pixels(folder) -> dict[str, np.ndarray]:
    def read(path):
        with Image.open(path) as image:
            return np.asarray(image, dtype=np.int16)
    return {path.stem: read(path) for path in sorted(folder.glob("*.png"))}


def test_jpeg_recompresses_the_images_and_keeps_the_masks(tmp_path):
    write_benchmark(tmp_path / "src")
    lossless = convert([tmp_path / "src"], tmp_path / "png")
    fine = convert([tmp_path / "src"], tmp_path / "q95", jpeg=95)
    coarse = convert([tmp_path / "src"], tmp_path / "q30", jpeg=30)
    assert fine.equals(lossless) and coarse.equals(lossless)
    originals, q95, q30 = (pixels(tmp_path / name / "test_images") for name in ("png", "q95", "q30"))
    for stem, image in originals.items():
        error_95, error_30 = (np.abs(other[stem] - image).mean() for other in (q95, q30))
        assert 0 < error_95 < error_30, stem


@pytest.mark.parametrize("quality", [0, 96, 100])
def test_a_jpeg_quality_out_of_range_is_refused_before_anything_is_written(tmp_path, quality):
    write_benchmark(tmp_path / "src")
    with pytest.raises(ValueError, match="quality must be 1 to 95"):
        convert([tmp_path / "src"], tmp_path / "out", jpeg=quality)
    with pytest.raises(SystemExit, match="quality must be 1 to 95"):
        main([str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--jpeg", str(quality)])
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_bench_figures_and_report_entries(tmp_path):
    write_benchmark(tmp_path / "src")
    solution = convert([tmp_path / "src"], tmp_path / "out")
    perfect = solution[["case_id", "annotation"]]
    figures = bench_figures(solution, perfect, [0.5, 1.0, 2.0] + [1.0] * (len(solution) - 3))
    assert figures["of1"] == 1.0 and figures["all_authentic_floor"] == 0.25
    assert figures["forged_detection_rate"] == 1.0 and figures["authentic_accuracy"] == 1.0
    assert figures["seconds_per_image_median"] == 1.0
    everything_authentic = perfect.assign(annotation="authentic")
    assert bench_figures(solution, everything_authentic, [1.0] * len(solution))["of1"] == pytest.approx(
        score_report(solution, everything_authentic)["score"])
    report = tmp_path / "bench.json"
    report.write_text(json.dumps({"keypoint": {"kept": True}}))
    update_cmfd_report("tiny", "keypoint", figures, report)
    update_cmfd_report("other", "keypoint", {"of1": 0.5}, report)
    written = json.loads(report.read_text())
    assert written["keypoint"] == {"kept": True}
    assert written["cmfd"]["tiny"]["keypoint"]["of1"] == 1.0 and written["cmfd"]["other"]["keypoint"]["of1"] == 0.5
