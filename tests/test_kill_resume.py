"""SIGKILL the train stage midway: no partial output is left, and the next run resumes and finishes."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from stages.common.model import load_model
from test_train import REPO, make_tiny_project

pytestmark = pytest.mark.slow


def start_training(project):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_training_leaves_whole_files_and_resumes(tmp_path):
    project = make_tiny_project(tmp_path / "project", n_cases=6, **{"train.epochs": 3})
    last = project / "models/last.pt"
    proc = start_training(project)
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert last.exists(), "the first epoch's checkpoint never appeared"
    os.kill(proc.pid, signal.SIGKILL)  # somewhere in epoch 2, possibly mid-write
    proc.wait(timeout=60)

    # Whatever is on disk under its real name is whole.
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert checkpoint["state"]["epoch"] >= 1
    assert not (project / "models/model.pt").exists() or load_model(project / "models/model.pt")

    rerun = start_training(project)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output[-3000:]
    assert "resuming from models/last.pt after epoch" in output
    model, _ = load_model(project / "models/model.pt")
    assert sorted(p.name for p in (project / "models").iterdir()) == ["last.pt", "model.pt"]
