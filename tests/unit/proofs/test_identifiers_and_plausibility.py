"""One identifier rule (fullmatch) and the physical plausibility table."""

from __future__ import annotations

import pytest

from proofs.errors import FormatError
from proofs.identifiers import check_identifier, check_name, is_identifier
from proofs.plausibility import check_reading, implausible
from proofs.records import record_from_dict


@pytest.mark.parametrize("good", ["truck-07", "a", "org:x/y@z.1", "A" * 128])
def test_identifiers_accepted(good: str) -> None:
    assert is_identifier(good)
    assert check_identifier(good, "an id") == good


@pytest.mark.parametrize(
    "bad",
    ["truck-07\n", "\ntruck-07", "", "-x", "a b", "A" * 129, "truck\u00a007", "ｔruck", None, 7],
)
def test_identifiers_refused(bad: object) -> None:
    assert not is_identifier(bad)
    with pytest.raises(FormatError) as e:
        check_identifier(bad, "an id")
    assert e.value.code == "bad-identifier"


def test_record_with_trailing_newline_in_gateway_id_is_refused() -> None:
    with pytest.raises(FormatError) as e:
        record_from_dict(
            {
                "v": 1,
                "type": "reading",
                "gw": "gw-1\n",
                "seq": 1,
                "src": "s",
                "t": 1,
                "clk": {"boot": "b", "mono_us": 1, "sync": True},
                "salt": "00" * 16,
                "q": "temperature",
                "val": 4,
                "unit": "CEL",
                "sig": "",
            }
        )
    assert "'gw'" in e.value.message


@pytest.mark.parametrize("bad", ["", " Acme", "Acme ", "Ac\nme", "Ac\u200bme", "x" * 201])
def test_names_refused(bad: str) -> None:
    with pytest.raises(FormatError) as e:
        check_name(bad, "a name")
    assert e.value.code == "bad-name"


def test_names_accepted() -> None:
    assert check_name("Kühlhaus Süd GmbH & Co. KG", "a name") == "Kühlhaus Süd GmbH & Co. KG"


@pytest.mark.parametrize(
    ("q", "val", "unit"),
    [
        ("temperature", -273.16, "CEL"),
        ("temperature", 1e9, "CEL"),
        ("temperature", -460, "FAH"),
        ("temperature", -1, "KEL"),
        ("temperature", 4, "P1"),
        ("humidity", -0.1, "P1"),
        ("humidity", 100.5, "P1"),
        ("battery", 101, "P1"),
    ],
)
def test_implausible_values(q: str, val: float, unit: str) -> None:
    assert implausible(q, val, unit) is not None
    with pytest.raises(FormatError) as e:
        check_reading(q, val, unit)
    assert e.value.code == "implausible-value"


@pytest.mark.parametrize(
    ("q", "val", "unit"),
    [
        ("temperature", -273.15, "CEL"),
        ("temperature", 4.2, "CEL"),
        ("temperature", 39.2, "FAH"),
        ("humidity", 0, "P1"),
        ("humidity", 100, "P1"),
        ("co2", 1e9, "59"),  # no physical limits known for it: the format's own apply
    ],
)
def test_plausible_values(q: str, val: float, unit: str) -> None:
    assert implausible(q, val, unit) is None
    check_reading(q, val, unit)


@pytest.mark.parametrize("field", ["prev", "root"])
def test_manifest_hashes_with_a_trailing_newline_are_refused(field: str) -> None:
    from proofs.records import manifest_from_dict

    doc = {
        "v": 1, "type": "manifest", "gw": "gw-1", "batch_seq": 1, "prev": "0" * 64,
        "first_seq": 1, "last_seq": 1, "count": 1, "root": "a" * 64, "opened": 1,
        "closed": 2, "key": "0123456789abcdef", "sig": "",
    }  # fmt: skip
    manifest_from_dict(doc)  # the valid one parses
    with pytest.raises(FormatError):
        manifest_from_dict({**doc, field: doc[field] + "\n"})


def test_fullwidth_digits_are_not_serial_numbers() -> None:
    from gateway.sources.serial_frames import _UINT

    assert _UINT.fullmatch("12")
    assert not _UINT.fullmatch("\uff11\uff12")  # fullwidth 1 and 2: int() would accept them
