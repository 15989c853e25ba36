"""``seal`` (the gateway's hot path) against the reference ``sign(...).to_json()``."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.errors import FormatError
from proofs.keys import SigningKey
from proofs.records import (
    BUSINESS_STEPS,
    ClockEvidence,
    Gap,
    Reading,
    Scan,
    record_from_json,
    seal,
    sign,
    verify,
)

KEY = SigningKey.from_seed(b"\x07" * 32)
IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:/@-]{0,20}\Z")
SALTS = st.binary(min_size=16, max_size=16).map(bytes.hex)
INTS = st.integers(min_value=0, max_value=2**60)  # beyond 2**53 too: the general path
CLOCKS = st.builds(
    ClockEvidence, mono_us=INTS, boot=st.text(min_size=1, max_size=64), sync=st.booleans()
)
COMMON = dict(gw=IDS, seq=st.just(0), src=IDS, t=INTS, clk=CLOCKS, salt=SALTS)
VALUES = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.floats(
    min_value=-(2**53) + 1, max_value=2**53 - 1
)
READINGS = st.builds(
    Reading,
    **COMMON,
    asset=st.none() | IDS,
    q=st.text(min_size=1, max_size=64),
    val=VALUES,
    unit=st.from_regex(r"\A[A-Z0-9]{2,3}\Z"),
    dev_t=st.none() | INTS,
)
SCANS = st.builds(
    Scan,
    **COMMON,
    asset=st.none() | IDS,
    raw=st.text(max_size=60),
    sym=st.sampled_from(["", "]C1", "]d2", "]Q3"]),
    gs1=st.dictionaries(st.from_regex(r"\A[0-9]{2,4}\Z"), st.text(max_size=20), max_size=4),
    step=st.sampled_from(sorted(BUSINESS_STEPS)),
    rp=st.just("") | IDS,
)
GAPS = st.builds(
    Gap,
    **COMMON,
    reason=st.sampled_from(["bad-frame", "silent-sensor", "clock-jump"]),
    detail=st.text(max_size=80),
    count=st.integers(min_value=0, max_value=10**6),
)


def _reference(draft: Reading | Scan | Gap, seq: int) -> bytes | FormatError:
    try:
        return sign(replace(draft, seq=seq), KEY).to_json()
    except FormatError as e:
        return e


@settings(max_examples=400, deadline=None)
@given(READINGS | SCANS | GAPS, INTS)
def test_seal_equals_sign_then_to_json(draft: Reading | Scan | Gap, seq: int) -> None:
    expected = _reference(draft, seq)
    if isinstance(expected, FormatError):  # e.g. a lone surrogate: refused by both
        with pytest.raises(FormatError):
            seal(draft, seq, KEY)
        return
    sealed = seal(draft, seq, KEY)
    assert sealed == expected
    parsed = record_from_json(sealed)
    assert parsed.seq == seq
    verify(parsed, KEY.public_key)


def test_seal_takes_the_formatted_path_for_ordinary_readings() -> None:
    draft = Reading(
        gw="truck-07",
        seq=0,
        src="probe-1",
        t=1_763_712_000_000,
        clk=ClockEvidence(mono_us=5, boot="b", sync=False),
        salt="ab" * 16,
        asset="trailer-3",
        q="temperature",
        val=-18.25,
        unit="CEL",
        dev_t=1_763_711_999_000,
    )
    assert draft._sealing_parts(9) is not None
    assert seal(draft, 9, KEY) == sign(replace(draft, seq=9), KEY).to_json()
    # Outside the JCS fast subset the general path is taken, with the same result.
    big = replace(draft, val=1e-7)
    assert big._sealing_parts(9) is None
    assert seal(big, 9, KEY) == sign(replace(big, seq=9), KEY).to_json()


def _reading(val: float | int) -> Reading:
    clk = ClockEvidence(0, "b", True)
    return Reading(gw="g", seq=0, src="s", t=0, clk=clk, salt="00" * 16, q="t", val=val, unit="CEL")


def test_seal_refuses_a_negative_seq() -> None:
    with pytest.raises(FormatError) as e:
        seal(_reading(1), -1, KEY)
    assert e.value.code == "bad-field"


def test_a_reading_value_no_json_number_carries_exactly_is_refused() -> None:
    with pytest.raises(FormatError) as e:
        _reading(float(2**53))
    assert e.value.code == "bad-field"
