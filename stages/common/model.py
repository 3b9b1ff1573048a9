"""The detector: a MobileNetV3 Mask R-CNN with two classes, and its checkpoint format.

Two architectures, chosen by `model.arch`:

- `seed`: the Kaggle notebook's network. MobileNetV3-Small features, a 1x1 conv to 256
  channels with BatchNorm and ReLU, one feature map at stride 32, anchors of 16 to 128 px.
- `fpn`: torchvision's MobileNetV3-Large FPN backbone. torchvision's default taps two maps that
  are both at stride 32, too coarse for a copied cell of 15 px; this one taps strides 16 and 32
  (plus the FPN's pooled level at 64) and gives each level anchors sized for it. A stride-8 tap
  costs a third more time per step on a CPU (measured), for features only five blocks deep.

`model.evidence: keypoint` adds a fourth input channel, the keypoint detector's copy-evidence map
(stages/common/keypoint.py). It skips the CNN's own layers and is appended, max-pooled, to every
map the heads read: a copy-move is a relation between two places, which a from-scratch CNN did
not learn to see in a CPU budget, whereas the keypoint detector finds it without training.

Images go in as float RGB in [0, 1] at their own size. Mask R-CNN's transform normalises them
with ImageNet's mean and std (evidence channels pass unchanged) and resizes them, keeping the
aspect ratio, to `model.min_size` / `model.max_size`; nothing else normalises or resizes.

Normalisation layers: from scratch, BatchNorm trains its statistics; on pretrained weights the
statistics are frozen (FrozenBatchNorm2d), as in torchvision's detection models, because a batch of
four figures is too small to re-estimate them. Every backbone layer is trainable in both cases:
scientific figures are far from ImageNet.
"""
from __future__ import annotations

import dataclasses
import urllib.error
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, MobileNet_V3_Small_Weights
from torchvision.models._utils import IntermediateLayerGetter  # what torchvision's BackboneWithFPN uses
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from .config import ModelParams
from .io import atomic_path

CLASS_NAMES = ("background", "forgery")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_FORMAT = 2
# Channels the model takes after RGB, by `model.evidence`: keypoint is the keypoint detector's
# copy-evidence map (stages/common/keypoint.py, `evidence_map`).
EVIDENCE_CHANNELS = {"none": 0, "keypoint": 1}

BACKBONES = {
    "seed": ("mobilenet_v3_small", MobileNet_V3_Small_Weights.IMAGENET1K_V1),
    "fpn": ("mobilenet_v3_large", MobileNet_V3_Large_Weights.IMAGENET1K_V1),
}

# MobileNetV3-Large blocks tapped for the FPN: 7 is the first at stride 16, 16 the last (stride 32);
# torchvision's `returned_layers=[3, 5]`. The FPN adds a max-pooled level at stride 64.
FPN_TAPS = (7, 16)
FPN_CHANNELS = 256
# One tuple per level, finest first, the same count on each so one RPN head serves all levels.
# An instance's box spans the source and all its copies: from 16 px to most of the figure.
FPN_ANCHOR_SIZES = ((16, 32, 48), (64, 96, 128), (192, 256, 384))
ASPECT_RATIOS = (0.5, 1.0, 2.0)

SEED_ANCHOR_SIZES = ((16, 32, 64, 128),)
SEED_CHANNELS = 256

# seed: the notebook's values. fpn: fewer proposals and sampled RoIs than torchvision's COCO
# defaults, since a figure holds at most a handful of instances; halving the RoIs sampled per
# image (128 to 64) made a CPU train step 13 % faster.
HEAD_SETTINGS = {
    "seed": dict(
        rpn_pre_nms_top_n_train=1000, rpn_pre_nms_top_n_test=1000,
        rpn_post_nms_top_n_train=200, rpn_post_nms_top_n_test=200,
        box_detections_per_img=100,
    ),
    "fpn": dict(
        rpn_pre_nms_top_n_train=1000, rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_train=500, rpn_post_nms_top_n_test=300,
        rpn_batch_size_per_image=128, box_batch_size_per_image=64,
        # infer.detect keeps the best 20; each kept detection costs a mask-head pass and a paste.
        box_detections_per_img=20,
    ),
}


class ModelError(RuntimeError):
    """The model cannot be built or loaded; the message says why and what to do."""


def build_model(params: ModelParams, load_weights: bool = True) -> MaskRCNN:
    """A two-class Mask R-CNN for `params.arch`.

    `load_weights=False` builds the same network without fetching `params.backbone_weights`,
    for a caller that loads a whole checkpoint next.
    """
    if params.arch not in BACKBONES:
        raise ModelError(f"model.arch is {params.arch!r}; expected one of {', '.join(BACKBONES)}")
    if params.evidence not in EVIDENCE_CHANNELS:
        raise ModelError(f"model.evidence is {params.evidence!r}; expected one of {', '.join(EVIDENCE_CHANNELS)}")
    evidence_channels = EVIDENCE_CHANNELS[params.evidence]
    pretrained = params.backbone_weights != "none"
    norm_layer = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    backbone_state = read_backbone_state(params) if pretrained and load_weights else None
    if params.arch == "seed":
        backbone, anchors, box_pool, mask_pool = _seed_parts(norm_layer, backbone_state, evidence_channels)
    else:
        backbone, anchors, box_pool, mask_pool = _fpn_parts(norm_layer, backbone_state, evidence_channels)
    # Evidence maps are in [0, 1] already: the transform leaves them as they are.
    return MaskRCNN(
        backbone,
        num_classes=len(CLASS_NAMES),
        min_size=params.min_size,
        max_size=params.max_size,
        image_mean=[*IMAGENET_MEAN, *[0.0] * evidence_channels],
        image_std=[*IMAGENET_STD, *[1.0] * evidence_channels],
        rpn_anchor_generator=anchors,
        box_roi_pool=box_pool,
        mask_roi_pool=mask_pool,
        **HEAD_SETTINGS[params.arch],
    )


def _seed_parts(norm_layer, backbone_state, evidence_channels: int):
    net = torchvision.models.mobilenet_v3_small(weights=None, norm_layer=norm_layer)
    if backbone_state is not None:
        _load_features(net.features, backbone_state, "mobilenet_v3_small")
    backbone = SeedBackbone(net.features, evidence_channels)
    anchors = AnchorGenerator(sizes=SEED_ANCHOR_SIZES, aspect_ratios=(ASPECT_RATIOS,))
    box_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=14, sampling_ratio=2)
    return backbone, anchors, box_pool, mask_pool


def _fpn_parts(norm_layer, backbone_state, evidence_channels: int):
    net = torchvision.models.mobilenet_v3_large(weights=None, norm_layer=norm_layer)
    backbone = EvidenceFPN(net.features, evidence_channels)
    if backbone_state is not None:
        _load_features(backbone.body, backbone_state, "mobilenet_v3_large")
    anchors = AnchorGenerator(sizes=FPN_ANCHOR_SIZES, aspect_ratios=(ASPECT_RATIOS,) * len(FPN_ANCHOR_SIZES))
    levels = [str(i) for i in range(len(FPN_TAPS))]
    box_pool = MultiScaleRoIAlign(featmap_names=levels, output_size=7, sampling_ratio=2)
    mask_pool = MultiScaleRoIAlign(featmap_names=levels, output_size=14, sampling_ratio=2)
    return backbone, anchors, box_pool, mask_pool


class EvidenceFPN(nn.Module):
    """MobileNetV3-Large features and an FPN over strides 16 and 32 (plus a pooled level at 64).

    Input channels past the first three are evidence maps (see `attach_evidence`); with none it
    is torchvision's `mobilenet_backbone(fpn=True)`, parameter for parameter.
    """

    def __init__(self, features: nn.Sequential, evidence_channels: int):
        super().__init__()
        self.body = IntermediateLayerGetter(features, return_layers={str(i): str(level) for level, i in enumerate(FPN_TAPS)})
        in_channels = [features[i].out_channels + evidence_channels for i in FPN_TAPS]
        self.fpn = FeaturePyramidNetwork(in_channels, FPN_CHANNELS, extra_blocks=LastLevelMaxPool())
        self.out_channels = FPN_CHANNELS

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.body(x[:, :3])
        return self.fpn({name: attach_evidence(m, x[:, 3:]) for name, m in maps.items()})


class SeedBackbone(nn.Module):
    """The notebook's single map: MobileNetV3-Small features, a 1x1 conv to 256, BatchNorm, ReLU."""

    def __init__(self, features: nn.Sequential, evidence_channels: int):
        super().__init__()
        self.features = features
        self.neck = nn.Sequential(
            nn.Conv2d(features[-1].out_channels + evidence_channels, SEED_CHANNELS, kernel_size=1),
            nn.BatchNorm2d(SEED_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.out_channels = SEED_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(attach_evidence(self.features(x[:, :3]), x[:, 3:]))


def attach_evidence(feature_map: torch.Tensor, evidence: torch.Tensor) -> torch.Tensor:
    """The feature map with the evidence channels, max-pooled to its size, appended.

    Max-pooling keeps a copied blob that is smaller than one cell of the map. Every level gets
    the evidence because the FPN's top-down path only carries coarse levels to fine ones, and an
    event's box, which spans the source and its copies, is often pooled from a coarse level.
    """
    if evidence.shape[1] == 0:
        return feature_map
    return torch.cat([feature_map, F.adaptive_max_pool2d(evidence, feature_map.shape[-2:])], dim=1)


# ---------------------------------------------------------------- pretrained backbone weights


def read_backbone_state(params: ModelParams) -> dict[str, torch.Tensor]:
    """The ImageNet weights of the arch's MobileNetV3, from torchvision's enum or a local .pth."""
    name, weights = BACKBONES[params.arch]
    if params.backbone_weights == "imagenet":
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except (urllib.error.URLError, OSError, RuntimeError) as e:
            raise ModelError(
                f"model.backbone_weights=imagenet needs to download {name} weights from {weights.url} "
                f"({type(e).__name__}: {e}). Offline? Download that file elsewhere, copy it here, and "
                f"set model.backbone_weights to its .pth path (or to none to train from scratch)."
            ) from e
    path = Path(params.backbone_weights)
    if not path.is_file():
        raise ModelError(
            f"model.backbone_weights={params.backbone_weights!r} is neither none, imagenet nor an existing "
            f".pth file (a state dict of torchvision's {name}, e.g. {Path(weights.url).name})"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for a file that is not a checkpoint
        raise ModelError(f"{path}: not a readable torch state dict ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict):
        raise ModelError(f"{path}: holds a {type(state).__name__}, expected a state dict of torchvision's {name}")
    return state


def _load_features(features: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Load the `features.*` part of a torchvision MobileNetV3 state dict; the classifier is unused."""
    features_state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if not features_state:
        raise ModelError(f"the backbone weights hold no 'features.*' tensors: not a state dict of torchvision's {name}")
    # FrozenBatchNorm2d drops num_batches_tracked itself, so it never counts as unexpected.
    try:
        missing, unexpected = features.load_state_dict(features_state, strict=False)
    except RuntimeError as e:
        raise ModelError(f"the backbone weights do not fit {name}: {e}") from e
    if missing or unexpected:
        raise ModelError(
            f"the backbone weights do not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]} "
            f"({len(missing)} missing, {len(unexpected)} unexpected)"
        )


# ---------------------------------------------------------------- checkpoints


def evidence_channels(model: nn.Module) -> int:
    """How many evidence channels the model takes after RGB, as its transform normalises them."""
    return len(unwrap(model).transform.image_mean) - 3


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(path: str | Path, model: nn.Module, model_params: ModelParams, **extra) -> None:
    """Write weights plus everything `load_model` needs to rebuild the network, atomically."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": unwrap(model).state_dict(),
        "model_params": dataclasses.asdict(model_params),
        "class_names": list(CLASS_NAMES),
        **extra,
    }
    save_torch(state, path)


def save_torch(obj: object, path: str | Path) -> None:
    """`torch.save` to `path`, atomically and byte for byte reproducibly.

    Saved through an open file, not a path: torch names the archive's records after the path it
    is given, and the temporary one's random name made every checkpoint's bytes (and so its DVC
    hash) differ between runs whose weights were equal.
    """
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        torch.save(obj, file)


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """A checkpoint written by `save_checkpoint`, or ModelError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found (run the train stage first: dvc repro train)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated zip, pickle errors, foreign formats
        raise ModelError(f"{path}: corrupt or not a checkpoint of this project ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not {"model", "model_params"} <= state.keys():
        raise ModelError(f"{path}: not a checkpoint of this project (no 'model' and 'model_params' entries)")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: checkpoint format {state.get('format')} is not this code's {CHECKPOINT_FORMAT} "
                         f"(made by another version of the project): retrain it (dvc repro train)")
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[MaskRCNN, ModelParams]:
    """Rebuild the network a checkpoint was trained with and load its weights, in eval mode."""
    state = read_checkpoint(path, "cpu")
    try:
        params = ModelParams(**state["model_params"])
    except TypeError as e:
        raise ModelError(f"{path}: model params {state['model_params']} do not match this code's ModelParams") from e
    if tuple(state.get("class_names", CLASS_NAMES)) != CLASS_NAMES:
        raise ModelError(f"{path}: classes {state['class_names']} differ from this code's {list(CLASS_NAMES)}")
    model = build_model(params, load_weights=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ModelError(f"{path}: weights do not fit model.arch={params.arch}: {e}") from e
    return model.to(device).eval(), params
