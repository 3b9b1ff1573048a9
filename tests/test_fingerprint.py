"""The fingerprint of the keypoint detector's steps, which tells where two hosts' answers part."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

from bench.fingerprint import compare, digest, main, step_digests
from stages.common.config import load_params


@dataclass(frozen=True)
class Pair:
    a: np.ndarray
    b: float


def test_a_digest_tells_values_types_and_shapes_apart():
    zeros = np.zeros((2, 3), np.float32)
    assert digest(zeros) == digest(zeros.copy())
    assert digest(zeros) != digest(zeros.astype(np.float64))
    assert digest(zeros) != digest(zeros.reshape(3, 2))
    assert digest(Pair(zeros, 1.0)) != digest(Pair(zeros, 1.0 + 1e-12))
    assert digest([zeros]) != digest([zeros, zeros])


def test_compare_names_the_first_step_that_differs_and_figures_in_one_only():
    a = {"figures": {"x.png": {"gray": "1", "paths": "2", "answer": "3"}, "y.png": {"gray": "1", "answer": "2"},
                     "z.png": {"gray": "1"}}}
    b = {"figures": {"x.png": {"gray": "1", "paths": "9", "answer": "9"}, "y.png": {"gray": "1", "answer": "2"}}}
    assert compare(a, b) == ["x.png: paths", "in one fingerprint only: z.png"]


def test_steps_repeat_on_one_host_and_a_changed_pixel_changes_the_first_step():
    rng = np.random.default_rng(0)
    image = np.repeat(rng.integers(0, 255, (120, 160, 1), dtype=np.uint8), 3, axis=2)
    params = load_params().keypoint
    first = step_digests(image, params)
    assert list(first) == ["working image", "SIFT keypoints", "keypoint path", "dense path", "exact path",
                           "look-alike blobs", "answer"]
    assert step_digests(image, params) == first
    image[60, 80] ^= 1
    assert step_digests(image, params)["working image"] != first["working image"]


def test_the_command_writes_a_fingerprint_with_its_machine_and_compares_two(tmp_path, capsys):
    folder = tmp_path / "figures"
    folder.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (100, 140), dtype=np.uint8)).save(folder / "a.png")
    main(["--images", str(folder), "--out", str(tmp_path / "one.json")])
    written = json.loads((tmp_path / "one.json").read_text())
    assert set(written) == {"machine", "figures"} and list(written["figures"]) == ["a.png"]
    other = {"machine": {}, "figures": {"a.png": dict(written["figures"]["a.png"], answer="changed")}}
    (tmp_path / "two.json").write_text(json.dumps(other))
    main(["--compare", str(tmp_path / "one.json"), str(tmp_path / "two.json")])
    assert capsys.readouterr().out.strip().endswith("a.png: answer")
