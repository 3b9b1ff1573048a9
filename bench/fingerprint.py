"""Digests of the keypoint detector's steps on a folder of figures, to find where two hosts part.

    python -m bench.fingerprint --out /tmp/host_a.json                 # data/synthetic/test_images
    python -m bench.fingerprint --out /tmp/host_b.json --images DIR
    python -m bench.fingerprint --compare /tmp/host_a.json /tmp/host_b.json

The detector's answers can differ between processors of two makers (README: "Reproducing the
record"). Run the first command on each host over the same figures, then compare: for each figure
that differs it names the first step, in the detector's own order, whose results differ. A step
that differs only because an earlier one did is not named. The output names the host's machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.report import machine
from stages.common.config import KeypointParams, load_params
from stages.common.copymove import dense_copies, detect_copy_move, exact_copies
from stages.common.io import list_images, read_image
from stages.common.keypoint import detect_keypoints, keypoint_copies, to_gray, working_image
from stages.common.objects import look_alikes

IMAGES = Path("data/synthetic/test_images")


def digest(value: object) -> str:
    """A hash of arrays, numbers and dataclasses, nested in lists and tuples, by their bytes."""
    h = hashlib.sha256()

    def feed(x: object) -> None:
        if isinstance(x, np.ndarray):
            h.update(f"{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif dataclasses.is_dataclass(x):
            for field in dataclasses.fields(x):
                feed(getattr(x, field.name))
        elif isinstance(x, (list, tuple)):
            h.update(f"[{len(x)}".encode())
            for item in x:
                feed(item)
        else:
            h.update(repr(x).encode())

    feed(value)
    return h.hexdigest()[:16]


def step_digests(image: np.ndarray, params: KeypointParams) -> dict[str, str]:
    """Each step's digest, in the order the detector takes them (stages/common/copymove.py)."""
    gray = to_gray(image)
    work = working_image(gray, params)
    steps: dict[str, Callable[[], object]] = {
        "working image": lambda: work,
        "SIFT keypoints": lambda: detect_keypoints(work.gray8, params.sift_contrast),
        "keypoint path": lambda: keypoint_copies(work, params),
        "dense path": lambda: dense_copies(work, params),
        "exact path": lambda: exact_copies(gray, work, params),
        "look-alike blobs": lambda: look_alikes(work, params.min_displacement, params.objects),
        "answer": lambda: detect_copy_move(image, params),
    }
    return {name: digest(run()) for name, run in steps.items()}


def first_difference(a: dict[str, str], b: dict[str, str]) -> str | None:
    return next((step for step in a if a[step] != b.get(step)), None)


def compare(a: dict, b: dict) -> list[str]:
    """One line per figure whose steps differ between two fingerprints, naming the first step."""
    lines = [f"{name}: {first_difference(steps, b['figures'][name])}"
             for name, steps in a["figures"].items() if name in b["figures"] and steps != b["figures"][name]]
    missing = sorted(set(a["figures"]) ^ set(b["figures"]))
    return lines + ([f"in one fingerprint only: {', '.join(missing)}"] if missing else [])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fingerprint", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=IMAGES, help=f"folder of figures (default: {IMAGES})")
    parser.add_argument("--out", type=Path, help="fingerprint JSON to write")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two fingerprints to compare")
    args = parser.parse_args(argv)
    if args.compare:
        a, b = (json.loads(path.read_text()) for path in args.compare)
        lines = compare(a, b)
        print("\n".join(lines) if lines else f"every step the same on {len(a['figures'])} figures")
        return
    if args.out is None:
        parser.error("give --out FILE, or --compare A B")
    if not args.images.is_dir():
        raise SystemExit(f"error: {args.images} is not a folder (run `dvc repro synthesize`, or give --images)")
    params = load_params()
    paths = list_images(args.images)
    figures = {path.name: step_digests(read_image(path, params.data.max_image_pixels), params.keypoint)
               for path in tqdm(paths, desc="fingerprint", unit="img")}
    args.out.write_text(json.dumps({"machine": machine(), "figures": figures}, indent=1))
    print(f"wrote {args.out}: {len(figures)} figures")


if __name__ == "__main__":
    main(sys.argv[1:])
