"""Copy-move forgeries of every kind real figures hold, made on an authentic figure.

One forged image holds 1 to `synth.instances` events. Each event is one copy-move: a source and
1 to `synth.copies` copies of it, of one forgery kind drawn by `synth.forgery_kinds`:

- object:  a cell, band, particle or patch of texture, copied as it is, maybe flipped, scaled or retouched;
- rotated: the same, always rotated by an arbitrary angle (never a right angle);
- patch:   an axis-aligned rectangle with everything in it, 20 px up to half the picture's side;
- lane:    a blot lane, or the band region of one, duplicated into another lane at the same height;
- panel:   a whole panel of a multi-panel figure, or a large crop of one, repeated in another panel.

The instance mask is the source and every copy, each its own blob: copies never touch their
source, another copy or another event, so a detector's instances can be matched one to one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from skimage.filters import apply_hysteresis_threshold, threshold_otsu
from scipy import ndimage

from ..config import SynthParams
from .canvas import Box, Figure
from .raster import blob_distance, dilate, largest_component, median_background, resize, rotation_matrix, to_grey, warp_affine

FORGERY_KINDS = ("object", "rotated", "patch", "lane", "panel")
LARGE_FIRST = ("panel", "lane", "patch", "rotated", "object")   # big events claim their room before small ones

MIN_FORGED_FRACTION = 0.002         # the real data's forged area is 0.2 % to 46 % of the figure
MAX_FORGED_FRACTION = 0.5
OBJECT_FRACTION = 0.07              # object events together stay under this share, as real object copies do
TARGET_FRACTION = (0.004, 0.045)    # log-uniform aim of the object events, inside the limits
MIN_OBJECT_AREA = 30                # pixels; smaller blobs are specks, not objects
MIN_PATCH_SIDE = 20
GAP = 2                             # pixels between copied regions, so each stays its own component
MIN_OBJECT_CONTRAST = 10.0          # grey levels an object must stand out from its background by
OBJECT_AREA_SPREAD = 0.8            # log-area deviation at which an object is e^-0.5 as likely
P_TEXTURE_PATCH = 0.2               # share of object events that copy a patch of texture, not an object
P_WHOLE = 0.5                       # share of lane and panel events that copy the whole lane or panel
FORGE_ATTEMPTS = 12
SOURCE_TRIES = 8
PLACEMENT_TRIES = 24
SCALE_RANGE = (0.8, 1.2)            # of a scaled copy
GAIN_RANGE, OFFSET_RANGE = (0.8, 1.2), (-12.0, 12.0)   # of a brightness-retouched copy


class ForgeryError(RuntimeError):
    """No forgery inside the area limits fits the image."""


@dataclass(frozen=True)
class Forgery:
    image: np.ndarray           # RGB uint8 (H, W, 3): the authentic pixels except under the copies
    masks: np.ndarray           # uint8 {0, 1} (N, H, W): one instance per event, the source and its copies
    regions: tuple[int, ...]    # separate blobs in each instance: its source and every copy
    kinds: tuple[str, ...]      # forgery kind of each instance
    transforms: tuple[str, ...]  # each instance's copies' transforms, "|"-separated


@dataclass(frozen=True)
class Region:
    """A boolean mask whose top-left corner sits at (top, left) of the image."""
    top: int
    left: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def window(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.mask.shape[0]), slice(self.left, self.left + self.mask.shape[1])


def box_region(box: Box) -> Region:
    return Region(box.top, box.left, np.ones((box.height, box.width), bool))


@dataclass(frozen=True)
class CopyTransform:
    flip: str | None = None     # "horizontal" (left-right) or "vertical"
    angle: float = 0.0          # degrees, counter-clockwise
    scale: float = 1.0
    gain: float = 1.0
    offset: float = 0.0

    def describe(self) -> str:
        words = [f"flip-{self.flip[0]}"] if self.flip else []
        words += [f"rot{self.angle:.1f}"] if self.angle else []
        words += [f"x{self.scale:.2f}"] if self.scale != 1.0 else []
        words += [f"gain{self.gain:.2f}{self.offset:+.1f}"] if (self.gain, self.offset) != (1.0, 0.0) else []
        return " ".join(words) or "none"


@dataclass(frozen=True)
class Paste:
    region: Region
    pixels: np.ndarray          # uint8 (h, w, 3), used where region.mask is set
    transform: CopyTransform


@dataclass(frozen=True)
class CopyMoveEvent:
    kind: str
    source: Region
    copies: list[Paste]

    @property
    def area(self) -> int:
        return self.source.area + sum(copy.region.area for copy in self.copies)


@dataclass(frozen=True)
class Scene:
    """What object events need to know about an image, computed once per attempt."""
    grey: np.ndarray        # float32 luminance
    contrast: np.ndarray    # float32 |luminance - local background|, where sources are drawn
    objects: list[Region]   # blobs that stand out from their background: cells, bands, particles
    avoid: np.ndarray       # bool: never copied nor pasted over (text, bars, and their surround)


@dataclass(frozen=True)
class Workspace:
    """One forging attempt: the authentic pixels, the figure's structure, and what is taken."""
    image: np.ndarray       # the authentic RGB pixels, source of every copy
    grey: np.ndarray        # float32 luminance
    figure: Figure          # layout, pictures, lanes, panels
    taken: np.ndarray       # bool, updated as events land: sources and copies, grown by GAP, and the layout
    params: SynthParams


def forge(image: np.ndarray, rng: np.random.Generator, params: SynthParams, figure: Figure | None = None) -> Forgery:
    """Forge `image` with events of the kinds `params.forgery_kinds` allows and `figure` can hold.

    `figure` gives the layout (page, text, scale bars: never copied nor pasted over), the pictures,
    lanes and panels; without it the whole image is one picture. Raises ForgeryError when no forgery
    covering MIN_FORGED_FRACTION to MAX_FORGED_FRACTION of the image fits after FORGE_ATTEMPTS tries.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"forge expects an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if figure is None:
        figure = Figure(image, np.zeros((h, w), np.uint8), boxes=(Box(0, 0, h, w),))
    for _ in range(FORGE_ATTEMPTS):
        forgery = _attempt_forgery(image, figure, rng, params)
        if forgery is not None:
            return forgery
    allowed = ", ".join(k for k in FORGERY_KINDS if params.forgery_kinds.get(k, 0) > 0 and applicable(k, figure))
    raise ForgeryError(f"no copy-move forgery ({allowed or 'no allowed kind fits this figure'}) of "
                       f"{MIN_FORGED_FRACTION:.1%} to {MAX_FORGED_FRACTION:.0%} of the area fits a {h}x{w} image "
                       f"after {FORGE_ATTEMPTS} attempts")


def applicable(kind: str, figure: Figure) -> bool:
    if kind == "lane":
        return len(figure.lanes) >= 2
    if kind == "panel":
        return len(figure.panels) >= 2
    return bool(figure.boxes)


def _draw_kinds(figure: Figure, n: int, rng: np.random.Generator, params: SynthParams) -> list[str]:
    kinds = [k for k in FORGERY_KINDS if params.forgery_kinds.get(k, 0) > 0 and applicable(k, figure)]
    if not kinds:
        return []
    weights = np.array([params.forgery_kinds[k] for k in kinds], float)
    drawn = [str(k) for k in rng.choice(kinds, size=n, p=weights / weights.sum())]
    return sorted(drawn, key=LARGE_FIRST.index)


def _attempt_forgery(image: np.ndarray, figure: Figure, rng: np.random.Generator,
                     params: SynthParams) -> Forgery | None:
    h, w = image.shape[:2]
    kinds = _draw_kinds(figure, int(rng.integers(params.instances[0], params.instances[1] + 1)), rng, params)
    copies = [int(rng.integers(params.copies[0], params.copies[1] + 1)) for _ in kinds]
    grey = to_grey(image)
    ws = Workspace(image, grey.astype(np.float32), figure, figure.layout.astype(bool), params)
    n_objects = sum(k in ("object", "rotated") for k in kinds)
    budget = h * w * math.exp(rng.uniform(*np.log(TARGET_FRACTION)))
    areas = [max(MIN_OBJECT_AREA, budget / max(n_objects, 1) / (1 + n)) for n in copies]
    scene = _scene(grey, figure.layout, max(areas)) if n_objects else None
    forged, events, total, object_total = image.copy(), [], 0, 0
    for kind, n_copies, object_area in zip(kinds, copies, areas):
        room = MAX_FORGED_FRACTION * h * w - total
        if kind in ("object", "rotated"):
            room = min(room, OBJECT_FRACTION * h * w - object_total)
            max_area = room / (1 + n_copies) / SCALE_RANGE[1] ** 2
            event = _object_event(ws, scene, kind, n_copies, object_area, max_area, rng)
        else:
            event = EVENT_MAKERS[kind](ws, n_copies, room, rng)
        if event is None or event.area > room:
            continue
        _apply_event(event, forged, ws.taken)
        events.append(event)
        total += event.area
        object_total += event.area if kind in ("object", "rotated") else 0
    if not events or total < MIN_FORGED_FRACTION * h * w:
        return None
    masks = np.stack([_instance_mask(event, (h, w)) for event in events])
    return Forgery(forged, masks, tuple(1 + len(e.copies) for e in events), tuple(e.kind for e in events),
                   tuple("|".join(c.transform.describe() for c in e.copies) for e in events))


def _instance_mask(event: CopyMoveEvent, hw: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(hw, np.uint8)
    for region in [event.source] + [copy.region for copy in event.copies]:
        _paint(mask, region, grow=0)
    return mask


def _apply_event(event: CopyMoveEvent, forged: np.ndarray, taken: np.ndarray) -> None:
    """Paste the copies into `forged` and take the event's surroundings."""
    _paint(taken, event.source, grow=GAP)
    for copy in event.copies:
        window = forged[copy.region.window()]
        window[copy.region.mask] = copy.pixels[copy.region.mask]
        _paint(taken, copy.region, grow=GAP)


def _paint(canvas: np.ndarray, region: Region, grow: int) -> None:
    """Set the region's pixels, widened by `grow` pixels in every direction, clipped to the canvas."""
    mask = dilate(np.pad(region.mask, grow), grow) if grow else region.mask
    top, left = region.top - grow, region.left - grow
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + mask.shape[0], canvas.shape[0]), min(left + mask.shape[1], canvas.shape[1])
    canvas[y0:y1, x0:x1] |= mask[y0 - top:y1 - top, x0 - left:x1 - left].astype(canvas.dtype)


def _is_free(taken: np.ndarray, region: Region) -> bool:
    return not taken[region.window()][region.mask].any()


def _inside(shape: tuple[int, int], region: Region) -> bool:
    return region.top >= 0 and region.left >= 0 and region.top + region.mask.shape[0] <= shape[0] \
        and region.left + region.mask.shape[1] <= shape[1]


def _retouch(rng: np.random.Generator, params: SynthParams) -> tuple[float, float]:
    if rng.random() >= params.p_brightness:
        return 1.0, 0.0
    return float(rng.uniform(*GAIN_RANGE)), float(rng.uniform(*OFFSET_RANGE))


def _flip(rng: np.random.Generator, params: SynthParams) -> str | None:
    return str(rng.choice(("horizontal", "vertical"))) if rng.random() < params.p_flip else None


def _pixels_of(image: np.ndarray, region: Region, t: CopyTransform, out_hw: tuple[int, int]) -> np.ndarray:
    """The rectangle under `region`, flipped, resized to `out_hw` and retouched as `t` says."""
    pixels = image[region.window()].astype(np.float32)
    if t.flip:
        pixels = np.flip(pixels, axis=1 if t.flip == "horizontal" else 0)
    if pixels.shape[:2] != out_hw:
        pixels = resize(pixels, *out_hw)
    return np.clip(pixels * t.gain + t.offset + 0.5, 0, 255).astype(np.uint8)


def _block(ws: Workspace, region: Region) -> np.ndarray:
    taken = ws.taken.copy()
    _paint(taken, region, grow=GAP)
    return taken


# ---------------------------------------------------------------- rectangles: patch, lane, panel


def _patch_event(ws: Workspace, n_copies: int, room: float, rng: np.random.Generator) -> CopyMoveEvent | None:
    """A rectangle of one picture, everything in it, pasted 1 to `n_copies` times anywhere free."""
    boxes = ws.figure.boxes
    areas = np.array([b.height * b.width for b in boxes], float)
    for _ in range(SOURCE_TRIES):
        box = boxes[int(rng.choice(len(boxes), p=areas / areas.sum()))]
        ph, pw = _patch_side(box.height, rng), _patch_side(box.width, rng)
        if (1 + n_copies) * ph * pw > room:
            continue
        source = Region(box.top + int(rng.integers(0, box.height - ph + 1)),
                        box.left + int(rng.integers(0, box.width - pw + 1)), np.ones((ph, pw), bool))
        if _is_free(ws.taken, source):
            break
    else:
        return None
    taken, copies = _block(ws, source), []
    for _ in range(n_copies):
        t = CopyTransform(_flip(rng, ws.params), scale=_rect_scale(rng, ws.params), **_gain(rng, ws.params))
        out_hw = (max(MIN_PATCH_SIDE // 2, round(ph * t.scale)), max(MIN_PATCH_SIDE // 2, round(pw * t.scale)))
        spot = _free_spot(taken, boxes, out_hw, rng)
        if spot is None:
            continue
        copies.append(Paste(spot, _pixels_of(ws.image, source, t, out_hw), t))
        _paint(taken, spot, grow=GAP)
    return CopyMoveEvent("patch", source, copies) if copies else None


def _patch_side(side: int, rng: np.random.Generator) -> int:
    """Log-uniform from MIN_PATCH_SIDE (or the side, if shorter) up to half of the side."""
    low, high = min(MIN_PATCH_SIDE, side), max(min(MIN_PATCH_SIDE, side), side // 2)
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def _rect_scale(rng: np.random.Generator, params: SynthParams) -> float:
    return float(rng.uniform(*SCALE_RANGE)) if rng.random() < params.p_scale else 1.0


def _gain(rng: np.random.Generator, params: SynthParams) -> dict[str, float]:
    gain, offset = _retouch(rng, params)
    return {"gain": gain, "offset": offset}


def _free_spot(taken: np.ndarray, boxes: tuple[Box, ...], hw: tuple[int, int],
               rng: np.random.Generator) -> Region | None:
    """A free rectangle of size `hw` inside one of `boxes`, or None."""
    fitting = [b for b in boxes if b.height >= hw[0] and b.width >= hw[1]]
    for _ in range(PLACEMENT_TRIES if fitting else 0):
        box = fitting[int(rng.integers(len(fitting)))]
        spot = Region(box.top + int(rng.integers(0, box.height - hw[0] + 1)),
                      box.left + int(rng.integers(0, box.width - hw[1] + 1)), np.ones(hw, bool))
        if _is_free(taken, spot):
            return spot
    return None


def _lane_event(ws: Workspace, n_copies: int, room: float, rng: np.random.Generator) -> CopyMoveEvent | None:
    """A lane, or the band region of one, duplicated into other lanes at the same rows."""
    lanes = ws.figure.lanes
    for _ in range(SOURCE_TRIES):
        lane = lanes[int(rng.integers(len(lanes)))]
        rows = _lane_rows(lane, rng)
        source = Region(lane.top + rows[0], lane.left, np.ones((rows[1] - rows[0], lane.width), bool))
        targets = [other for other in lanes if other.height == lane.height and other.width >= lane.width
                   and other != lane]
        if _is_free(ws.taken, source) and targets and (1 + min(n_copies, len(targets))) * source.area <= room:
            break
    else:
        return None
    taken, copies = _block(ws, source), []
    for target in rng.permutation(len(targets))[:n_copies]:
        other = targets[int(target)]
        spot = Region(other.top + rows[0], other.left + (other.width - lane.width) // 2, source.mask)
        if not _is_free(taken, spot):
            continue
        t = CopyTransform(**_gain(rng, ws.params))
        copies.append(Paste(spot, _pixels_of(ws.image, source, t, source.mask.shape), t))
        _paint(taken, spot, grow=GAP)
    return CopyMoveEvent("lane", source, copies) if copies else None


def _lane_rows(lane: Box, rng: np.random.Generator) -> tuple[int, int]:
    """The whole lane, or (on lanes tall enough to hold several bands) a window of 40 % or more of it."""
    if lane.height < 80 or rng.random() < P_WHOLE:
        return 0, lane.height
    height = int(lane.height * rng.uniform(0.4, 1.0))
    start = int(rng.integers(0, lane.height - height + 1))
    return start, start + height


def _panel_event(ws: Workspace, n_copies: int, room: float, rng: np.random.Generator) -> CopyMoveEvent | None:
    """A whole panel, or a large crop of one, repeated in other panels; maybe flipped, rescaled, retouched."""
    panels = ws.figure.panels
    order = rng.permutation(len(panels))
    panel, others = panels[int(order[0])], [panels[int(i)] for i in order[1:]]
    # A whole panel where it fits the area left (a two-panel figure has no room for one), else a crop.
    whole = rng.random() < P_WHOLE and 2 * panel.height * panel.width <= room
    if whole:
        source = box_region(panel)
    else:
        shrink = min(1.0, math.sqrt(room / 2 / (panel.height * panel.width)))
        ch, cw = (min(side, max(MIN_PATCH_SIDE, int(side * shrink * rng.uniform(0.5, 0.9))))
                  for side in (panel.height, panel.width))
        source = Region(panel.top + int(rng.integers(0, panel.height - ch + 1)),
                        panel.left + int(rng.integers(0, panel.width - cw + 1)), np.ones((ch, cw), bool))
    if not _is_free(ws.taken, source) or 2 * source.area > room:
        return None
    taken, copies = _block(ws, source), []
    for other in others[:n_copies]:
        t = CopyTransform(_flip(rng, ws.params), scale=1.0 if whole else _rect_scale(rng, ws.params),
                          **_gain(rng, ws.params))
        size = _fitted_size(source.mask.shape, t.scale, other)
        spot = _free_spot(taken, (other,), size, rng)
        if spot is None or sum(c.region.area for c in copies) + source.area + spot.area > room:
            continue
        t = replace(t, scale=size[0] / source.mask.shape[0])     # what the copy really got, after fitting
        copies.append(Paste(spot, _pixels_of(ws.image, source, t, size), t))
        _paint(taken, spot, grow=GAP)
    return CopyMoveEvent("panel", source, copies) if copies else None


def _fitted_size(hw: tuple[int, int], scale: float, panel: Box) -> tuple[int, int]:
    """`hw` scaled, shrunk as a whole (keeping its aspect) until it fits inside `panel`."""
    fit = min(scale, panel.height / hw[0], panel.width / hw[1])
    return min(panel.height, max(1, round(hw[0] * fit))), min(panel.width, max(1, round(hw[1] * fit)))


EVENT_MAKERS = {"patch": _patch_event, "lane": _lane_event, "panel": _panel_event}


# ---------------------------------------------------------------- objects: object, rotated


def _scene(grey: np.ndarray, layout: np.ndarray, object_area: float) -> Scene:
    # The median over a window several objects wide is the background under them. Objects are
    # what departs from it towards the "ink": dark on a light background (bands, nuclei, particles),
    # bright on a dark one (cells, gel bands), which ignores the bright gaps between dark bands.
    size = int(np.clip(6 * math.sqrt(object_area), 5, 255)) | 1
    background = median_background(grey, size)
    deviation = grey.astype(np.int16) - background.astype(np.int16)
    ink = np.where(background > 127, -deviation, deviation)
    avoid = dilate(layout, GAP + 1)
    contrast = np.abs(deviation).astype(np.float32)
    contrast[avoid] = 0
    return Scene(grey.astype(np.float32), contrast, _blobs(ink, avoid), avoid)


def _blobs(ink: np.ndarray, avoid: np.ndarray) -> list[Region]:
    """Connected regions that stand out from their background by an Otsu margin, holes filled."""
    positive = ink[ink > 0]
    if positive.size == 0 or positive.max() <= MIN_OBJECT_CONTRAST:
        return []
    threshold = max(float(threshold_otsu(positive)), MIN_OBJECT_CONTRAST)
    # Hysteresis lets an object grow along its fainter parts (a vesicle's membrane all the way round).
    labels, _ = ndimage.label(ndimage.binary_opening(apply_hysteresis_threshold(ink, threshold / 2, threshold)))
    h, w = ink.shape
    regions = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = found
        if rows.start == 0 or cols.start == 0 or rows.stop == h or cols.stop == w:
            continue    # cut by the image edge: its copy would show a straight side
        # Closing first turns a vesicle's broken membrane into a ring that filling makes whole;
        # dilating after follows annotators, who trace just outside an object's edge.
        blob = ndimage.binary_closing(np.pad(labels[found] == index, 2), iterations=2)
        blob = ndimage.binary_dilation(ndimage.binary_fill_holes(blob))[1:-1, 1:-1]
        region = _cropped(Region(rows.start - 1, cols.start - 1, blob))
        if region.area >= MIN_OBJECT_AREA and not avoid[region.window()][region.mask].any():
            regions.append(region)
    return regions


def _object_event(ws: Workspace, scene: Scene, kind: str, n_copies: int, object_area: float, max_area: float,
                  rng: np.random.Generator) -> CopyMoveEvent | None:
    blocked = ws.taken | scene.avoid
    source = _pick_source(scene, blocked, object_area, max_area, rng)
    if source is None:
        return None
    blocked = blocked.copy()
    _paint(blocked, source, grow=GAP)
    surround = _surround_stats(scene.grey, source)
    copies = []
    for _ in range(n_copies):
        t = _object_transform(rng, ws.params, rotated=kind == "rotated")
        moved = _transformed_copy(ws.image, source, t)
        if moved is None:
            continue
        pixels, mask = moved
        place = _place(mask, blocked, scene.grey, surround, rng)
        if place is None:
            continue
        region = Region(place[0], place[1], mask)
        copies.append(Paste(region, pixels, t))
        _paint(blocked, region, grow=GAP)
    return CopyMoveEvent(kind, source, copies) if copies else None


def _object_transform(rng: np.random.Generator, params: SynthParams, rotated: bool) -> CopyTransform:
    flip = _flip(rng, params)
    # An arbitrary angle: at least 5 degrees from every right angle, which is a flip-like case of its own.
    angle = float(rng.uniform(5, 85) + 90 * rng.integers(4)) if rotated else 0.0
    return CopyTransform(flip, angle, _rect_scale(rng, params), **_gain(rng, params))


def _pick_source(scene: Scene, blocked: np.ndarray, object_area: float, max_area: float,
                 rng: np.random.Generator) -> Region | None:
    """A free object, preferably of about `object_area` pixels and at most `max_area`, else a patch.

    Forgers mostly copy whole objects (a cell, a band) whatever their size, so the figure's own
    objects win over the area aimed at; a share of events copy a patch of tissue or background
    instead, and so does every event on a figure with no free object that fits.
    """
    if max_area < MIN_OBJECT_AREA:
        return None
    if rng.random() >= P_TEXTURE_PATCH:
        fitting = [r for r in scene.objects if r.area <= max_area and _is_free(blocked, r)]
        if fitting:
            penalty = 0.5 * (np.log([r.area / object_area for r in fitting]) / OBJECT_AREA_SPREAD) ** 2
            weights = np.exp(penalty.min() - penalty)
            return fitting[int(rng.choice(len(fitting), p=weights / weights.sum()))]
    # Squared contrast centres patches on detail (nuclei, fibres, particles), not on flat background.
    weights = np.where(blocked, 0.0, scene.contrast.astype(np.float64) ** 2 + 1e-3).ravel()
    if weights.sum() <= 0:
        return None
    for point in rng.choice(weights.size, size=SOURCE_TRIES, p=weights / weights.sum()):
        y, x = divmod(int(point), scene.grey.shape[1])
        region = _ellipse_region(scene.grey.shape, y, x, min(object_area, max_area), rng)
        if region is not None and _is_free(blocked, region):
            return region
    return None


def _ellipse_region(shape: tuple[int, int], y: int, x: int, object_area: float,
                    rng: np.random.Generator) -> Region | None:
    """An irregular ellipse of about `object_area` pixels at (y, x): a patch of tissue or texture."""
    radius, aspect = math.sqrt(object_area / math.pi), rng.uniform(1.0, 1.8)
    distance = blob_distance(radius * math.sqrt(aspect), radius / math.sqrt(aspect), rng.uniform(0, math.pi), 0.1, rng)
    half = distance.shape[0] // 2
    region = _cropped(Region(y - half, x - half, distance < 0))
    return region if _inside(shape, region) and region.area else None


def _cropped(region: Region) -> Region:
    """The same region with its mask cropped to its bounding box."""
    rows, cols = np.flatnonzero(region.mask.any(axis=1)), np.flatnonzero(region.mask.any(axis=0))
    if rows.size == 0:
        return region
    mask = region.mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return Region(region.top + int(rows[0]), region.left + int(cols[0]), mask)


def _transformed_copy(image: np.ndarray, source: Region, t: CopyTransform) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixels and mask of the source after the transform, cropped to the mask; None if it vanishes."""
    h, w = image.shape[:2]
    pad = 2     # context around the mask, so interpolation at its edge sees real neighbours
    y0, x0 = max(source.top - pad, 0), max(source.left - pad, 0)
    y1 = min(source.top + source.mask.shape[0] + pad, h)
    x1 = min(source.left + source.mask.shape[1] + pad, w)
    pixels = image[y0:y1, x0:x1].astype(np.float32)
    mask = np.zeros(pixels.shape[:2], np.float32)
    mask[source.top - y0:source.top - y0 + source.mask.shape[0],
         source.left - x0:source.left - x0 + source.mask.shape[1]] = source.mask
    if t.flip:
        axis = 1 if t.flip == "horizontal" else 0
        pixels, mask = np.flip(pixels, axis), np.flip(mask, axis)
    if t.angle or t.scale != 1.0:
        pixels, mask = _warp(pixels, mask, t.angle, t.scale)
    moved = _cropped(Region(0, 0, largest_component(mask >= 0.5)))
    if moved.area == 0:
        return None
    pixels = pixels[moved.window()] * t.gain + t.offset
    return np.ascontiguousarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8)), moved.mask


def _warp(pixels: np.ndarray, mask: np.ndarray, angle: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate and scale about the centre onto a canvas that holds the whole result."""
    h, w = mask.shape
    matrix = rotation_matrix(((w - 1) / 2, (h - 1) / 2), angle, scale)
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ matrix.T
    low, high = corners.min(axis=0), corners.max(axis=0)
    matrix[:, 2] -= low
    size = (math.ceil(high[1] - low[1]), math.ceil(high[0] - low[0]))
    return warp_affine(pixels, matrix, size, mode="reflect"), warp_affine(mask, matrix, size, mode="constant")


def _ring(mask: np.ndarray, width: int = 3) -> Region:
    """The band `width` pixels wide around a mask, as a region relative to the mask's corner."""
    grown = dilate(np.pad(mask, width), width)
    grown[width:-width, width:-width] &= ~mask
    return Region(-width, -width, grown)


def _values_under(grey: np.ndarray, mask: np.ndarray, top: int, left: int) -> np.ndarray:
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + mask.shape[0], grey.shape[0]), min(left + mask.shape[1], grey.shape[1])
    return grey[y0:y1, x0:x1][mask[y0 - top:y1 - top, x0 - left:x1 - left]]


def _surround_stats(grey: np.ndarray, region: Region) -> tuple[float, float]:
    ring = _ring(region.mask)
    values = _values_under(grey, ring.mask, region.top + ring.top, region.left + ring.left)
    return (float(values.mean()), float(values.std())) if values.size else (0.0, 0.0)


def _place(mask: np.ndarray, blocked: np.ndarray, grey: np.ndarray, surround: tuple[float, float],
           rng: np.random.Generator) -> tuple[int, int] | None:
    """A free (top, left) whose surroundings look most like the source's, so the copy blends in."""
    h, w = grey.shape
    mh, mw = mask.shape
    if mh >= h or mw >= w:
        return None
    ring = _ring(mask)
    best, best_score = None, math.inf
    for top, left in zip(rng.integers(0, h - mh + 1, PLACEMENT_TRIES), rng.integers(0, w - mw + 1, PLACEMENT_TRIES)):
        if blocked[top:top + mh, left:left + mw][mask].any():
            continue
        values = _values_under(grey, ring.mask, int(top) + ring.top, int(left) + ring.left)
        score = abs(values.mean() - surround[0]) + 0.5 * abs(values.std() - surround[1]) if values.size else math.inf
        if score < best_score:
            best, best_score = (int(top), int(left)), score
    return best
