"""EPCIS from answers (anchor.exports.epcis): a pallet's label is an AggregationEvent of
the pallet and its lot, and every document validates against GS1's schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from anchor.exports import epcis
from anchor.provenance.answer import ProvenanceConfig, Subject, answer_for_subject
from support.provenance_fixtures import GTIN, LOT, MIN, T0, standard_journey

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[2] / "vectors" / "epcis" / "EPCIS-JSON-Schema.json"
    ).read_text(encoding="utf-8")
)
SSCC = "095060001343520017"


def test_a_pallet_label_is_an_aggregation_of_the_pallet_and_its_lot() -> None:
    j = standard_journey()
    pallet = {"00": SSCC, "02": GTIN, "37": "24", "10": LOT}
    j.scan("packhouse-gw", T0 + 30 * MIN, "packing", gs1=pallet)
    j.scan("truck-07-gw", T0 + 60 * MIN, "loading", gs1=pallet)
    j.scan("coldroom-3-gw", T0 + 300 * MIN, "receiving", gs1=pallet)
    source = j.publish_memory()
    answer = answer_for_subject(source, Subject.for_sscc(SSCC), ProvenanceConfig(),
                                T0 + 9 * 60 * MIN)  # fmt: skip
    events = epcis.events(answer, "https://anchor.example")
    aggregations = [e for e in events if e["type"] == "AggregationEvent"]
    assert [(e["action"], e["bizStep"]) for e in aggregations] == [
        ("ADD", "packing"), ("OBSERVE", "loading"), ("OBSERVE", "receiving")
    ]  # fmt: skip
    first = aggregations[0]
    assert first["parentID"] == f"https://id.gs1.org/00/{SSCC}"
    assert first["childQuantityList"] == [
        {"epcClass": f"https://id.gs1.org/01/{GTIN}/10/{LOT}", "quantity": 24}
    ]
    validator = jsonschema.Draft7Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    doc = epcis.document(events, T0)
    assert list(validator.iter_errors(doc)) == []
    first["action"] = "MERGE"  # no such action in EPCIS
    assert list(validator.iter_errors(doc))
