"""The exports on a real anchor: a lot's EPCIS 2.0 document and the event query validate
against GS1's schema and page without loss; the FSMA 204 sheet (CSV and XLSX) has one row
per critical tracking event with the product in words and no cell a spreadsheet would
run; the GS1 resolver answers linksets; bad parameters get problems."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import openpyxl
import pytest

from support.provenance_fixtures import GTIN, LOT, MIN, T0, running_anchor, standard_journey

pytestmark = pytest.mark.integration

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[1] / "vectors" / "epcis" / "EPCIS-JSON-Schema.json"
    ).read_text(encoding="utf-8")
)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
LOT_CLASS = f"https://id.gs1.org/01/{GTIN}/10/{LOT}"
NAME = '=HYPERLINK("http://evil.example","Oat yoghurt")'


def _get(
    base: str, path: str, token: str | None = None, accept: str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("exports")
    tokens: dict[str, str] = {}
    extra = "public_rate_per_s = 100000.0\npublic_burst_requests = 100000\n"
    with running_anchor(tmp, standard_journey(excursion=True), tokens_out=tokens,
                        extra_toml=extra) as base:  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "anchor.cli", "--config", str(tmp / "anchor.toml"), "product",
             "set", "--gtin", GTIN, "--org", "fresh-farms", "--name", NAME, "--pack",
             "case of 12 x 500 g", "--unit", "CS"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield base, tokens


def test_a_lots_epcis_document_validates_and_tells_the_journey(anchor) -> None:
    base, _ = anchor
    status, raw, headers = _get(base, f"/v1/lots/{GTIN}/{LOT}/epcis")
    assert status == 200 and headers["Content-Type"].startswith("application/ld+json")
    doc = json.loads(raw)
    errors = list(VALIDATOR.iter_errors(doc))
    assert errors == [], [e.message for e in errors[:3]]
    events = doc["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in events] == [
        "packing", "loading", "sensor_reporting", "unloading", "sensor_reporting", "receiving",
        "shipping", "sensor_reporting",
    ]  # fmt: skip
    assert len({e["eventID"] for e in events}) == len(events)
    assert all(e["quantityList"] == [{"epcClass": LOT_CLASS}] for e in events)
    truck = events[4]  # the truck leg's report, after the unloading that closes it
    assert truck["readPoint"]["id"] == "urn:coldtrail:place:truck-07"
    (element,) = truck["sensorElementList"]
    stats, alarm = element["sensorReport"]
    assert (stats["minValue"], stats["maxValue"], stats["uom"]) == (4.0, 10.0, "CEL")
    # Five hot readings 5 min apart from T0+150 min, peaking at 10 °C: 25 min in all.
    assert alarm["exception"] == "ALARM_CONDITION" and alarm["value"] == 10.0
    assert alarm["coldtrail:durationMs"] == 25 * MIN
    assert element["sensorMetadata"]["rawData"].startswith(base + "/v1/provenance/bundle?")
    # The validator is not a formality: a made-up business step is refused.
    events[0]["bizStep"] = "teleporting"
    assert list(VALIDATOR.iter_errors(doc))


def test_the_event_query_pages_every_event_exactly_once(anchor) -> None:
    base, _ = anchor
    query = urllib.parse.urlencode({"MATCH_anyEPCClass": LOT_CLASS, "perPage": "3"})
    path, seen, pages = f"/epcis/events?{query}", [], 0
    while path:
        status, raw, headers = _get(base, path)
        assert status == 200, raw
        doc = json.loads(raw)
        assert list(VALIDATOR.iter_errors(doc)) == []
        seen += doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        pages += 1
        link = headers.get("Link")
        path = link.split(">", 1)[0].removeprefix("<").removeprefix(base) if link else ""
    assert pages == 3 and len(seen) == 8 and len({e["eventID"] for e in seen}) == 8
    only = urllib.parse.urlencode({"MATCH_anyEPCClass": LOT_CLASS,
                                   "EQ_bizStep": "receiving|unloading"})  # fmt: skip
    doc = json.loads(_get(base, f"/epcis/events?{only}")[1])
    assert [e["bizStep"] for e in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            ] == ["unloading", "receiving"]  # fmt: skip
    since = datetime.fromtimestamp((T0 + 300 * MIN) / 1000, UTC)  # unloading at coldroom-3
    window = urllib.parse.urlencode({"MATCH_anyEPCClass": LOT_CLASS,
                                     "GE_eventTime": since.isoformat()})  # fmt: skip
    doc = json.loads(_get(base, f"/epcis/events?{window}")[1])
    late = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["bizStep"] for e in late] == [
        "unloading", "sensor_reporting", "receiving", "shipping", "sensor_reporting"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, "bad-parameter"),
        ({"MATCH_anyEPCClass": "urn:epc:class:lgtin:garbage"}, "bad-parameter"),
        ({"MATCH_anyEPCClass": LOT_CLASS, "EQ_bizStep": "teleporting"}, "bad-parameter"),
        ({"MATCH_anyEPCClass": LOT_CLASS, "perPage": "0"}, "bad-parameter"),
        ({"MATCH_anyEPCClass": LOT_CLASS, "GE_eventTime": "yesterday"}, "bad-parameter"),
        ({"MATCH_anyEPCClass": LOT_CLASS, "nextPageToken": "bm90IGEgdG9rZW4"}, "bad-cursor"),
        ({"MATCH_anyEPCClass": LOT_CLASS, "EQ_disposition": "x"}, "bad-parameter"),
    ],
)
def test_bad_queries_get_a_problem(anchor, query: dict[str, str], code: str) -> None:
    base, _ = anchor
    status, raw, _ = _get(base, "/epcis/events?" + urllib.parse.urlencode(query))
    assert status == 400 and json.loads(raw)["code"] == code


def _sheet_rows(raw: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_the_fsma_204_sheet_has_a_row_per_critical_tracking_event(anchor) -> None:
    base, tokens = anchor
    path = f"/v1/exports/fsma204?gtin={GTIN}&lot={LOT}"
    assert _get(base, path)[0] == 401
    assert _get(base, path, tokens["fresh-farms"])[0] == 403  # a gateway token
    status, raw, headers = _get(base, path, tokens["fresh-farms:operator"])
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = _sheet_rows(raw)
    assert [(r["Critical Tracking Event"], r["Location Description"]) for r in rows] == [
        ("Initial Packing", "line-4 (fresh-farms)"),
        ("Shipping", "line-4 (fresh-farms)"),
        ("Receiving", "coldroom-3 (fresh-farms)"),
        ("Shipping", "coldroom-3 (fresh-farms)"),
    ]
    assert rows[1]["Immediate Subsequent Recipient"] == "truck-07 (cool-logistics)"
    assert rows[2]["Immediate Previous Source"] == "truck-07 (cool-logistics)"
    assert {r["Traceability Lot Code"] for r in rows} == {f"{GTIN}/{LOT}"}
    assert {r["Traceability Lot Code Source"] for r in rows} == {"line-4 (fresh-farms)"}
    assert rows[0]["Quantity"] == "1" and rows[0]["Unit of Measure"] == "case"
    assert rows[2]["Quantity"] == "2" and rows[2]["Unit of Measure"] == "cases"
    # The product's name is a formula in the registry: the sheet says it, never runs it.
    assert rows[0]["Product Description"].startswith("'=HYPERLINK(")
    assert all(r["Reference Document Number"].count("#") == 1 for r in rows)
    status, xlsx, headers = _get(base, path + "&format=xlsx", tokens["cool-logistics:auditor"])
    assert status == 200 and xlsx[:2] == b"PK"
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx)).active
    values = list(sheet.iter_rows(values_only=True))
    assert [v[6] for v in values[1:]] == [r["Critical Tracking Event"] for r in rows]
    assert values[1][4] == 1 and str(values[1][3]).startswith("'=")
    # By date range, the same lot's rows; an operator of neither holder nor owner sees none.
    window = "from=2026-11-18T00:00:00Z&to=2026-11-19T00:00:00Z"
    ranged = _sheet_rows(_get(base, f"/v1/exports/fsma204?{window}",
                              tokens["fresh-farms:operator"])[1])  # fmt: skip
    assert len(ranged) == len(rows)
    for bad in ("?gtin=123&lot=x", "?lot=x", "?format=pdf&gtin=" + GTIN + "&lot=" + LOT,
                "?from=2026-11-19T00:00:00Z&to=2026-11-18T00:00:00Z"):  # fmt: skip
        status, raw, _ = _get(base, "/v1/exports/fsma204" + bad, tokens["fresh-farms:operator"])
        assert status == 400, bad


def test_the_gs1_resolver_answers_linksets_and_leaves_the_page_alone(anchor) -> None:
    base, _ = anchor
    status, raw, headers = _get(base, f"/01/{GTIN}/10/{LOT}", accept="application/linkset+json")
    assert status == 200 and headers["Content-Type"].startswith("application/linkset+json")
    (links,) = json.loads(raw)["linkset"]
    assert links["anchor"] == f"{base}/01/{GTIN}/10/{LOT}"
    for rel in ("traceability", "epcis", "pip"):
        assert links[f"https://gs1.org/voc/{rel}"][0]["href"].startswith(base)
    epcis_href = links["https://gs1.org/voc/epcis"][0]["href"]
    assert json.loads(_get(base, epcis_href.removeprefix(base))[1])["type"] == "EPCISDocument"
    status, raw, _ = _get(base, f"/01/{GTIN}?linkType=all")
    assert status == 200 and "https://gs1.org/voc/traceability" not in json.loads(raw)["linkset"][0]
    status, raw, headers = _get(base, f"/01/{GTIN}/10/{LOT}", accept="text/html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'id="verify"' in raw
    assert b"case of 12 x 500 g (traded in cases)" in raw  # the unit in words, not "CS"
    status, raw, _ = _get(base, "/.well-known/gs1resolver")
    assert status == 200 and "gs1:epcis" in json.loads(raw)["linkTypes"]
    status, raw, _ = _get(base, f"/v1/products/{GTIN}")
    product = json.loads(raw)
    assert status == 200 and (product["unit"], product["unit_words"]) == ("CS", "cases")
    assert _get(base, "/01/123/10/x", accept="application/linkset+json")[0] == 400


def test_units_are_said_in_words(anchor) -> None:
    from anchor.exports.units import quantity_words, unit_words

    assert unit_words("C62") == "units" and unit_words("C62", 1) == "unit"
    assert quantity_words(12, "CS") == "12 cases" and quantity_words(0.5, "LTR") == "0.5 litres"
    assert unit_words("P1") == "percent" and unit_words("ZZZ") == "ZZZ (UN/ECE unit code)"
