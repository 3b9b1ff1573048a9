"""The Mask R-CNN builders, backbone weights and checkpoints, on tiny images."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from stages.common import model as model_module
from stages.common.config import ModelParams
from stages.common.dataset import make_target
from stages.common.model import (IMAGENET_MEAN, IMAGENET_STD, ModelError, build_model, evidence_channels, load_model,
                                 save_checkpoint)

ARCHS = ("seed", "fpn")


def tiny_params(arch: str, weights: str = "none", evidence: str = "none") -> ModelParams:
    return ModelParams(arch=arch, min_size=64, max_size=96, backbone_weights=weights, evidence=evidence)


def forged_sample(h: int, w: int) -> tuple[torch.Tensor, dict]:
    """An image with one instance of two blobs (source and copy) and its target."""
    masks = torch.zeros(1, h, w, dtype=torch.uint8)
    masks[0, 5:20, 6:22] = 1
    masks[0, h - 25:h - 10, w - 20:w - 4] = 1
    image = torch.rand(3, h, w)
    return image, make_target(masks.numpy(), 0)


def authentic_sample(h: int, w: int) -> tuple[torch.Tensor, dict]:
    return torch.rand(3, h, w), make_target(torch.zeros(0, h, w, dtype=torch.uint8).numpy(), 1)


def train_step(model, samples) -> dict[str, torch.Tensor]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images, targets = zip(*samples)
    losses = model(list(images), list(targets))
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
    return losses


@pytest.mark.parametrize("arch", ARCHS)
def test_both_archs_train_a_step_and_predict(arch):
    torch.manual_seed(0)
    model = build_model(tiny_params(arch))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = train_step(model, [forged_sample(64, 80), authentic_sample(72, 64)])
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    changed = [k for k, v in model.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in changed), "the backbone must be trainable"
    assert any(k.startswith("roi_heads.mask") for k in changed)

    model.eval()
    with torch.no_grad():
        outputs = model([torch.rand(3, 64, 80), torch.rand(3, 90, 70)])
    for out, (h, w) in zip(outputs, [(64, 80), (90, 70)]):
        assert set(out) == {"boxes", "labels", "scores", "masks"}
        assert out["masks"].shape[1:] == (1, h, w)  # pasted back at the input size
        assert set(out["labels"].tolist()) <= {1}


@pytest.mark.parametrize("arch", ARCHS)
def test_authentic_only_batch_trains(arch):
    torch.manual_seed(0)
    model = build_model(tiny_params(arch))
    losses = train_step(model, [authentic_sample(64, 64), authentic_sample(80, 64)])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_mask"].item() == 0.0  # no positive proposal, no mask to learn


def test_normalises_once_with_imagenet_stats_and_keeps_aspect_ratio():
    model = build_model(tiny_params("fpn")).eval()
    assert model.transform.image_mean == list(IMAGENET_MEAN)
    assert model.transform.image_std == list(IMAGENET_STD)
    image_list, _ = model.transform([torch.full((3, 40, 120), 0.485)])
    # 40x120 -> short side 64 would make the long side 192 > 96, so the long side caps at 96.
    assert image_list.image_sizes == [(32, 96)]
    # A [0, 1] image at ImageNet's red mean becomes 0 in the red channel: one normalisation, not two.
    assert image_list.tensors[0, 0, :32, :96].abs().max() < 1e-5


def test_imagenet_weights_offline_fail_with_a_clear_message(monkeypatch, tmp_path):
    # Force the download path (empty cache) and make it fail, whatever the network here.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    for arch in ARCHS:
        with pytest.raises(ModelError, match=r"backbone_weights=imagenet needs to download .* \.pth path"):
            build_model(tiny_params(arch, "imagenet"))


def test_local_backbone_weights_load_and_freeze_batchnorm(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v3_small()
    path = tmp_path / "small.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(tiny_params("seed", str(path)))
    features = model.backbone.features
    assert torch.equal(features[0][0].weight, reference.features[0][0].weight)
    assert isinstance(features[0][1], torchvision.ops.misc.FrozenBatchNorm2d)


def test_bad_local_backbone_weights_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="neither none, imagenet nor an existing"):
        build_model(tiny_params("seed", str(tmp_path / "absent.pth")))
    large = tmp_path / "large.pth"
    torch.save(torchvision.models.mobilenet_v3_large().state_dict(), large)
    with pytest.raises(ModelError, match="do not fit mobilenet_v3_small"):
        build_model(tiny_params("seed", str(large)))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable torch state dict"):
        build_model(tiny_params("fpn", str(junk)))


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_round_trips(tmp_path, arch):
    torch.manual_seed(0)
    params = tiny_params(arch)
    model = build_model(params)
    with torch.no_grad():  # move BatchNorm statistics off their defaults, so they must be saved too
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.5, 0.5)
    path = tmp_path / "models" / "model.pt"
    save_checkpoint(path, model, params, epoch=3, val_of1=0.5)

    loaded, loaded_params = load_model(path, "cpu")
    assert loaded_params == params
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    model.eval()
    image = [torch.rand(3, 64, 72)]
    with torch.no_grad():
        expected, got = model(image)[0], loaded(image)[0]
    assert torch.equal(expected["scores"], got["scores"])
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert list(path.parent.iterdir()) == [path]  # the atomic write left no temporary file


def test_equal_checkpoints_are_equal_bytes(tmp_path):
    """DVC hashes the checkpoint: equal weights written twice must give equal files, whatever
    temporary name each write went through."""
    params = tiny_params("seed")
    torch.manual_seed(0)
    model = build_model(params)
    first, second = tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt"
    save_checkpoint(first, model, params, epoch=1)
    save_checkpoint(second, model, params, epoch=1)
    assert first.read_bytes() == second.read_bytes()


def test_missing_or_corrupt_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_model(tmp_path / "model.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="corrupt or not a checkpoint"):
        load_model(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ModelError, match="not a checkpoint of this project"):
        load_model(foreign)


def test_checkpoint_of_another_arch_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, build_model(tiny_params("seed")), tiny_params("seed"))
    state = torch.load(path, weights_only=True)
    state["model_params"]["arch"] = "fpn"
    torch.save(state, path)
    with pytest.raises(ModelError, match="do not fit model.arch=fpn"):
        load_model(path)


def test_unknown_arch_is_rejected():
    with pytest.raises(ModelError, match="model.arch"):
        build_model(tiny_params("resnet"))
    assert set(model_module.BACKBONES) == set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_evidence_channel_reaches_the_heads(arch):
    torch.manual_seed(0)
    model = build_model(tiny_params(arch, evidence="keypoint"))
    assert evidence_channels(model) == 1 and evidence_channels(build_model(tiny_params(arch))) == 0
    image, target = forged_sample(64, 80)
    evidence = torch.zeros(1, 64, 80)
    evidence[0, 5:20, 6:22] = 1.0
    losses = train_step(model, [(torch.cat([image, evidence]), target)])
    assert all(torch.isfinite(v) for v in losses.values())

    model.eval()
    with torch.no_grad():
        with_evidence = model.backbone(model.transform([torch.cat([image, evidence])])[0].tensors)
        without = model.backbone(model.transform([torch.cat([image, torch.zeros_like(evidence)])])[0].tensors)
    maps = with_evidence.values() if isinstance(with_evidence, dict) else [with_evidence]
    others = without.values() if isinstance(without, dict) else [without]
    # Every level the heads pool from sees the evidence, not only the finest.
    assert all(not torch.allclose(a, b) for a, b in zip(maps, others))


def test_evidence_is_not_normalised():
    model = build_model(tiny_params("fpn", evidence="keypoint"))
    assert model.transform.image_mean[3:] == [0.0] and model.transform.image_std[3:] == [1.0]


def test_unknown_evidence_is_rejected():
    with pytest.raises(ModelError, match="model.evidence"):
        build_model(tiny_params("fpn", evidence="sift"))


def test_checkpoint_of_another_format_is_a_clear_error(tmp_path):
    path = tmp_path / "old.pt"
    params = tiny_params("seed")
    save_checkpoint(path, build_model(params), params)
    state = torch.load(path, weights_only=True)
    state["format"] = 1
    torch.save(state, path)
    with pytest.raises(ModelError, match="format 1 is not this code's .* retrain"):
        load_model(path)
