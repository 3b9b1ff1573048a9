"""Run the benchmarks and write reports/bench.json.

    python -m bench                      every benchmark (the repro one takes the pipeline's time)
    python -m bench metric keypoint      only these

Each benchmark replaces its own section of reports/bench.json, so they can be re-run one by one.
"""
from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "metric": "bench.metric_speed",
    "keypoint": "bench.keypoint_speed",
    "train": "bench.train_speed",
    "predict": "bench.predict_speed",
    "repro": "bench.repro_time",
}


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in names or BENCHMARKS:
        print(f"== {name}", flush=True)
        importlib.import_module(BENCHMARKS[name]).main()


if __name__ == "__main__":
    main(sys.argv[1:])
