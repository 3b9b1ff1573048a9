"""Screening at scale: the same submission from one process, two worker processes and a resumed run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from stages import predict
from stages.common.config import load_params
from stages.common.journal import journal_dir
from stages.common.screening import ImageResult, screen_source
from stages.common.sources import FigureSource

REPO = Path(__file__).resolve().parents[1]


def run_predict(images, out, checkpoint, detector, *extra) -> dict:
    code = predict.main(["--images", str(images), "--out", str(out), "--model", str(checkpoint),
                         "--detector", detector, *extra])
    assert code == 0
    return json.loads(out.with_suffix(".summary.json").read_text())


@pytest.mark.parametrize("detector", ["keypoint", "fusion"])
def test_two_workers_write_the_same_bytes_as_one(corpus, checkpoint, tmp_path, detector):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    summary_one = run_predict(corpus, one, checkpoint, detector, "--workers", "1")
    summary_two = run_predict(corpus, two, checkpoint, detector, "--workers", "2")
    assert one.read_bytes() == two.read_bytes()
    assert summary_one == summary_two
    submission = pd.read_csv(one, dtype=str, keep_default_na=False)
    assert list(submission.case_id) == sorted(p.stem for p in corpus.iterdir())  # the input's order
    if detector == "keypoint":
        assert summary_one["n_called_forged"] > 0  # the comparison covers real instances, not only `authentic`
    assert not journal_dir(one).exists()  # a finished run leaves no chunks behind


def test_result_explains_keypoint_instances_and_survives_a_round_trip(corpus, checkpoint):
    setup = predict_setup("keypoint", checkpoint)
    results = [screen_source(FigureSource(p.stem, p), setup) for p in sorted(corpus.iterdir())]
    forged = [r for r in results if r.annotation != "authentic"]
    assert forged, "the corpus should hold a detectable copy"
    for result in forged:
        assert len(result.instances) == result.annotation.count(";") + 1
        for instance in result.instances:
            assert instance.source == "keypoint" and instance.n_inliers > 0 and len(instance.transforms[0]) == 6
            x0, y0, x1, y1 = instance.bbox
            assert 0 <= x0 < x1 <= result.image_hw[1] and 0 <= y0 < y1 <= result.image_hw[0]
    assert all(ImageResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r for r in results)


def test_unreadable_image_is_a_recorded_failure(tmp_path, checkpoint):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result = screen_source(FigureSource("broken", tmp_path / "broken.png"), predict_setup("keypoint", checkpoint))
    assert result.annotation == "authentic" and "broken.png" in result.failure and result.image_hw is None


def test_resume_refuses_a_journal_of_other_settings(corpus, checkpoint, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    journal = journal_dir(out)
    journal.mkdir()
    (journal / "run.json").write_text(json.dumps({"detector": "maskrcnn"}))
    code = predict.main(["--images", str(corpus), "--out", str(out), "--model", str(checkpoint),
                         "--detector", "keypoint", "--resume"])
    assert code == 2
    assert "run without --resume to start over" in capsys.readouterr().err


def predict_setup(detector, checkpoint):
    from stages.common.screening import ScreeningSetup

    params = load_params()
    return ScreeningSetup(detector, str(checkpoint), "cpu", params.data.max_image_pixels, params.infer,
                          params.keypoint)


@pytest.mark.slow
def test_killed_run_resumes_and_writes_what_an_unbroken_run_writes(corpus, checkpoint, tmp_path):
    whole = tmp_path / "whole.csv"
    run_predict(corpus, whole, checkpoint, "keypoint", "--workers", "1")

    out = tmp_path / "resumed.csv"
    cmd = [sys.executable, "-m", "stages.predict", "--images", str(corpus), "--out", str(out),
           "--model", str(checkpoint), "--detector", "keypoint", "--workers", "1", "--chunk", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_chunk = journal_dir(out) / "chunk-000000.jsonl"
    deadline = time.monotonic() + 300
    while not first_chunk.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert first_chunk.exists() and not out.exists(), "the run should be killed midway"
    chunks = sorted(journal_dir(out).glob("chunk-*.jsonl"))
    kept = sum(len(c.read_text().splitlines()) for c in chunks)
    assert 2 <= kept < 8 and all(len(c.read_text().splitlines()) == 2 for c in chunks)  # whole chunks only

    resumed = subprocess.run(cmd + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming: {kept} rows kept from the interrupted run, {8 - kept} images to go" in resumed.stdout
    assert out.read_bytes() == whole.read_bytes()
    assert json.loads(out.with_suffix(".summary.json").read_text()) == json.loads(
        whole.with_suffix(".summary.json").read_text())
    assert not journal_dir(out).exists()

