"""Fuzzing the submission parser: whatever a submission holds, only SubmissionError comes out."""
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.common.metric import SubmissionError, score_report

SOLUTION = pd.DataFrame({
    "case_id": ["a", "b", "c"],
    "annotation": ["[1, 3]", "authentic", "[2, 2];[10, 4]"],
    "shape": ["[4, 5]", "authentic", "[4, 5]"],
})

annotations = st.one_of(
    st.text(max_size=40),
    st.just("authentic"),
    st.lists(st.integers(-5, 30), max_size=8).map(str),
    st.lists(st.one_of(st.integers(-5, 30), st.floats(allow_nan=True), st.booleans(), st.none()), max_size=6).map(str),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", ""]), annotations), max_size=5),
       st.booleans(), st.booleans())
def test_any_submission_scores_or_fails_cleanly(rows, lenient, extra_column):
    submission = pd.DataFrame(rows, columns=["case_id", "annotation"])
    if extra_column:
        submission["confidence"] = 1.0
    try:
        report = score_report(SOLUTION, submission, lenient=lenient)
    except SubmissionError as e:
        assert str(e)
    else:
        assert 0.0 <= report["score"] <= 1.0
