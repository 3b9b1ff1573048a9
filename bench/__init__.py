"""Speed and memory benchmarks writing reports/bench.json; see bench/__main__.py."""
import stages  # noqa: F401  first, so that its OpenMP wait policy is set before any benchmark loads torch
