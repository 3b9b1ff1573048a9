"""predict on a messy folder: every image gets a row, bad ones are written as authentic."""
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from screening_inputs import authentic_figure, figures_pdf, forged_figure, save_png
from stages import predict
from stages.common.rle import decode_annotation


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (97, 131, 3), dtype=np.uint8)).save(images / "odd_rgb.png")
    Image.fromarray(rng.integers(0, 255, (64, 80, 4), dtype=np.uint8), "RGBA").save(images / "rgba.png")
    Image.fromarray(rng.integers(0, 255, (70, 50), dtype=np.uint8), "L").save(images / "gray.png")
    png = (images / "odd_rgb.png").read_bytes()
    (images / "truncated.png").write_bytes(png[: len(png) // 3])
    (images / "empty.png").write_bytes(b"")
    (images / "text.png").write_text("not an image")
    return images


@pytest.mark.parametrize("detector", ["maskrcnn", "keypoint", "fusion"])
def test_predict_survives_bad_images_and_writes_every_row(folder, checkpoint, tmp_path, detector):
    out = tmp_path / "submission.csv"
    code = predict.main(["--images", str(folder), "--out", str(out), "--model", str(checkpoint),
                         "--detector", detector])
    assert code == 0
    submission = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert sorted(submission.case_id) == ["empty", "gray", "odd_rgb", "rgba", "text", "truncated"]
    bad = submission.set_index("case_id").loc[["empty", "text", "truncated"], "annotation"]
    assert (bad == "authentic").all()
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["n_failed"] == 3 and sorted(summary["failed"]) == ["empty.png", "text.png", "truncated.png"]
    # Every good row decodes at its image's own size.
    sizes = {"odd_rgb": (97, 131), "rgba": (64, 80), "gray": (70, 50)}
    for case_id, hw in sizes.items():
        annotation = submission.set_index("case_id").loc[case_id, "annotation"]
        for mask in decode_annotation(annotation, hw):
            assert mask.shape == hw


def test_predict_scores_itself_against_a_solution(folder, checkpoint, tmp_path):
    for bad in ("truncated.png", "empty.png", "text.png"):
        (folder / bad).unlink()
    solution = pd.DataFrame({"case_id": ["odd_rgb", "rgba", "gray"], "annotation": "authentic",
                             "shape": "authentic"})
    solution.to_csv(folder.parent / "solution.csv", index=False)
    out = tmp_path / "submission.csv"
    assert predict.main(["--images", str(folder), "--out", str(out), "--model", str(checkpoint),
                         "--detector", "keypoint"]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["all_authentic_score"] == 1.0
    assert summary["score"] == pytest.approx(1.0 - summary["n_called_forged"] / 3)


def test_predict_on_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert predict.main(["--images", str(tmp_path), "--detector", "keypoint"]) == 2
    assert "no images found" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(folder, tmp_path, capsys):
    code = predict.main(["--images", str(folder), "--model", str(tmp_path / "none.pt"), "--detector", "maskrcnn"])
    assert code == 2
    assert "none.pt: checkpoint not found" in capsys.readouterr().err


def test_files_that_share_a_name_each_keep_their_own_answer(tmp_path, capsys):
    images = tmp_path / "images"
    save_png(images / "fig1.png", forged_figure())
    Image.fromarray(authentic_figure()).save(images / "fig1.tif")
    out = tmp_path / "submission.csv"
    assert predict.main(["--images", str(images), "--out", str(out), "--detector", "keypoint", "--workers", "1"]) == 0
    answers = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("case_id").annotation
    assert sorted(answers.index) == ["fig1.png", "fig1.tif"]
    assert answers["fig1.png"] != "authentic" and answers["fig1.tif"] == "authentic"
    assert json.loads(out.with_suffix(".summary.json").read_text())["renamed"] == ["fig1.png", "fig1.tif"]
    assert "fig1.png, fig1.tif" in capsys.readouterr().err


def test_files_that_are_not_images_are_named_in_the_summary(folder, tmp_path, capsys):
    (folder / "notes.txt").write_text("figure legends")
    (folder / "animation.gif").write_bytes(b"GIF89a")
    out = tmp_path / "submission.csv"
    assert predict.main(["--images", str(folder), "--out", str(out), "--detector", "keypoint", "--workers", "1"]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["n_not_images"] == 2 and summary["not_images"] == ["animation.gif", "notes.txt"]
    assert summary["renamed"] == [] and summary["n_images"] == 6
    assert "not screened" in capsys.readouterr().err


def test_each_page_of_a_multi_page_tiff_gets_its_own_row(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    pages = [Image.fromarray(authentic_figure()), Image.fromarray(forged_figure())]
    pages[0].save(images / "plate.tif", save_all=True, append_images=pages[1:])
    save_png(images / "plate-p1.png", authentic_figure())  # a row of the same name: both named in full
    (images / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    out = tmp_path / "submission.csv"
    assert predict.main(["--images", str(images), "--out", str(out), "--detector", "keypoint", "--workers", "1"]) == 0
    answers = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("case_id").annotation
    assert sorted(answers.index) == ["plate-p1.png", "plate.tif-p1", "plate.tif-p2"]  # every page of it
    assert answers["plate.tif-p1"] == "authentic" and answers["plate.tif-p2"] != "authentic"
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["paged"] == ["plate.tif"] and summary["n_failed"] == 0 and summary["not_images"] == []
    assert "page by page" in capsys.readouterr().err


def test_inputs_whose_names_still_clash_are_a_clear_error(tmp_path, capsys):
    for folder in ("a", "b"):
        figures_pdf(tmp_path / folder / "paper.pdf", [authentic_figure()])
    code = predict.main(["--pdf", str(tmp_path / "a"), "--pdf", str(tmp_path / "b"), "--detector", "keypoint",
                         "--out", str(tmp_path / "submission.csv")])
    assert code == 2
    assert "paper-p1-i1" in capsys.readouterr().err
