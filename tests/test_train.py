"""The train stage end to end on tiny data: it trains, validates, checkpoints, resumes and logs."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from torch.utils.data import DataLoader

from stages import train as train_stage
from stages.common import engine
from stages.common.config import AugmentParams, ModelParams, load_params
from stages.common.keypoint import CopyMoveInstance
from stages.common.dataset import (DatasetError, ForgeryDataset, augment, build_train_transform, collate_fn,
                                   count_blobs, make_target, read_split)
from stages.common.engine import evaluate_loss, lr_factor
from stages.common.infer import Detections
from stages.common.model import build_model, load_model

REPO = Path(__file__).resolve().parents[1]
TINY_SIDES = (64, 96)


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A figure-like RGB image: smooth background with a few bright blobs."""
    yy, xx = np.mgrid[:h, :w]
    image = np.full((h, w), 40.0) + rng.normal(0, 6, (h, w))
    for _ in range(4):
        cy, cx, r = rng.integers(8, h - 8), rng.integers(8, w - 8), rng.integers(3, 7)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] += rng.integers(80, 160)
    gray = np.clip(image, 0, 255).astype(np.uint8)
    return np.stack([gray, gray // 2 + 30, gray], axis=2)


def copy_move(rng: np.random.Generator, image: np.ndarray, n_instances: int) -> tuple[np.ndarray, np.ndarray]:
    """Paste `n_instances` square patches elsewhere; each mask channel is the source plus its copy."""
    h, w = image.shape[:2]
    forged = image.copy()
    masks = np.zeros((n_instances, h, w), np.uint8)
    for k in range(n_instances):
        s = int(rng.integers(8, 14))
        y0, x0 = rng.integers(0, h // 2 - s), rng.integers(0, w - s)
        y1, x1 = rng.integers(h // 2, h - s), rng.integers(0, w - s)
        forged[y1:y1 + s, x1:x1 + s] = image[y0:y0 + s, x0:x0 + s]
        masks[k, y0:y0 + s, x0:x0 + s] = 1
        masks[k, y1:y1 + s, x1:x1 + s] = 1
    return forged, masks


def make_tiny_data(root: Path, n_cases: int = 6, seed: int = 0) -> list[dict]:
    """A data root in the competition layout; every case authentic, every other one also forged."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_cases):
        case = f"{100 + i}"
        h, w = (int(v) for v in rng.integers(*TINY_SIDES, size=2))
        image = texture(rng, h, w)
        path = root / "train_images/authentic" / f"{case}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        rows.append(dict(case_id=case, label="authentic", image_path=str(path.relative_to(root)), mask_path="",
                         status="ok"))
        if i % 2 == 0:
            forged, masks = copy_move(rng, image, n_instances=1 + i % 3)
            path = root / "train_images/forged" / f"{case}.png"
            mask_path = root / "train_masks" / f"{case}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(forged).save(path)
            np.save(mask_path, masks)
            rows.append(dict(case_id=case, label="forged", image_path=str(path.relative_to(root)),
                             mask_path=str(mask_path.relative_to(root)), status="ok"))
    return rows


def make_tiny_project(directory: Path, n_cases: int = 6, **overrides) -> Path:
    """A working directory with params.yaml, data/ and data/splits/, ready for `python -m stages.train`.

    `overrides` are "section.key": value pairs applied to the repository's params.yaml.
    """
    rows = make_tiny_data(directory / "data/tiny", n_cases)
    frame = pd.DataFrame(rows)
    cases = sorted(frame.case_id.unique())
    val_cases = set(cases[: max(1, len(cases) // 3)])
    splits = directory / "data/splits"
    splits.mkdir(parents=True)
    frame[~frame.case_id.isin(val_cases)].to_csv(splits / "train.csv", index=False)
    frame[frame.case_id.isin(val_cases)].to_csv(splits / "val.csv", index=False)
    make_params(directory, **overrides)
    return directory


def make_params(directory: Path, **overrides) -> None:
    """The repository's params.yaml with tiny settings, plus `overrides` ("section.key": value)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    settings = {
        "data.root": "data/tiny", "data.splits_dir": "data/splits",
        "model.min_size": 64, "model.max_size": 96, "model.arch": "seed",
        "train.epochs": 2, "train.batch_size": 2, "train.device": "cpu", "train.num_workers": 0,
        "train.val_max_images": 0, "train.lr": 1e-3, "train.step_size": 1,
        **overrides,
    }
    for key, value in settings.items():
        section, name = key.split(".")
        params[section][name] = value
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


# ---------------------------------------------------------------- dataset


def test_dataset_targets_keep_instances_whole(tmp_path):
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=2))
    dataset = ForgeryDataset(rows, tmp_path, None, max_pixels=10**6)
    forged = rows.index[rows.label == "forged"][0]
    image, target = dataset[forged]
    masks = np.load(tmp_path / rows.mask_path[forged])
    assert image.dtype == torch.float32 and 0.0 <= image.min() and image.max() <= 1.0
    assert image.shape == (3, *masks.shape[1:])
    assert target["masks"].dtype == torch.uint8 and torch.equal(target["masks"], torch.from_numpy(masks))
    assert target["labels"].tolist() == [1] * len(masks)
    for box, mask in zip(target["boxes"], masks):
        ys, xs = np.nonzero(mask)  # source and copy: the box spans both
        assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert count_blobs(mask) == 2
    assert target["area"].tolist() == masks.sum(axis=(1, 2)).tolist()

    authentic = rows.index[rows.label == "authentic"][0]
    image, target = dataset[authentic]
    assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, *image.shape[1:])
    assert target["labels"].numel() == 0


def test_augmentation_moves_masks_with_the_image(tmp_path):
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=1))
    always = AugmentParams(hflip=1.0, vflip=0.0, rot90=0.0, blur=0.0, brightness_contrast=0.0, jpeg=0.0)
    plain = ForgeryDataset(rows, tmp_path, None, max_pixels=10**6)
    flipped = ForgeryDataset(rows, tmp_path, build_train_transform(always), max_pixels=10**6)
    (image, target), (image_f, target_f) = plain[1], flipped[1]
    assert torch.equal(image_f, image.flip(-1))
    assert torch.equal(target_f["masks"], target["masks"].flip(-1))
    width = image.shape[-1]
    expected = target["boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([width, 0, width, 0])
    assert torch.equal(target_f["boxes"], expected)


def test_full_train_transform_keeps_every_instance(tmp_path):
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=5))
    everything = AugmentParams(hflip=1.0, vflip=1.0, rot90=1.0, blur=1.0, brightness_contrast=1.0, jpeg=1.0)
    dataset = ForgeryDataset(rows, tmp_path, build_train_transform(everything), max_pixels=10**6)
    torch.manual_seed(0)
    for index in rows.index[rows.label == "forged"]:
        image, target = dataset[index]
        n_true = len(np.load(tmp_path / rows.mask_path[index]))
        assert len(target["masks"]) == n_true  # flips and turns move pixels, never remove them
        assert target["masks"].shape[1:] == image.shape[1:]


def test_augmentation_that_removes_a_mask_drops_the_instance(tmp_path):
    h, w = 40, 60
    masks = np.zeros((3, h, w), np.uint8)
    masks[0, 2:8, 2:8] = 1          # source and copy both in the left part: survives the crop
    masks[0, 20:26, 10:16] = 1
    masks[1, 30:36, 50:56] = 1      # entirely in the right part: loses every pixel
    masks[2, 5:11, 20:26] = 1       # source on the left, its copy on the right: loses its copy
    masks[2, 5:11, 45:51] = 1
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    crop = A.Compose([A.Crop(x_min=0, y_min=0, x_max=30, y_max=h)])

    image_out, kept, _ = augment(crop, image, masks)
    assert image_out.shape == (h, 30, 3)
    assert len(kept) == 1 and np.array_equal(kept[0], masks[0, :, :30])
    target = make_target(kept, 0)
    assert target["boxes"].tolist() == [[2, 2, 16, 26]]  # recomputed from the cropped mask

    _, none_left, _ = augment(A.Compose([A.Crop(x_min=32, y_min=0, x_max=44, y_max=h)]), image, masks)
    target = make_target(none_left, 0)
    assert target["boxes"].shape == (0, 4) and target["masks"].shape == (0, h, 12)


def test_evidence_moves_with_the_image_and_is_never_blurred_or_recoloured():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    evidence = np.zeros((40, 60), np.float16)
    evidence[5:15, 2:12] = 0.75
    flip_and_blur = A.Compose([A.HorizontalFlip(p=1.0), A.GaussianBlur(blur_limit=(5, 5), p=1.0),
                               A.RandomBrightnessContrast(p=1.0)])
    _, _, moved = augment(flip_and_blur, image, np.zeros((0, 40, 60), np.uint8), evidence)
    assert np.array_equal(moved, evidence[:, ::-1])


def test_dataset_with_keypoint_params_adds_the_evidence_channel_once_per_image(tmp_path, monkeypatch):
    from stages.common import dataset as dataset_module
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=2))
    plain, _ = ForgeryDataset(rows, tmp_path, None, max_pixels=10**6)[0]
    copied = np.zeros(plain.shape[1:], bool)
    copied[2:9, 3:12] = True
    runs = []

    def fake_keypoint_detector(image, params):
        runs.append(image.shape)
        return [CopyMoveInstance(copied, 0.6, (np.zeros((2, 3)),), 5)]

    monkeypatch.setattr(dataset_module, "detect_copy_move", fake_keypoint_detector)
    dataset = ForgeryDataset(rows, tmp_path, None, max_pixels=10**6, keypoint=load_params().keypoint)
    image, _ = dataset[0]
    assert image.shape == (4, *plain.shape[1:]) and torch.equal(image[:3], plain)
    assert torch.allclose(image[3], torch.from_numpy(copied * np.float32(0.6)), atol=1e-3)
    assert torch.equal(dataset[0][0], image) and len(runs) == 1  # cached: one keypoint pass per image


def test_augmentation_is_seeded_by_torch_and_flips_independently(tmp_path):
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=1))
    half = AugmentParams(hflip=0.5, vflip=0.5, rot90=0.0, blur=0.0, brightness_contrast=0.0, jpeg=0.0)
    dataset = ForgeryDataset(rows, tmp_path, build_train_transform(half), max_pixels=10**6)
    plain = dataset.load(0)[0]

    def draw():
        image = (dataset[0][0] * 255).round().byte().permute(1, 2, 0).numpy()
        return (np.array_equal(image, plain[:, ::-1]) or np.array_equal(image, plain[::-1, ::-1]),
                np.array_equal(image, plain[::-1]) or np.array_equal(image, plain[::-1, ::-1]))

    torch.manual_seed(7)
    first = [draw() for _ in range(24)]
    torch.manual_seed(7)
    assert [draw() for _ in range(24)] == first
    assert {(True, False), (False, True)} <= set(first), "horizontal and vertical flips must not be tied"


def test_read_split_explains_a_missing_or_bad_file(tmp_path, capsys):
    with pytest.raises(DatasetError, match="not found: run the split stage first"):
        read_split(tmp_path / "train.csv")
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=2))
    rows.loc[0, "status"] = "unreadable"
    rows.to_csv(tmp_path / "val.csv", index=False)
    assert len(read_split(tmp_path / "val.csv")) == len(rows) - 1
    assert "leaving out 1 row(s) whose status is not ok (unreadable)" in capsys.readouterr().out
    rows.drop(columns="label").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DatasetError, match="lacks column"):
        read_split(tmp_path / "bad.csv")


# ---------------------------------------------------------------- engine


def test_lr_schedule_warms_up_then_steps_or_follows_a_cosine():
    params = load_params(REPO / "params.yaml").train
    step = dataclasses.replace(params, scheduler="step", step_size=2, gamma=0.1, warmup_epochs=1, epochs=4)
    factors = [lr_factor(i, 10, step) for i in range(40)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10:20] == [1.0] * 10 and factors[20:40] == [pytest.approx(0.1)] * 20
    cosine = dataclasses.replace(step, scheduler="cosine", warmup_epochs=0)
    factors = [lr_factor(i, 10, cosine) for i in range(40)]
    assert factors[0] == 1.0 and factors[20] == pytest.approx(0.5) and factors[-1] < 0.01
    assert all(a >= b for a, b in zip(factors, factors[1:]))


def test_validation_loss_leaves_batchnorm_statistics_alone(tmp_path):
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=3))
    loader = DataLoader(ForgeryDataset(rows, tmp_path, None, 10**6), batch_size=2, collate_fn=collate_fn)
    torch.manual_seed(0)
    model = build_model(ModelParams("seed", 64, 96, "none", "none"))
    model.train()
    stats_before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    rng_before = torch.get_rng_state()

    losses = evaluate_loss(model, loader, torch.device("cpu"))
    assert set(losses) >= {"loss", "loss_mask", "loss_classifier"} and all(np.isfinite(list(losses.values())))
    assert model.training and all(m.training for m in model.modules())  # the mode is restored
    for key, value in stats_before.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert torch.equal(torch.get_rng_state(), rng_before)  # training's random stream is untouched
    assert evaluate_loss(model, loader, torch.device("cpu")) == losses  # same every call

    # The notebook's way (train mode under no_grad) does move them: the check above can fail.
    with torch.no_grad():
        images, targets = next(iter(loader))
        model(list(images), list(targets))
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in stats_before.items())


def test_validation_answers_score_of1_and_rank_images_by_their_best_detection(tmp_path, monkeypatch):
    rows = pd.DataFrame(make_tiny_data(tmp_path, n_cases=3))
    loader = DataLoader(ForgeryDataset(rows, tmp_path, None, 10**6), batch_size=2, collate_fn=collate_fn)
    model = build_model(ModelParams("seed", 64, 96, "none", "none"))
    infer_params = load_params(REPO / "params.yaml").infer
    truths = {}  # image bytes -> its true instances, so the stand-in detector can answer per image
    for images, targets in loader:
        for image, target in zip(images, targets):
            truths[engine.tensor_to_rgb(image).tobytes()] = target["masks"].numpy()

    def stand_in_detect(forged_score, authentic_score):
        def detect(model, images, device, max_side, evidence=None):
            out = []
            for image in images:
                masks = truths[image.tobytes()]
                if len(masks):  # one detection per true instance: a perfect answer when confident
                    out.append(Detections(np.full(len(masks), forged_score, np.float32), masks.astype(np.float16), image.shape[:2]))
                else:  # a stray detection of a quarter of the image
                    stray = np.zeros((1, *image.shape[:2]), np.float16)
                    stray[0, : image.shape[0] // 2, : image.shape[1] // 2] = 1
                    out.append(Detections(np.array([authentic_score], np.float32), stray, image.shape[:2]))
            return out
        return detect

    monkeypatch.setattr(engine, "detect", stand_in_detect(forged_score=0.9, authentic_score=0.2))
    right = engine.evaluate_answers(model, loader, torch.device("cpu"), infer_params, 96)
    assert right.of1 == 1.0 and right.image_auc == 1.0

    monkeypatch.setattr(engine, "detect", stand_in_detect(forged_score=0.2, authentic_score=0.9))
    wrong = engine.evaluate_answers(model, loader, torch.device("cpu"), infer_params, 96)
    assert wrong.of1 == 0.0 and wrong.image_auc == 0.0  # every image answered wrong, ranked last


# ---------------------------------------------------------------- the stage


def run_stage(project: Path, monkeypatch, **overrides) -> None:
    """`python -m stages.train` in `project`, in this process."""
    if overrides:
        make_params(project, **overrides)
    monkeypatch.chdir(project)
    train_stage.main()


def final_weights(project: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return torch.load(project / "models" / name, weights_only=True)["model"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Two epochs without interruption (shared by the tests below: training is the slow part)."""
    project = make_tiny_project(tmp_path_factory.mktemp("straight"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_stage(project, monkeypatch)
    return project


def test_stage_writes_model_last_and_dvclive(straight_run):
    model, params = load_model(straight_run / "models/model.pt")
    assert params == ModelParams("seed", 64, 96, "none", "none")
    checkpoint = torch.load(straight_run / "models/model.pt", weights_only=True)
    assert checkpoint["class_names"] == ["background", "forgery"]
    assert checkpoint["epoch"] in (1, 2) and 0.0 <= checkpoint["val_of1"] <= 1.0

    metrics = json.loads((straight_run / "dvclive/metrics.json").read_text())
    assert metrics["step"] == 1
    assert {"loss", "loss_mask", "images_per_s", "epoch_s"} <= metrics["train"].keys()
    assert {"loss", "of1", "image_auc"} <= metrics["val"].keys() and "lr" in metrics
    of1 = pd.read_csv(straight_run / "dvclive/plots/metrics/val/of1.tsv", sep="\t")
    assert of1.step.tolist() == [0, 1]
    auc = pd.read_csv(straight_run / "dvclive/plots/metrics/val/image_auc.tsv", sep="\t")
    assert auc.step.tolist() == [0, 1] and auc.image_auc.between(0, 1).all()
    assert checkpoint["val_of1"] == of1.of1.max()
    # The pipeline's dvc.yaml declares what to track: DVCLive writes neither its own nor a report.
    assert sorted(p.name for p in (straight_run / "dvclive").iterdir()) == ["metrics.json", "plots"]


def test_resume_after_an_interrupted_epoch_matches_a_straight_run(straight_run, tmp_path, monkeypatch):
    project = make_tiny_project(tmp_path)
    real_train_one_epoch = engine.train_one_epoch

    def interrupted_in_epoch_two(model, optimizer, scheduler, loader, *args, epoch, **kwargs):
        if epoch == 1:
            loader = crash_after_first_batch(loader)
        return real_train_one_epoch(model, optimizer, scheduler, loader, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", interrupted_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_stage(project, monkeypatch)
    assert torch.load(project / "models/last.pt", weights_only=True)["state"]["epoch"] == 1
    assert not (project / "models/model.pt").exists()

    monkeypatch.setattr(engine, "train_one_epoch", real_train_one_epoch)
    run_stage(project, monkeypatch)
    assert_same_weights(final_weights(project), final_weights(straight_run))
    assert_same_weights(final_weights(project, "model.pt"), final_weights(straight_run, "model.pt"))
    resumed = pd.read_csv(project / "dvclive/plots/metrics/val/loss.tsv", sep="\t")
    straight = pd.read_csv(straight_run / "dvclive/plots/metrics/val/loss.tsv", sep="\t")
    pd.testing.assert_frame_equal(resumed, straight)


def crash_after_first_batch(loader):
    for i, batch in enumerate(loader):
        if i == 1:
            raise KeyboardInterrupt
        yield batch


def test_finished_run_only_re_exports_and_other_params_start_afresh(straight_run, tmp_path, monkeypatch, capsys):
    project = tmp_path / "copy"
    shutil.copytree(straight_run, project)
    (project / "models/model.pt").unlink()
    (project / "dvclive/metrics.json").unlink()
    monkeypatch.setattr(engine, "train_one_epoch", fail_if_called)
    run_stage(project, monkeypatch)
    assert "resuming from models/last.pt after epoch 2" in capsys.readouterr().out
    assert_same_weights(final_weights(project, "model.pt"), final_weights(straight_run, "model.pt"))
    assert json.loads((project / "dvclive/metrics.json").read_text())["step"] == 1

    with pytest.raises(AssertionError, match="trained"):
        run_stage(project, monkeypatch, **{"train.lr": 2e-3})
    assert "ignoring models/last.pt: it was made with other params, data or training code" in capsys.readouterr().out


def fail_if_called(*args, **kwargs):
    raise AssertionError("trained although the checkpoint holds every epoch")


def test_missing_split_is_a_clear_error(tmp_path, monkeypatch):
    project = make_tiny_project(tmp_path)
    (project / "data/splits/val.csv").unlink()
    with pytest.raises(DatasetError, match=r"data/splits/val.csv not found: run the split stage first"):
        run_stage(project, monkeypatch)


def test_a_change_to_training_code_changes_the_fingerprint(tmp_path, monkeypatch):
    code = tmp_path / "engine.py"
    code.write_text("LR = 1\n")
    monkeypatch.setattr(engine, "TRAINING_CODE", (code,))
    split = tmp_path / "train.csv"
    split.write_text("case_id\n")
    rows = pd.DataFrame({"image_path": [], "mask_path": []})
    before = engine.run_fingerprint(load_params(), [split], rows)
    assert engine.run_fingerprint(load_params(), [split], rows) == before
    code.write_text("LR = 2\n")
    assert engine.run_fingerprint(load_params(), [split], rows) != before
