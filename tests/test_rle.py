import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stages.common.rle import (
    RLEError,
    decode_annotation,
    decode_runs,
    encode_instances,
    encode_mask,
    parse_annotation,
)

small_masks = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda hw: arrays(np.bool_, hw)
)


def test_runs_are_column_major_and_one_indexed():
    mask = np.zeros((3, 4), dtype=np.uint8)
    mask[1:3, 0] = 1  # column 0, rows 1-2: pixels 2, 3 (1-indexed)
    mask[0, 1] = 1  # column 1, row 0: pixel 4, which continues the same run
    mask[2, 3] = 1  # last pixel: 12
    assert encode_mask(mask) == [2, 3, 12, 1]


def test_run_crossing_a_column_boundary_decodes_back():
    mask = decode_runs([3, 4], (3, 2))  # pixels 3..6 in column-major order: the last of column 0 and all of column 1
    expected = np.array([[0, 1], [0, 1], [1, 1]], dtype=bool)
    np.testing.assert_array_equal(mask, expected)


def test_numpy_integers_are_accepted_as_runs():
    assert decode_runs(list(np.array([2, 2])), (2, 2)).sum() == 2


def test_empty_and_full_masks():
    assert encode_mask(np.zeros((5, 7))) == []
    assert encode_mask(np.ones((5, 7))) == [1, 35]
    assert decode_runs([1, 35], (5, 7)).all()
    assert not decode_runs([], (5, 7)).any()


def test_nonzero_values_are_foreground():
    assert encode_mask(np.array([[0, 255], [0, 3]])) == [3, 2]


def test_encode_instances_skips_empty_and_says_authentic_for_none():
    empty = np.zeros((4, 4), dtype=np.uint8)
    one = empty.copy()
    one[0, 0] = 1
    assert encode_instances([]) == "authentic"
    assert encode_instances(np.zeros((2, 4, 4), dtype=np.uint8)) == "authentic"
    assert encode_instances([empty, one, empty]) == "[1, 1]"
    assert encode_instances(np.stack([one, one.T[::-1]])) == "[1, 1];[4, 1]"


def test_published_example_decodes_to_a_column_strip():
    (mask,) = decode_annotation("[101, 102]", (720, 960))
    assert mask.shape == (720, 960) and mask.dtype == bool
    assert mask.sum() == 102
    assert mask[100:202, 0].all()


def test_empty_list_is_one_empty_instance():
    (mask,) = decode_annotation("[]", (3, 3))
    assert not mask.any()
    assert len(decode_annotation("[1, 1];[]", (3, 3))) == 2


def test_encode_instances_rejects_a_single_two_dimensional_mask():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        encode_instances(np.ones((4, 4)))


def test_authentic_decodes_to_no_instances():
    assert decode_annotation("authentic", (4, 4)) == []
    assert parse_annotation("authentic") == []


@settings(max_examples=80, deadline=None)
@given(small_masks)
def test_encode_then_decode_returns_the_mask(mask):
    runs = encode_mask(mask)
    np.testing.assert_array_equal(decode_runs(runs, mask.shape), mask)
    assert all(isinstance(v, int) for v in runs)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 10), st.integers(1, 10), st.integers(1, 4), st.data())
def test_annotation_round_trip_keeps_every_nonempty_instance(height, width, count, data):
    masks = data.draw(arrays(np.uint8, (count, height, width), elements=st.integers(0, 1)))
    nonempty = [m.astype(bool) for m in masks if m.any()]
    decoded = decode_annotation(encode_instances(masks), (height, width))
    assert len(decoded) == len(nonempty)
    for got, want in zip(decoded, nonempty):
        np.testing.assert_array_equal(got, want)


MALFORMED = {
    "odd length": ("[1, 2, 3]", "odd number"),
    "descending starts": ("[10, 2, 1, 2]", "not ascending"),
    "overlapping runs": ("[1, 5, 3, 2]", "overlap"),
    "past the image": ("[15, 3]", "past the 4x4 image"),
    "zero length": ("[1, 0]", "not positive"),
    "negative length": ("[5, -2]", "not positive"),
    "zero start": ("[0, 2]", "below 1"),
    "float": ("[1.0, 2]", "integers"),
    "string": ('["1", 2]', "integers"),
    "bool": ("[true, 2]", "integers"),
    "null": ("[null, 2]", "integers"),
    "nested list": ("[[1, 2]]", "integers"),
    "NaN": ("[NaN, 2]", "integers"),
    "huge integer": (f"[{2 ** 70}, 1]", "too large"),
    "length that would overflow": (f"[1, {2 ** 63 - 1}]", "too large"),
    "huge negative": (f"[1, {-2 ** 64}]", "too large"),
    "bad JSON": ("[1, 2", "not valid JSON"),
    "empty text": ("", "not valid JSON"),
    "trailing separator": ("[1, 2];", "instance 2 of 2 is not valid JSON"),
    "object": ('{"start": 1}', "expected a JSON list"),
    "number": ("5", "expected a JSON list"),
    "wrong case": ("Authentic", "not valid JSON"),
    "deep nesting": ("[" * 100_000, "not valid JSON"),
}


@pytest.mark.parametrize("text, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_annotation_is_an_rle_error_that_says_why(text, message):
    with pytest.raises(RLEError, match=message):
        decode_annotation(text, (4, 4))


def test_second_instance_error_names_the_instance():
    with pytest.raises(RLEError, match="instance 2"):
        decode_annotation("[1, 2];[20, 1]", (4, 4))


def test_non_string_annotation_and_bad_shape_are_rle_errors():
    with pytest.raises(RLEError, match="string"):
        decode_annotation(float("nan"), (4, 4))
    with pytest.raises(RLEError, match="shape"):
        decode_runs([1, 1], (0, 4))
    with pytest.raises(RLEError, match="shape"):
        decode_runs([1, 1], (4,))


def test_encode_rejects_a_stack_passed_as_one_mask():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_mask(np.zeros((2, 4, 4)))


def _decode_or_rle_error(text: str) -> None:
    try:
        masks = decode_annotation(text, (6, 5))
    except RLEError as e:
        assert str(e)
    else:
        assert all(m.shape == (6, 5) and m.dtype == bool for m in masks)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_only_ever_raises_rle_error(text):
    _decode_or_rle_error(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 40) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=3))
def test_arbitrary_json_only_ever_raises_rle_error(instances):
    _decode_or_rle_error(";".join(json.dumps(v) for v in instances))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-3, 35) | st.integers(), max_size=8))
def test_arbitrary_integer_lists_decode_or_raise_rle_error(runs):
    _decode_or_rle_error(json.dumps(runs))
