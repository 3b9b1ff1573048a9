"""Speed of the RLE codec and of the oF1 scorer.

    python -m bench.metric_speed

Encodes and decodes one 2000x2000 mask with about 5 % forged pixels in blobs, and scores a
1,000-image submission (256x256, half forged with 1 to 3 instances, predictions imperfect in
the ways a detector is). Figures are medians over REPEATS runs, in reports/bench.json "metric".
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from bench.report import machine, median_seconds, update_report
from stages.common.metric import score
from stages.common.rle import decode_annotation, encode_instances, encode_mask

REPEATS = 7
LARGE_SIDE = 2000
LARGE_FORGED_SHARE = 0.05
N_IMAGES = 1000
IMAGE_SIDE = 256
SEED = 0


def blob_mask(side: int, forged_share: float, rng: np.random.Generator) -> np.ndarray:
    """A (side, side) uint8 mask of random ellipses, grown until `forged_share` is covered."""
    mask = np.zeros((side, side), dtype=np.uint8)
    while mask.mean() < forged_share:
        centre = (int(rng.integers(0, side)), int(rng.integers(0, side)))
        axes = (int(rng.integers(side // 80, side // 20)), int(rng.integers(side // 80, side // 20)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask


def imperfect_prediction(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The truth's instances, shifted by a few pixels, some dropped, sometimes one stray added."""
    kept = [np.roll(m, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1)) for m in truth if rng.random() > 0.2]
    if rng.random() < 0.2:
        kept.append(blob_mask(truth.shape[1], 0.01, rng))
    return np.array(kept, dtype=np.uint8).reshape(-1, *truth.shape[1:])


def synthetic_scoring_set(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    case_ids, truths, shapes, predictions = [], [], [], []
    for index in range(N_IMAGES):
        case_ids.append(str(index))
        if rng.random() < 0.5:
            truth = np.stack([blob_mask(IMAGE_SIDE, 0.02, rng) for _ in range(rng.integers(1, 4))])
            truths.append(encode_instances(truth))
            shapes.append(f"[{IMAGE_SIDE}, {IMAGE_SIDE}]")
            predictions.append(encode_instances(imperfect_prediction(truth, rng)))
        else:
            truths.append("authentic")
            shapes.append("authentic")
            false_alarm = rng.random() < 0.15
            predictions.append(encode_instances([blob_mask(IMAGE_SIDE, 0.01, rng)]) if false_alarm else "authentic")
    solution = pd.DataFrame({"case_id": case_ids, "annotation": truths, "shape": shapes})
    submission = pd.DataFrame({"case_id": case_ids, "annotation": predictions})
    return solution, submission


def run() -> dict:
    rng = np.random.default_rng(SEED)
    large = blob_mask(LARGE_SIDE, LARGE_FORGED_SHARE, rng)
    runs = encode_mask(large)
    annotation = encode_instances([large])
    solution, submission = synthetic_scoring_set(rng)
    score_seconds = median_seconds(lambda: score(solution, submission), REPEATS)
    return {
        "repeats": REPEATS,
        "large_mask": {
            "shape": [LARGE_SIDE, LARGE_SIDE],
            "forged_share": round(float(large.mean()), 4),
            "runs": len(runs) // 2,
            "encode_ms": 1e3 * median_seconds(lambda: encode_mask(large), REPEATS),
            "decode_ms": 1e3 * median_seconds(lambda: decode_annotation(annotation, large.shape), REPEATS),
        },
        "scoring": {
            "n_images": N_IMAGES,
            "image_shape": [IMAGE_SIDE, IMAGE_SIDE],
            "n_forged": int((solution["annotation"] != "authentic").sum()),
            "score": score(solution, submission),
            "total_s": score_seconds,
            "per_image_ms": 1e3 * score_seconds / N_IMAGES,
        },
    }


def main() -> None:
    figures = run()
    update_report("metric", figures)
    print({**figures, "machine": machine()})


if __name__ == "__main__":
    main()
