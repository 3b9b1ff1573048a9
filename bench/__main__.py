"""Run the benchmarks and write reports/bench.json.

    python -m bench                      every benchmark (the repro one takes the pipeline's time)
    python -m bench metric keypoint      only these
    python -m bench jpeg                 the keypoint detector by forgery kind on recompressed figures (bench/jpeg_kinds.py)
    python -m bench cmfd --root DIR --name NAME   detectors on a converted CMFD benchmark (bench/cmfd.py)

Each benchmark replaces its own section of reports/bench.json, so they can be re-run one by one.
Several run one after another, each in a fresh process. In one process they disturb each other:
the training benchmark, run after the keypoint one, measured 3.1 images/s against 4.6 alone, and
in one full run a fortieth of its speed.
"""
from __future__ import annotations

import importlib
import subprocess
import sys

BENCHMARKS = {
    "metric": "bench.metric_speed",
    "keypoint": "bench.keypoint_speed",
    "train": "bench.train_speed",
    "predict": "bench.predict_speed",
    "repro": "bench.repro_time",
    "report": "bench.report_speed",
    "jpeg": "bench.jpeg_kinds",
}


def main(names: list[str]) -> None:
    if names[:1] == ["cmfd"]:  # takes its own arguments, and is never part of the default run
        importlib.import_module("bench.cmfd").main(names[1:])
        return
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = names or list(BENCHMARKS)
    if len(names) == 1:
        importlib.import_module(BENCHMARKS[names[0]]).main()
        return
    for name in names:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", "bench", name]).returncode != 0:
            raise SystemExit(f"benchmark {name!r} failed (see above); the sections written before it are kept")


if __name__ == "__main__":
    main(sys.argv[1:])
