"""Scorecards against figures worked out by hand (docs/scorecards.md defines each)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from proofs import verify_cli
from proofs.canonical import canonical_json
from proofs.errors import FormatError, VerificationError
from proofs.keys import SigningKey
from proofs.note import Checkpoint, NoteSigner, SignedNote
from proofs.scorecard import (
    SCORECARD_FORMAT,
    Claim,
    ShipmentRow,
    figures,
    median,
    month_of,
    scorecard,
    verify_scorecard,
)

NOV_18 = 1_795_000_000_000  # 2026-11-18 11:06:40 UTC
DEC_1 = 1_796_083_200_000  # 2026-12-01 00:00:00 UTC
DAY = 86_400_000
MIN = 60_000
GTIN = "09506000134352"


def _row(**kw: object) -> ShipmentRow:
    base: dict[str, object] = {
        "gtin": GTIN,
        "lot": "LOT-A",
        "holder": "truck-07",
        "org": "cool-logistics",
        "status": "pass",
        "excursions": 0,
        "degree_minutes": 0.0,
    }
    base.update(kw)
    return ShipmentRow(**base)  # type: ignore[arg-type]


# A: truck-07, 4 h, one excursion of 37.5 °C·min, fully covered, two batches (1 and 2 min).
A = _row(start_ms=NOV_18, end_ms=NOV_18 + 240 * MIN, status="fail", excursions=1,
         degree_minutes=37.5, covered_ms=240 * MIN, leaves=(3, 4),
         receipts=((3, 60_000), (4, 120_000)))  # fmt: skip
# B: the same lot back on truck-07 later that day: 1 h, half covered, one batch (30 s).
B = _row(start_ms=NOV_18 + 600 * MIN, end_ms=NOV_18 + 660 * MIN, covered_ms=30 * MIN,
         leaves=(5,), receipts=((5, 30_000),))  # fmt: skip
# C: another lot on truck-09 in December: 2 h, no reading, two claims (one resolved in a day).
C = _row(lot="LOT-B", holder="truck-09", start_ms=DEC_1 + DAY, end_ms=DEC_1 + DAY + 120 * MIN,
         status="indeterminate", covered_ms=0, leaves=(9,),
         claims=(Claim(DEC_1 + 2 * DAY, DEC_1 + 3 * DAY), Claim(DEC_1 + 2 * DAY)))  # fmt: skip


def test_months_are_utc_calendar_months() -> None:
    assert month_of(NOV_18) == "2026-11"
    assert month_of(DEC_1 - 1) == "2026-11"
    assert month_of(DEC_1) == "2026-12"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], None),
        ([5], 5),
        ([3, 1, 2], 2),
        ([1, 4], 2),  # 2.5 rounded down
        ([4, 1, 10, 7], 5),  # (4 + 7) // 2 = 5
        ([-3, 0], -2),  # -1.5 rounded towards minus infinity
    ],
)
def test_median(values: list[int], expected: int | None) -> None:
    assert median(values) == expected


def test_no_shipments() -> None:
    assert scorecard([]) == {"orgs": {}, "holders": {}, "months": {}}
    f = figures([])
    assert f["shipments"] == 0 and f["with_excursion"] == 0
    assert f["excursion_rate"] is None and f["degree_minutes_per_shipment"] is None
    assert f["completeness"] is None and f["median_receipt_ms"] is None
    assert (f["claims"], f["claims_resolved"], f["median_resolution_ms"]) == (0, 0, None)


def test_one_shipment() -> None:
    assert figures([A]) == {
        "shipments": 1, "passed": 0, "failed": 1, "indeterminate": 0,
        "with_excursion": 1, "excursion_rate": 1.0, "excursions": 1,
        "degree_minutes": 37.5, "degree_minutes_per_shipment": 37.5,
        "custody_ms": 14_400_000, "covered_ms": 14_400_000, "completeness": 1.0,
        "receipts": 2, "median_receipt_ms": 90_000,  # (60 000 + 120 000) / 2
        "claims": 0, "claims_resolved": 0, "median_resolution_ms": None,
    }  # fmt: skip


def test_a_lot_held_twice_by_one_carrier_is_two_shipments() -> None:
    card = scorecard([A, B])
    f = card["holders"]["truck-07"]
    assert (f["shipments"], f["with_excursion"], f["excursion_rate"]) == (2, 1, 0.5)
    assert f["degree_minutes_per_shipment"] == 18.75
    # 4 h + 1 h held, 4 h + 30 min covered: 16 200 000 / 18 000 000.
    assert (f["custody_ms"], f["covered_ms"], f["completeness"]) == (18_000_000, 16_200_000, 0.9)
    assert f["median_receipt_ms"] == 60_000  # of 30 000, 60 000, 120 000


def test_per_org_holder_and_month_by_hand() -> None:
    card = scorecard([C, B, A])  # row order does not matter
    org = card["orgs"]["cool-logistics"]
    assert org["shipments"] == 3
    assert org["excursion_rate"] == 0.333333  # 1/3 to 6 decimals
    assert org["degree_minutes"] == 37.5 and org["degree_minutes_per_shipment"] == 12.5
    # 25 200 000 ms held, 16 200 000 covered: 0.642857142... -> 0.642857
    assert (org["custody_ms"], org["covered_ms"], org["completeness"]) == (
        25_200_000, 16_200_000, 0.642857)  # fmt: skip
    assert (org["passed"], org["failed"], org["indeterminate"]) == (1, 1, 1)
    assert (org["claims"], org["claims_resolved"], org["median_resolution_ms"]) == (2, 1, DAY)
    nine = card["holders"]["truck-09"]
    assert (nine["shipments"], nine["excursion_rate"], nine["completeness"]) == (1, 0.0, 0.0)
    assert nine["receipts"] == 0 and nine["median_receipt_ms"] is None
    months = card["months"]["cool-logistics"]
    assert list(months) == ["2026-11", "2026-12"]
    assert (months["2026-11"]["shipments"], months["2026-11"]["excursion_rate"]) == (2, 0.5)
    assert (months["2026-12"]["shipments"], months["2026-12"]["excursion_rate"]) == (1, 0.0)


def test_rows_are_checked() -> None:
    with pytest.raises(FormatError):
        _row(start_ms=10, end_ms=10, covered_ms=0)  # no duration
    with pytest.raises(FormatError):
        _row(start_ms=10, end_ms=20, covered_ms=11)  # covered more than held
    with pytest.raises(FormatError):
        _row(start_ms=10, end_ms=20, covered_ms=0, status="great")
    with pytest.raises(FormatError):
        _row(start_ms=10, end_ms=20, covered_ms=0, degree_minutes=-1.0)
    with pytest.raises(FormatError):
        _row(start_ms=10, end_ms=20, covered_ms=0, leaves=(1,), receipts=((2, 5),))
    with pytest.raises(FormatError):
        Claim(100, 99)  # resolved before it was filed


def _export(rows: list[ShipmentRow], tree_size: int = 10) -> dict[str, Any]:
    doc = {
        "format": SCORECARD_FORMAT,
        "checkpoint": {"tree_size": tree_size},
        "rows": [r.to_dict() for r in rows],
        "figures": scorecard(rows),
    }
    parsed: dict[str, Any] = json.loads(canonical_json(doc))  # as a file carries it
    return parsed


def test_a_good_export_verifies_and_its_rows_round_trip() -> None:
    doc = _export([A, B, C])
    assert verify_scorecard(doc) == [A, B, C]


def test_a_massaged_figure_is_refused_naming_it() -> None:
    doc = _export([A, B, C])
    massaged = copy.deepcopy(doc)
    massaged["figures"]["orgs"]["cool-logistics"]["excursion_rate"] = 0.0
    with pytest.raises(VerificationError) as e:
        verify_scorecard(massaged)
    assert e.value.code == "scorecard-figure-mismatch"
    assert "figures.orgs.cool-logistics.excursion_rate" in e.value.message
    assert "0.333333" in e.value.message
    dropped = copy.deepcopy(doc)
    del dropped["figures"]["holders"]["truck-09"]
    with pytest.raises(VerificationError, match=r"figures\.holders\.truck-09"):
        verify_scorecard(dropped)


def test_a_row_changed_under_its_figures_is_refused() -> None:
    doc = _export([A, B])
    doc["rows"][0]["excursions"] = 0
    with pytest.raises(VerificationError, match="excursion_rate") as e:
        verify_scorecard(doc)
    assert e.value.code == "scorecard-figure-mismatch"


def test_rows_beyond_the_checkpoint_are_refused() -> None:
    doc = _export([A, B, C], tree_size=9)  # C rests on leaf 9
    with pytest.raises(VerificationError) as e:
        verify_scorecard(doc)
    assert e.value.code == "scorecard-unanchored-row"


def test_an_unreadable_export_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        verify_scorecard({"format": "something-else"})
    doc = _export([A])
    doc["rows"][0].pop("holder")
    with pytest.raises(FormatError, match="holder"):
        verify_scorecard(doc)


# --- coldtrail-verify scorecard ---------------------------------------------------------


def _signed_export(rows: list[ShipmentRow], signer: NoteSigner, size: int = 10) -> dict[str, Any]:
    root = bytes(range(32))
    note = SignedNote.sign(Checkpoint("coldtrail.test/log", size, root).to_text(), signer)
    doc = _export(rows, tree_size=size)
    doc["checkpoint"] = {"tree_size": size, "root": root.hex(), "note": note.to_text()}
    return doc


def _cli(tmp_path: Path, doc: object, *extra: str) -> tuple[int, str, str]:
    path = tmp_path / "scorecard.json"
    path.write_bytes(canonical_json(doc))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = verify_cli.main(["scorecard", str(path), *extra])
    return code, out.getvalue(), err.getvalue()


def test_cli_verifies_a_good_export_and_refuses_a_massaged_one(tmp_path: Path) -> None:
    signer = NoteSigner("coldtrail.test/log", SigningKey.generate())
    doc = _signed_export([A, B, C], signer)
    vkey = signer.verifier.to_vkey()
    code, out, _ = _cli(tmp_path, doc, "--log-key", vkey)
    assert code == 0, out
    assert "VALID: 3 shipment(s)" in out and "excursion rate 33.3 %" in out
    massaged = copy.deepcopy(doc)
    massaged["figures"]["orgs"]["cool-logistics"]["excursion_rate"] = 0.1
    code, _, err = _cli(tmp_path, massaged, "--log-key", vkey)
    assert code == 1
    assert "figures.orgs.cool-logistics.excursion_rate" in err
    assert "[scorecard-figure-mismatch]" in err
    other = NoteSigner("coldtrail.test/log", SigningKey.generate()).verifier.to_vkey()
    code, _, err = _cli(tmp_path, doc, "--log-key", other)
    assert code == 1 and "[no-known-signer]" in err
    moved = copy.deepcopy(doc)
    moved["checkpoint"]["tree_size"] = 11  # the note says 10
    code, _, err = _cli(tmp_path, moved)
    assert code == 1 and "[scorecard-checkpoint-mismatch]" in err


def test_cli_an_unreadable_export_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert verify_cli.main(["scorecard", str(path)]) == 2
    assert "cannot read export" in err.getvalue()
