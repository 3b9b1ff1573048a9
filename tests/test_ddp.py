"""`torchrun --nproc_per_node 2 -m stages.train` on CPU: two gloo processes, rank 0 alone writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from stages.common.model import evidence_channels, load_model
from test_train import REPO, make_tiny_project


def test_two_cpu_processes_train_and_only_rank_zero_writes(tmp_path):
    # With the evidence channel, so that the four-channel path runs through the stage end to end.
    project = make_tiny_project(tmp_path / "project", n_cases=8, **{"model.evidence": "keypoint"})
    logs = tmp_path / "logs"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--log-dir", str(logs),
               "--redirects", "3", "--standalone", "-m", "stages.train"]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    stdout = {rank: (next(logs.rglob(f"{rank}/stdout.log")).read_text()) for rank in (0, 1)}
    assert done.returncode == 0, done.stderr[-3000:] + stdout[0][-2000:]

    assert "cpu x 2" in stdout[0] and "best epoch" in stdout[0]
    assert stdout[1] == "", "rank 1 must print nothing"
    written = {str(p.relative_to(project)) for p in project.rglob("*")
               if p.is_file() and not p.is_relative_to(project / "data") and p.name != "params.yaml"}
    curves = {str(p.relative_to(project)) for p in (project / "dvclive/plots").rglob("*.tsv")}
    assert "dvclive/plots/metrics/val/of1.tsv" in curves
    assert written == {"dvclive/metrics.json", "models/last.pt", "models/model.pt"} | curves
    assert json.loads((project / "dvclive/metrics.json").read_text())["step"] == 1

    model, model_params = load_model(project / "models/model.pt")
    assert model_params.evidence == "keypoint" and evidence_channels(model) == 1
    with torch.no_grad():
        assert set(model([torch.rand(3 + evidence_channels(model), 64, 64)])[0]) == {"boxes", "labels", "scores", "masks"}
