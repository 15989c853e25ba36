"""EPCIS 2.0 (JSON-LD) from provenance answers.

Each scan of a lot, serial or SSCC is an ``ObjectEvent`` (action ``OBSERVE``, the CBV
business step, the read point and, for steps that put goods somewhere, the business
location), or, for a logistic-unit label naming what the unit holds (SSCC with AIs 02,
37, 10), an ``AggregationEvent`` of the pallet and its contents; each custody leg's
readings are one ``ObjectEvent`` with business step ``sensor_reporting`` and a
``sensorElementList``: per sensor its interval statistics (min, max and time-weighted
mean) over the leg and, for every excursion, a report with ``exception:
ALARM_CONDITION``, its start, peak and (in the ``coldtrail:`` namespace) its duration and
degree-minutes. ``rawData`` points at the lot's proof bundle, which proves
every reading, and ``deviceMetadata`` at the gateway's page in the explorer. Event ids
are ``ni:`` URIs of the record's Merkle leaf hash (RFC 6920), so an event names the
signed record it comes from.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from anchor.provenance.answer import ProvenanceAnswer, Subject
from proofs.records import Scan

__all__ = [
    "CONTEXT",
    "document",
    "events",
    "place_uri",
    "query_document",
    "subject_uri",
]

CONTEXT: list[Any] = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"coldtrail": "https://coldtrail.dev/epcis/"},
]
# Steps after which the goods are at the read point's place.
_PUT_AWAY = {"receiving", "storing", "unloading", "packing"}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


def subject_uri(subject: Subject) -> str:
    """The GS1 Digital Link URI of a lot (an EPC class), a serial or an SSCC (EPCs)."""
    q = urllib.parse.quote
    if subject.kind == "lot":
        return f"https://id.gs1.org/01/{subject.gtin}/10/{q(subject.lot or '', safe='')}"
    if subject.kind == "serial":
        return f"https://id.gs1.org/01/{subject.gtin}/21/{q(subject.serial or '', safe='')}"
    return f"https://id.gs1.org/00/{subject.sscc}"


def place_uri(place: str) -> str:
    """A read point or location as a URI: a URN or URL as is, a GLN as its Digital Link,
    a registry name under ``urn:coldtrail:place:``."""
    if re.match(r"(urn|https?):[^\s]+$", place):
        return place
    if len(place) == 13 and place.isdigit():
        return f"https://id.gs1.org/414/{place}"
    return "urn:coldtrail:place:" + urllib.parse.quote(place, safe="-._~:@/")


def _event_id(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def _what(subject: Subject) -> dict[str, Any]:
    uri = subject_uri(subject)
    if subject.kind == "lot":
        return {"quantityList": [{"epcClass": uri}]}
    return {"epcList": [uri]}


def _aggregation(s: Scan, holder: str) -> dict[str, Any] | None:
    """A logistic-unit label (an SSCC with the GTIN and count of what it holds, AIs 00,
    02, 37, 10) read at a step: the pallet and its contents, as an AggregationEvent
    (``ADD`` when packed, ``OBSERVE`` after)."""
    sscc, content = s.gs1.get("00"), s.gs1.get("02")
    if not sscc or not content:
        return None
    lot = s.gs1.get("10")
    child: dict[str, Any] = {
        "epcClass": f"https://id.gs1.org/01/{content}"
        + (f"/10/{urllib.parse.quote(lot, safe='')}" if lot else "")
    }
    count = s.gs1.get("37", "")
    if count.isdigit():
        child["quantity"] = int(count)
    event: dict[str, Any] = {
        "type": "AggregationEvent",
        "eventID": _event_id(s.leaf_hash()),
        "eventTime": iso(s.t),
        "eventTimeZoneOffset": "+00:00",
        "parentID": f"https://id.gs1.org/00/{sscc}",
        "childQuantityList": [child],
        "action": "ADD" if s.step == "packing" else "OBSERVE",
        "bizStep": s.step,
        "readPoint": {"id": place_uri(s.rp or holder)},
        "coldtrail:record": f"{s.gw}#{s.seq}",
    }
    if s.step in _PUT_AWAY:
        event["bizLocation"] = {"id": place_uri(holder)}
    return event


def _scan_event(s: Scan, subject: Subject, holder: str) -> dict[str, Any]:
    aggregation = _aggregation(s, holder)
    if aggregation is not None:
        return aggregation
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": _event_id(s.leaf_hash()),
        "eventTime": iso(s.t),
        "eventTimeZoneOffset": "+00:00",
        **_what(subject),
        "action": "OBSERVE",
        "bizStep": s.step,
        "readPoint": {"id": place_uri(s.rp or holder)},
        "coldtrail:record": f"{s.gw}#{s.seq}",
    }
    if s.step in _PUT_AWAY:
        event["bizLocation"] = {"id": place_uri(holder)}
    return event


def _sensor_event(ia: Any, subject: Subject, base: str, bundle_path: str) -> dict[str, Any] | None:
    figures = [f for f in ia.sensors() if f.readings]
    if not figures:
        return None
    start, end = ia.custody.start, ia.end
    elements = []
    for f in figures:
        gw = f.sensor.rsplit("/", 1)[0]
        reports: list[dict[str, Any]] = [
            {"type": "Temperature", "minValue": f.min_c, "maxValue": f.max_c,
             "meanValue": round(f.mean_c, 4) if f.mean_c is not None else None, "uom": "CEL"}
        ]  # fmt: skip
        for e in f.excursions:
            reports.append(
                {
                    "type": "Temperature",
                    "exception": "ALARM_CONDITION",
                    "time": iso(e.start_ms),
                    "value": e.peak_c,
                    "uom": "CEL",
                    "coldtrail:excursionEnd": iso(e.end_ms),
                    "coldtrail:durationMs": e.duration_ms,
                    "coldtrail:degreeMinutes": round(e.degree_minutes, 3),
                }
            )
        elements.append(
            {
                "sensorMetadata": {
                    "startTime": iso(start),
                    "endTime": iso(end),
                    "deviceID": "urn:coldtrail:sensor:"
                    + urllib.parse.quote(f.sensor, safe="-._~:@/"),
                    "deviceMetadata": f"{base}/explorer/gateways/{urllib.parse.quote(gw)}",
                    "rawData": base + bundle_path,
                },
                "sensorReport": [{k: v for k, v in r.items() if v is not None} for r in reports],
            }
        )
    key = f"{subject_uri(subject)}\n{ia.custody.holder}\n{start}\n{end}".encode()
    return {
        "type": "ObjectEvent",
        "eventID": _event_id(key),
        "eventTime": iso(end),
        "eventTimeZoneOffset": "+00:00",
        **_what(subject),
        "action": "OBSERVE",
        "bizStep": "sensor_reporting",
        "readPoint": {"id": place_uri(ia.custody.holder)},
        "sensorElementList": elements,
    }


def events(answer: ProvenanceAnswer, base: str) -> list[dict[str, Any]]:
    """Every event of one answer, in time order (scans, then each leg's sensor report)."""
    subject = answer.subject
    if subject is None:
        return []
    bundle_path = "/v1/provenance/bundle?" + urllib.parse.urlencode(subject.query_params())
    out: list[tuple[int, int, dict[str, Any]]] = []
    for ia in answer.intervals:
        c = ia.custody
        for s in (c.opened_by, *c.events):
            out.append((s.t, 0, _scan_event(s, subject, c.holder)))
        if c.closed_by is not None and not any(
            x.custody.opened_by is c.closed_by for x in answer.intervals
        ):
            out.append((c.closed_by.t, 0, _scan_event(c.closed_by, subject, c.holder)))
        sensor = _sensor_event(ia, subject, base, bundle_path)
        if sensor is not None:
            out.append((ia.end, 1, sensor))
    for s in answer.loose_scans:
        out.append((s.t, 0, _scan_event(s, subject, s.rp or s.gw)))
    seen: set[str] = set()
    ordered = []
    for _, _, e in sorted(out, key=lambda x: (x[0], x[1], x[2]["eventID"])):
        if e["eventID"] not in seen:
            seen.add(e["eventID"])
            ordered.append(e)
    return ordered


def document(evts: Iterable[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": iso(now_ms),
        "epcisBody": {"eventList": list(evts)},
    }


def query_document(evts: Iterable[dict[str, Any]], now_ms: int) -> dict[str, Any]:
    return {
        "@context": CONTEXT,
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": iso(now_ms),
        "epcisBody": {
            "queryResults": {
                "queryName": "SimpleEventQuery",
                "resultsBody": {"eventList": list(evts)},
            }
        },
    }
