"""Score a submission against a solution with the competition's oF1.

    python -m stages.score --solution data/synthetic/solution.csv --submission reports/submission.csv

Prints a summary for people, then, as the last line, the report as one JSON line for scripts.
A submission that cannot be scored exits with status 2 and says why on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys

from stages.common.metric import SolutionError, SubmissionError, read_solution, read_submission, score_report

EXIT_UNSCORABLE = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.score", description=__doc__.splitlines()[0])
    parser.add_argument("--solution", required=True, help="CSV with case_id, annotation, shape")
    parser.add_argument("--submission", required=True, help="CSV with case_id, annotation")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="score missing rows and unparsable annotations as authentic, ignore extra rows and columns",
    )
    return parser.parse_args(argv)


def summary(report: dict) -> str:
    def shown(value) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"oF1 score              {report['score']:.6f}  over {report['n_images']} images "
        f"({report['n_forged']} forged, {report['n_authentic']} authentic)",
        f"all-authentic floor    {report['all_authentic_score']:.6f}",
        f"forged images, mean    {shown(report['forged_mean'])}",
        f"forged detection rate  {shown(report['forged_detection_rate'])}",
        f"authentic accuracy     {shown(report['authentic_accuracy'])}",
    ]
    forgiven = {k: report[k] for k in ("n_missing", "n_extra", "n_unparsable") if report[k]}
    if forgiven:
        lines.append("lenient: " + ", ".join(f"{k[2:]} {v}" for k, v in forgiven.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = score_report(read_solution(args.solution), read_submission(args.submission), lenient=args.lenient)
    except (SubmissionError, SolutionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNSCORABLE
    print(summary(report))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
