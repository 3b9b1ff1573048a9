"""A real `dvc repro` of the whole pipeline, in a temporary copy of the repository, on tiny params."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "synth": {"n_cases": 16, "n_test": 6, "min_side": 96, "max_side": 160},
    "split": {"val_fraction": 0.25},
    "model": {"min_size": 128, "max_size": 160},
    "train": {"epochs": 1, "batch_size": 2, "val_max_images": 6},
    "keypoint": {"max_side": 320},
}

pytestmark = pytest.mark.slow


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def project_files():
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [f for f in listed if not f.startswith(("data/", "models/", "dvclive/", "reports/", "dvc.lock"))]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    for name in project_files():
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], root)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], root)
    run([sys.executable, "-m", "dvc", "repro"], root)
    return root


def test_repro_leaves_model_metrics_and_submission(repo):
    assert (repo / "models/model.pt").stat().st_size > 0
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert 0.0 <= metrics["of1"] <= 1.0
    assert 0.0 < metrics["all_authentic_of1"] < 1.0
    assert set(metrics["detectors"]) == {"maskrcnn", "keypoint", "fusion"}
    submission = pd.read_csv(repo / "reports/submission.csv", dtype={"case_id": str})
    test_images = sorted(p.stem for p in (repo / "data/synthetic/test_images").glob("*.png"))
    assert sorted(submission.case_id) == test_images
    summary = json.loads((repo / "reports/predict_summary.json").read_text())
    assert summary["n_failed"] == 0 and "score" in summary
    for figure in ("training_curves", "gallery", "score_histograms", "synthetic_samples", "sample_grid"):
        assert (repo / f"reports/figures/{figure}.png").stat().st_size > 0


def test_second_repro_is_a_no_op(repo):
    out = run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Stage 'train' didn't change, skipping" in out
    assert "Running stage" not in out
    status = run([sys.executable, "-m", "dvc", "status", "dvc.yaml"], repo)
    assert "up to date" in status


def test_score_cli_on_the_pipeline_outputs(repo):
    out = run([sys.executable, "-m", "stages.score", "--solution", "data/synthetic/solution.csv",
               "--submission", "reports/submission.csv"], repo)
    report = json.loads(out.strip().splitlines()[-1])
    summary = json.loads((repo / "reports/predict_summary.json").read_text())
    assert report["score"] == pytest.approx(summary["score"])


def test_outputs_travel_through_a_local_remote(repo, tmp_path):
    """`dvc push` to a folder remote, lose the cache and the outputs, `dvc pull` them back."""
    model = (repo / "models/model.pt").read_bytes()
    run([sys.executable, "-m", "dvc", "remote", "add", "-d", "shared", str(tmp_path / "remote")], repo)
    run([sys.executable, "-m", "dvc", "push"], repo)
    shutil.rmtree(repo / ".dvc/cache")
    shutil.rmtree(repo / "data/synthetic")
    (repo / "models/model.pt").unlink()
    run([sys.executable, "-m", "dvc", "pull"], repo)
    assert (repo / "models/model.pt").read_bytes() == model
    assert (repo / "data/synthetic/solution.csv").is_file()
    assert "up to date" in run([sys.executable, "-m", "dvc", "status", "dvc.yaml"], repo)
