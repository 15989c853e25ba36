"""The anchor's scorecard rows from real signed journeys (in-memory twin, real engine):
which legs count, for whom, and what waits for a checkpoint."""

from __future__ import annotations

import re

import pytest

from anchor.errors import AnchorError
from anchor.http.pages import render_scorecard_chart
from anchor.provenance.answer import ProvenanceConfig
from anchor.provenance.scorecards import default_period, monthly, org_scorecard
from proofs.scorecard import verify_scorecard
from support.provenance_fixtures import MIN, T0, Journey, standard_journey

DAY = 24 * 60 * MIN
PERIOD = (T0 - DAY, T0 + 2 * DAY)


def _card(journey: Journey, org: str, *, checkpoint: bool = True) -> dict:
    source = journey.publish_memory(checkpoint=checkpoint)
    return org_scorecard(source, org, ProvenanceConfig(), T0 + 3 * DAY, PERIOD)


def _held_twice() -> Journey:
    """truck-07 carries the lot to the cold room, and later takes it back on: two legs."""
    j = Journey()
    j.gateway("packhouse-gw", "fresh-farms", "line-4")
    j.gateway("truck-07-gw", "cool-logistics", "truck-07")
    j.gateway("coldroom-3-gw", "fresh-farms", "coldroom-3")
    j.readings("packhouse-gw", T0, T0 + 60 * MIN, 5 * MIN, lambda i, t: 4.0)
    j.readings("truck-07-gw", T0 + 60 * MIN, T0 + 600 * MIN, 5 * MIN,
               lambda i, t: 9.0 if T0 + 400 * MIN <= t < T0 + 420 * MIN else 5.0)  # fmt: skip
    j.readings("coldroom-3-gw", T0 + 120 * MIN, T0 + 300 * MIN, 5 * MIN, lambda i, t: 3.0)
    j.scan("packhouse-gw", T0, "packing")
    j.scan("truck-07-gw", T0 + 60 * MIN, "loading")
    j.scan("truck-07-gw", T0 + 120 * MIN, "unloading")
    j.scan("coldroom-3-gw", T0 + 120 * MIN + 1, "receiving")
    j.scan("coldroom-3-gw", T0 + 300 * MIN, "shipping")
    j.scan("truck-07-gw", T0 + 300 * MIN + 1, "loading")
    j.scan("truck-07-gw", T0 + 480 * MIN, "unloading")
    return j


def test_a_lot_held_twice_by_one_carrier_is_two_shipments() -> None:
    doc = _card(_held_twice(), "cool-logistics")
    rows = doc["rows"]
    assert [(r["holder"], r["start_ms"], r["end_ms"]) for r in rows] == [
        ("truck-07", T0 + 60 * MIN, T0 + 120 * MIN),
        ("truck-07", T0 + 300 * MIN + 1, T0 + 480 * MIN),
    ]
    # The second leg was above 8 °C from T0+400 to T0+420 min: four readings at 9.0 held
    # 5 min each, 1 °C over: 20 °C·min.
    assert [(r["status"], r["excursions"], r["degree_minutes"]) for r in rows] == [
        ("pass", 0, 0.0),
        ("fail", 1, 20.0),
    ]
    f = doc["figures"]["holders"]["truck-07"]
    assert (f["shipments"], f["with_excursion"], f["excursion_rate"]) == (2, 1, 0.5)
    assert f["degree_minutes_per_shipment"] == 10.0
    verify_scorecard(doc)


def test_places_of_other_organisations_are_not_counted() -> None:
    doc = _card(standard_journey(excursion=True), "fresh-farms")
    assert sorted(r["holder"] for r in doc["rows"]) == ["coldroom-3", "line-4"]
    assert all(r["org"] == "fresh-farms" for r in doc["rows"])


def test_open_custody_and_unchecked_legs_are_pending() -> None:
    still_there = _card(standard_journey(shipped=False), "fresh-farms")
    assert [r["holder"] for r in still_there["rows"]] == ["line-4"]
    assert still_there["pending"] == 1  # the cold room has not shipped it yet
    unsigned = _card(standard_journey(), "cool-logistics", checkpoint=False)
    assert unsigned["rows"] == [] and unsigned["pending"] == 1
    assert unsigned["checkpoint"]["tree_size"] == 0
    assert unsigned["figures"] == {"orgs": {}, "holders": {}, "months": {}}


def test_the_period_and_the_organisation_are_checked() -> None:
    source = standard_journey().publish_memory()
    config = ProvenanceConfig()
    later = org_scorecard(source, "cool-logistics", config, T0, (T0 + DAY, T0 + 2 * DAY))
    assert later["rows"] == [] and later["pending"] == 0
    with pytest.raises(AnchorError) as e:
        org_scorecard(source, "nobody", config, T0, PERIOD)
    assert e.value.code == "not-found"
    with pytest.raises(AnchorError) as e:
        org_scorecard(source, "cool-logistics", config, T0, (T0, T0))
    assert e.value.code == "bad-parameter"


def test_default_period_is_whole_utc_months() -> None:
    # 2026-11-18 -> 2025-12-01 .. 2026-12-01 for 12 months.
    assert default_period(T0, 12) == (1_764_547_200_000, 1_796_083_200_000)
    doc = {"org": {"id": "o"}, "period": {"from_ms": 1_764_547_200_000,
           "to_ms": 1_796_083_200_000}, "figures": {"months": {}}}  # fmt: skip
    months = [m for m, _ in monthly(doc)]
    assert months[0] == "2025-12" and months[-1] == "2026-11" and len(months) == 12


def test_the_monthly_chart_by_hand() -> None:
    months = [
        ("2026-09", {"shipments": 2, "excursion_rate": 0.5}),
        ("2026-10", {"shipments": 0, "excursion_rate": None}),
        ("2026-11", {"shipments": 4, "excursion_rate": 0.25}),
    ]
    svg = render_scorecard_chart(months)
    assert svg.startswith('<svg id="scorecard-chart"') and svg.endswith("</svg>")
    assert 'aria-labelledby="scorecard-chart-title scorecard-chart-desc"' in svg
    assert "2026-09: 2 shipment(s), excursion rate 50.0 %" in svg
    assert "2026-10:" not in svg.split("</desc>")[0]  # months without shipments not described
    # The plot is 220 - 14 - 34 = 172 px high and scaled to the busiest month (4): November's
    # bar is the full height, September's half of it; October has none.
    bars = re.findall(r'<rect class="bar" x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"',
                      svg)  # fmt: skip
    assert [(float(y), float(h)) for y, h in bars] == [(100.0, 86.0), (14.0, 172.0)]
    # The rate line joins the two months that have a rate: 50 % at 100 px, 25 % at 143 px.
    points = re.findall(r'<circle class="rate-point" cx="([\d.]+)" cy="([\d.]+)"', svg)
    assert [float(cy) for _, cy in points] == [100.0, 143.0]
    assert svg.count("<polyline") == 1
    assert "<script" not in svg and "style=" not in svg  # nothing the pages' CSP would block
