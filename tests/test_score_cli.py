import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPORT_KEYS = {
    "score",
    "n_images",
    "forged_mean",
    "authentic_accuracy",
    "forged_detection_rate",
    "all_authentic_score",
    "n_forged",
    "n_authentic",
    "n_missing",
    "n_extra",
    "n_unparsable",
}

SOLUTION = """case_id,annotation,shape
a1,"[101, 103]","[720, 960]"
a2,"[101, 102]","[720, 960]"
a3,authentic,authentic
a4,authentic,authentic
"""

GOOD = """case_id,annotation
a1,"[101, 102]"
a2,"[101, 102]"
a3,authentic
a4,"[5, 1]"
"""


def run_score(tmp_path: Path, submission: str, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "solution.csv").write_text(SOLUTION)
    (tmp_path / "submission.csv").write_text(submission)
    command = [sys.executable, "-m", "stages.score", "--solution", str(tmp_path / "solution.csv")]
    command += ["--submission", str(tmp_path / "submission.csv"), *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_good_submission_prints_a_summary_then_a_json_line(tmp_path):
    result = run_score(tmp_path, GOOD)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert set(report) == REPORT_KEYS
    # a1: F1 204/205, a2: 1, a3: 1, a4: 0
    assert report["score"] == pytest.approx((204 / 205 + 2) / 4)
    assert report["all_authentic_score"] == 0.5
    assert len(lines) > 1 and "oF1" in lines[0]


CASES = {
    "missing rows": (GOOD.replace('a4,"[5, 1]"\n', ""), "missing: a4"),
    "duplicate case_id": (GOOD + "a3,authentic\n", "duplicate case_id.*a3"),
    "extra column": (
        "case_id,annotation,confidence\na1,authentic,0.1\na2,authentic,0.2\na3,authentic,0.3\na4,authentic,0.4\n",
        "unexpected column.*confidence",
    ),
    "bad RLE": (GOOD.replace('"[5, 1]"', '"[5, 1, 2]"'), "a4.*odd number"),
    "empty file": ("", "not a readable CSV"),
}


@pytest.mark.parametrize("submission, message", CASES.values(), ids=CASES.keys())
def test_unscorable_submission_exits_2_with_a_message(tmp_path, submission, message):
    result = run_score(tmp_path, submission)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr), result.stderr


def test_lenient_scores_a_partial_submission(tmp_path):
    result = run_score(tmp_path, GOOD.replace('a4,"[5, 1]"\n', ""), "--lenient")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["n_missing"] == 1
    assert report["authentic_accuracy"] == 1.0


def test_missing_file_exits_2(tmp_path):
    (tmp_path / "solution.csv").write_text(SOLUTION)
    command = [sys.executable, "-m", "stages.score", "--solution", str(tmp_path / "solution.csv")]
    result = subprocess.run(
        command + ["--submission", str(tmp_path / "nope.csv")], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "submission file not found" in result.stderr and "Traceback" not in result.stderr
