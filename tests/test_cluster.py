"""predict on a Dask cluster: the same submission as one process, and a worker killed mid-run costs no image."""
import json
import os
import signal
import socket
import subprocess
import sys
import queue

import pytest

from stages import predict
from stages.common import screening
from test_screening import REPO, run_predict

pytestmark = pytest.mark.slow
distributed = pytest.importorskip("distributed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def worker_env(monkeypatch):
    """Workers import this checkout's `stages`, as a cluster's workers share one installation."""
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_local_cluster_writes_the_same_bytes_as_one_process(corpus, checkpoint, tmp_path, worker_env):
    here = tmp_path / "here.csv"
    run_predict(corpus, here, checkpoint, "fusion", "--workers", "1")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        there = tmp_path / "there.csv"
        summary = run_predict(corpus, there, checkpoint, "fusion", "--scheduler", cluster.scheduler_address)
    assert there.read_bytes() == here.read_bytes()
    assert summary["n_images"] == 8 and summary["n_retried"] == 0


def test_a_worker_killed_mid_run_loses_no_image(corpus, checkpoint, tmp_path, worker_env):
    here = tmp_path / "here.csv"
    run_predict(corpus, here, checkpoint, "keypoint", "--workers", "1")

    address = f"tcp://127.0.0.1:{free_port()}"
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                      "--dashboard-address", ":0"], env=worker_env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        workers = [subprocess.Popen(dask + ["worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                                            "--no-dashboard"], env=worker_env, cwd=REPO,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        procs += workers
        with distributed.Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=300)
            pids = client.run(os.getpid)  # worker address -> pid
            # A worker the scheduler counts as processing may still be unpickling the task (and
            # importing torch), so the one to kill is one that has logged a start.
            running: queue.Queue = queue.Queue()
            client.subscribe_topic(screening.START_TOPIC, lambda event: running.put(event[1]["worker"]))
            out = tmp_path / "there.csv"
            run = subprocess.Popen([sys.executable, "-m", "stages.predict", "--images", str(corpus), "--out", str(out),
                                    "--model", str(checkpoint), "--detector", "keypoint", "--scheduler", address],
                                   cwd=REPO, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            busy = running.get(timeout=300)
            os.kill(pids[busy], signal.SIGKILL)  # mid-task: the first tasks take a second or more
            output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output[-3000:]
        assert out.read_bytes() == here.read_bytes()
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        assert summary["n_failed"] == 0
        assert summary["n_retried"] >= 1
        assert "retried after a worker was lost" in output
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_unreachable_scheduler_is_a_clear_error(corpus, checkpoint, tmp_path, capsys):
    # distributed retries the connection for its 30 s timeout before it gives up
    code = predict.main(["--images", str(corpus), "--out", str(tmp_path / "s.csv"), "--model", str(checkpoint),
                         "--detector", "keypoint", "--scheduler", "tcp://127.0.0.1:1"])
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err

