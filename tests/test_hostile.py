"""Hostile images through predict and build-index: tiny, oversized, and very large figures."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# Runs a module as `python -m` would, then prints the process's peak resident memory.
PEAK_RSS_PROBE = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as exit:
    if exit.code not in (0, None):
        raise
print("PEAK_MIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def workspace(tmp_path, **data_overrides):
    """A folder with a params.yaml of our own, so limits can be changed for one test."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(data_overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def run_predict(cwd, images, *extra):
    cmd = [sys.executable, "-m", "stages.predict", "--images", str(images), "--out", "out.csv", *extra]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_tiny_and_oversized_images_are_skipped_with_a_warning(tmp_path):
    root = workspace(tmp_path, max_image_pixels=100 * 100)
    images = root / "images"
    images.mkdir()
    Image.new("RGB", (1, 1)).save(images / "one_pixel.png")
    Image.new("RGB", (101, 100)).save(images / "over_limit.png")
    Image.new("L", (60, 40)).save(images / "fine.png")
    result = run_predict(root, images, "--detector", "keypoint")
    assert result.returncode == 0, result.stderr
    assert "one_pixel.png: 1x1 is too small" in result.stderr + result.stdout
    assert "over_limit.png: 101x100 exceeds data.max_image_pixels=10000" in result.stderr + result.stdout
    rows = pd.read_csv(root / "out.csv", dtype=str).set_index("case_id")["annotation"].to_dict()
    assert rows == {"fine": "authentic", "one_pixel": "authentic", "over_limit": "authentic"}
    summary = json.loads((root / "out.summary.json").read_text())
    assert summary["n_failed"] == 2


@pytest.mark.slow
def test_large_rgba_figure_stays_within_a_memory_bound(tmp_path):
    """A 3888x3888 RGBA figure, the largest in the competition, through predict and build-index."""
    root = workspace(tmp_path)
    images = root / "data" / "train_images" / "authentic"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (243, 243, 4), dtype=np.uint8)
    big = np.kron(small, np.ones((16, 16, 1), np.uint8))
    Image.fromarray(big, "RGBA").save(images / "big.png")

    probe = root / "probe.py"
    probe.write_text(PEAK_RSS_PROBE)
    peaks = {}
    for name, args in {"predict": ["stages.predict", "--images", str(images), "--out", "out.csv",
                                   "--detector", "keypoint"],
                       "build_index": ["stages.build_index"]}.items():
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["data"]["root"] = str(root / "data")
        params["data"]["index"] = str(root / "index.csv")
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        result = subprocess.run([sys.executable, str(probe), *args], cwd=root, capture_output=True, text=True,
                                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        peaks[name] = float(result.stdout.split("PEAK_MIB")[-1])
    # The decoded RGBA image alone is 58 MiB; a bound of 1.5 GiB catches whole-image float copies.
    assert peaks["predict"] < 1536, peaks
    assert peaks["build_index"] < 1536, peaks
    print(peaks)
