"""A fresh copy of the repository rebuilds the committed record of the data stages, to the byte.

`dvc repro synthesize build-index split` runs in a temporary copy that holds the committed
`dvc.lock` but no data; the stages must write exactly the outputs the lock records, so that
`dvc status` finds them unchanged. Training is not part of this promise (README: "Reproducing
the record").
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("synthesize", "build-index", "split")

pytestmark = pytest.mark.slow


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def committed_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [f for f in listed if not f.startswith(("data/", "models/", "dvclive/", "reports/"))]


def lock_differences(committed: dict, rebuilt: dict) -> list[str]:
    """What each stage recorded differently: its deps, params or outs, path by path."""
    problems = []
    for stage in STAGES:
        old, new = committed["stages"].get(stage, {}), rebuilt["stages"].get(stage, {})
        for section in ("deps", "outs"):
            before = {e["path"]: e for e in old.get(section, [])}
            for entry in new.get(section, []):
                if before.get(entry["path"]) != entry:
                    was = {k: before.get(entry["path"], {}).get(k) for k in ("md5", "size", "nfiles")}
                    now = {k: entry.get(k) for k in ("md5", "size", "nfiles")}
                    problems.append(f"{stage} {section[:-1]} {entry['path']}: committed {was}, rebuilt {now}")
        if old.get("params") != new.get("params"):
            problems.append(f"{stage} params: committed {old.get('params')}, rebuilt {new.get('params')}")
    return problems


def test_data_stages_rebuild_the_committed_lock(tmp_path):
    for name in committed_files():
        if (REPO / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tmp_path / name)
    run(["git", "init", "-q"], tmp_path)
    committed = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    run([sys.executable, "-m", "dvc", "repro", *STAGES], tmp_path)
    rebuilt = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    problems = lock_differences(committed, rebuilt)
    assert not problems, ("a fresh copy does not reproduce the committed record; the installed versions "
                          "(requirements.lock) or the code changed what the stages write:\n" + "\n".join(problems))
    status = run([sys.executable, "-m", "dvc", "status", *STAGES], tmp_path)
    assert "up to date" in status or not status.strip(), status
