"""Typed view of params.yaml.

Each section of params.yaml is a frozen dataclass. Loading rejects unknown keys, missing keys
and values of the wrong type with a message that names the offending key, so a typo in
`dvc exp run -S train.lr=...` fails at once instead of being silently ignored.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

PARAMS_FILE = Path("params.yaml")
# The defaults the installed package falls back to: a link to the repository's params.yaml in a
# checkout, a copy of it in a built wheel (see pyproject.toml), so there is one source of truth.
PACKAGED_PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


class ParamsError(ValueError):
    """params.yaml does not match the schema below."""


@dataclass(frozen=True)
class DataParams:
    root: str
    index: str
    splits_dir: str
    max_image_pixels: int


@dataclass(frozen=True)
class SynthParams:
    seed: int
    n_cases: int
    forged_share: float
    n_test: int
    test_forged_share: float
    min_side: int
    max_side: int
    kinds: dict[str, float]
    forgery_kinds: dict[str, float]
    instances: tuple[int, int]
    copies: tuple[int, int]
    p_flip: float
    p_scale: float
    p_brightness: float
    p_jpeg: float
    modes: dict[str, float]


@dataclass(frozen=True)
class SplitParams:
    val_fraction: float
    seed: int
    folds: int


@dataclass(frozen=True)
class ModelParams:
    arch: str
    min_size: int
    max_size: int
    backbone_weights: str
    evidence: str


@dataclass(frozen=True)
class TrainParams:
    seed: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    scheduler: str
    step_size: int
    gamma: float
    warmup_epochs: int
    grad_clip: float
    device: str
    amp: bool
    threads: int | str  # torch threads in train, evaluate and predict: `auto` (the cores this process may use) or a count
    num_workers: int
    pin_memory: bool
    resume: bool
    val_max_images: int


@dataclass(frozen=True)
class AugmentParams:
    hflip: float
    vflip: float
    rot90: float
    blur: float
    brightness_contrast: float
    jpeg: float


@dataclass(frozen=True)
class InferParams:
    detector: str
    score_threshold: float
    mask_threshold: float
    min_area: int
    merge_iou: float
    group_ncc: float
    max_instances: int
    image_threshold: float
    fusion_score_threshold: float


@dataclass(frozen=True)
class DenseParams:
    enabled: bool
    max_pixels: int
    stride: int
    radius: int
    min_std: float
    min_displacement: float
    fit_radius: int
    max_fit_error: float
    min_region_area: int


@dataclass(frozen=True)
class ExactParams:
    enabled: bool
    max_pixels: int
    min_peak: float
    ncc_threshold: float
    min_region_area: int
    min_grain: float


@dataclass(frozen=True)
class ExtentParams:
    enabled: bool
    window: int
    min_ncc: float


@dataclass(frozen=True)
class ObjectParams:
    enabled: bool
    min_area: int
    max_share: float
    reach: float
    min_ncc: float
    rival_ratio: float
    max_proposals: int
    min_interior_grain: float


@dataclass(frozen=True)
class KeypointParams:
    max_side: int
    min_side: int
    min_short_side: int
    sift_contrast: float
    ratio: float
    min_displacement: float
    min_inliers: int
    grain_peak: float
    ransac_threshold: float
    max_anisotropy: float
    ncc_threshold: float
    min_region_area: int
    min_texture_std: float
    weak_inliers: int
    weak_share: float
    min_interior_grain: float
    min_flat_grain: float
    strong_inliers: int
    dense: DenseParams
    exact: ExactParams
    objects: ObjectParams
    extent: ExtentParams


@dataclass(frozen=True)
class EvaluateParams:
    sweep_score_thresholds: tuple[float, ...]
    sweep_image_thresholds: tuple[float, ...]
    sweep_fusion_thresholds: tuple[float, ...]
    gallery_size: int


@dataclass(frozen=True)
class Params:
    data: DataParams
    synth: SynthParams
    split: SplitParams
    model: ModelParams
    train: TrainParams
    augment: AugmentParams
    infer: InferParams
    keypoint: KeypointParams
    evaluate: EvaluateParams


CHOICES = {
    "model.arch": ("fpn", "seed"),
    "model.evidence": ("none", "keypoint"),
    "train.scheduler": ("step", "cosine"),
    "train.device": ("auto", "cpu", "cuda", "mps"),
    "infer.detector": ("maskrcnn", "keypoint", "fusion"),
}


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the repository root)")
    with path.open() as f:
        raw = yaml.safe_load(f)
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: object, source: str = "params") -> Params:
    params = _build(Params, raw, source)
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(params, section), name)
        if value not in allowed:
            raise ParamsError(f"{source}: {key} is {value!r}; expected one of {', '.join(allowed)}")
    threads = params.train.threads
    if threads != "auto" and not (isinstance(threads, int) and threads >= 1):
        raise ParamsError(f"{source}: train.threads is {threads!r}; expected auto or a whole number of at least 1")
    return params


def _build(cls: type, raw: object, where: str):
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    missing = [n for n in names if n not in raw]
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if missing:
        raise ParamsError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**{n: _coerce(hints[n], raw[n], f"{where}.{n}" if where != "params" else n) for n in names})


def _coerce(hint, value, key: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        if args[-1] is Ellipsis:
            return tuple(_coerce(args[0], v, key) for v in value)
        if len(value) != len(args):
            raise ParamsError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, key) for a, v in zip(args, value))
    if origin in (typing.Union, types.UnionType):  # scalars only: the first member the value fits
        for member in args:
            try:
                return _scalar(member, value, key)
            except ParamsError:
                pass
        raise ParamsError(f"{key}: expected {' or '.join(a.__name__ for a in args)}, got {value!r}")
    return _scalar(hint, value, key)


def _scalar(hint: type, value, key: str):
    # bool is an int subclass in Python; never let `true` pass as a number or 1 as a flag.
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    raise ParamsError(f"{key}: expected {hint.__name__}, got {value!r}")
