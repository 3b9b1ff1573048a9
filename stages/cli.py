"""The `forgery-detect` command, for screening figures from any folder once the package is installed.

    forgery-detect predict --images DIR | --pdf FILE_OR_DIR [--detector keypoint] [--report DIR] ...
    forgery-detect score --solution solution.csv --submission submission.csv

`predict` takes every flag of `python -m stages.predict` and `score` those of `python -m stages.score`.
Without a params.yaml in the working folder (and no --params), predict uses the defaults shipped
with the package: the repository's own params.yaml, copied into the package when it is built.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stages.common.config import PACKAGED_PARAMS_FILE, PARAMS_FILE

COMMANDS = {"predict": "screen a folder of images or PDFs: submission CSV, summary, HTML report",
            "score": "score a submission against a solution with the competition's oF1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forgery-detect", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)  # the command's own parser answers --help
    args, rest = parser.parse_known_args(argv)
    if args.command == "score":
        from stages import score

        return score.main(rest)
    return run_predict(rest)


def run_predict(argv: list[str]) -> int:
    import torch

    from stages import predict

    wants_help = "-h" in argv or "--help" in argv
    if not wants_help and not any(a == "--params" or a.startswith("--params=") for a in argv):
        argv = ["--params", str(params_file())] + argv
    with torch.inference_mode():
        return predict.main(argv, prog="forgery-detect predict")


def params_file() -> Path:
    """params.yaml in the working folder if there is one, else the packaged defaults (and say so)."""
    if PARAMS_FILE.is_file():
        return PARAMS_FILE
    print(f"forgery-detect: no {PARAMS_FILE} in {Path.cwd()}; using the defaults shipped with the "
          f"package ({PACKAGED_PARAMS_FILE})", file=sys.stderr)
    return PACKAGED_PARAMS_FILE


if __name__ == "__main__":
    sys.exit(main())
