"""Wall time of the whole default `dvc repro` from a fresh copy, and of a second, no-op one.

    python -m bench.repro_time

Runs in a temporary copy of the repository (the tracked files only), so the workspace's own
outputs and DVC cache are untouched. Takes as long as the pipeline: about 15 minutes on 2 cores.
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import update_report

REPO = Path(__file__).resolve().parents[1]


def copy_tracked_files(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in listed.split():
        if name.startswith(("reports/", "dvclive/")) or name == "dvc.lock":
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True)
    return time.perf_counter() - start


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        copy_tracked_files(root)
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(git + ["add", "-A"], cwd=root, check=True)
        subprocess.run(git + ["commit", "-qm", "bench"], cwd=root, check=True)
        full = timed([sys.executable, "-m", "dvc", "repro"], root)
        noop = statistics.median(timed([sys.executable, "-m", "dvc", "repro"], root) for _ in range(3))
    # One full run: it takes the whole pipeline's time. The no-op figure is a median of three.
    return {"full_repro_seconds": round(full, 1), "noop_repro_seconds": round(noop, 2)}


def main() -> None:
    update_report("repro", run())


if __name__ == "__main__":
    main()
