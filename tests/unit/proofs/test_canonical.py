"""canonical_json equals the rfc8785 reference on arbitrary JSON, fast path or not."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proofs.canonical import canonical_json
from proofs.errors import FormatError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=2000, deadline=None)
@given(json_values)
@example({"\ue000": 1, "\U0001f600": 2})  # UTF-16 order differs from code-point order
@example([1e16, 1e-5, 1e21, 1e-7, 123456789012345.6, 0.0001, -0.0, 2.0**53, 2.0**53 + 2])
@example(["\ud800", "\x1d\x7f\u2028", 'q"\\\b\f\n\r\t'])
def test_equals_rfc8785(value) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        with pytest.raises(FormatError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


def test_non_finite_numbers_are_refused() -> None:
    for bad in (float("nan"), float("inf"), 2**63):
        with pytest.raises(FormatError):
            canonical_json({"x": bad})


@pytest.mark.parametrize(
    "value",
    [
        1e16,
        1e-5,
        1e21,
        1e-7,
        123456789012345.6,
        0.0001,
        -0.0,
        5.0,
        2.0**53,
        2.0**53 - 1,
        1e15 + 0.5,
    ],
)
def test_float_edges_one_at_a_time(value: float) -> None:
    """Each edge alone, so a fast-path slip is not hidden by a sibling that falls back."""
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json({"v": value}) == rfc8785.dumps({"v": value})
