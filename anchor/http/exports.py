"""The exports over HTTP (anchor.exports).

- ``GET /v1/lots/{gtin}/{lot}/epcis``: the lot's EPCIS 2.0 document (public: what the
  consumer page shows, in GS1's exchange format);
- ``GET /epcis/events``: the EPCIS query interface's event query for the subjects named
  by ``MATCH_anyEPCClass`` (lots, as Digital Link URIs or ``urn:epc:class:lgtin:``) and
  ``MATCH_anyEPC`` (serials, SSCCs), narrowed by ``EQ_bizStep``, ``GE_eventTime``,
  ``LT_eventTime``, paged by ``perPage`` and ``nextPageToken`` (``Link: rel="next"``);
- ``GET /v1/exports/fsma204?gtin=&lot=`` or ``?from=&to=`` (``format=csv|xlsx``): the
  FSMA 204 sortable spreadsheet, for operators (lots their organisation held or owns)
  and auditors (all);
- ``GET /v1/products/{gtin}``: a product's master data with its unit in words;
- ``GET /.well-known/gs1resolver`` and, for ``/01/{gtin}`` and ``/01/{gtin}/10/{lot}``
  asked with ``Accept: application/linkset+json`` or ``?linkType=all``, an RFC 9264
  linkset (``gs1:traceability``, ``gs1:epcis``, ``gs1:pip``, ``gs1:certificationInfo``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from anchor.errors import AnchorError
from anchor.exports import epcis, fsma
from anchor.exports.units import unit_words
from anchor.http.params import json_response
from anchor.http.problems import problem_response, with_problems
from anchor.ledger.ports import LedgerStore
from anchor.provenance.answer import ProvenanceAnswer, Subject, answer_for_subject, parse_gtin
from proofs.documents import lot_subject

__all__ = ["setup_exports"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_SUBJECTS = 20
_PER_PAGE_MAX = 500
_FSMA_LOTS_MAX = 200
_DL = re.compile(
    r"https://id\.gs1\.org/(01)/(\d{14})/(10|21)/([^/?#]+)$|https://id\.gs1\.org/00/(\d{18})$"
)
_LGTIN = re.compile(r"urn:epc:class:lgtin:(\d+)\.(\d+)\.(.+)$")
_STEPS = {"packing", "loading", "unloading", "receiving", "shipping", "storing",
          "inspecting", "sensor_reporting"}  # fmt: skip
LINKSET = "application/linkset+json"


def _keys() -> tuple[Any, Any, Any, Any]:
    from anchor.http.keys import STORE
    from anchor.http.limits import PUBLIC_GATE
    from anchor.http.pages import CALLER_RESOLVER, PROVENANCE_CONFIG, PROVENANCE_SOURCE

    return STORE, PUBLIC_GATE, PROVENANCE_SOURCE, (PROVENANCE_CONFIG, CALLER_RESOLVER)


async def _answer(request: web.Request, subject: Subject) -> ProvenanceAnswer:
    _, gate, source_key, (config_key, _) = _keys()
    source, config = request.app[source_key], request.app[config_key]
    answer: ProvenanceAnswer = await request.app[gate].run(
        answer_for_subject, source, subject, config, int(time.time() * 1000)
    )
    return answer


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _lgtin_subject(m: re.Match[str]) -> Subject:
    """``urn:epc:class:lgtin:CompanyPrefix.IndicatorItemRef.Lot`` as a lot."""
    prefix, item, lot = m.group(1), m.group(2), urllib.parse.unquote(m.group(3))
    digits = item[0] + prefix + item[1:]
    if len(digits) != 13 or not digits.isdigit():
        raise AnchorError("bad-parameter", "an LGTIN URN's company prefix and item reference")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return Subject.for_lot(digits + str((10 - total % 10) % 10), lot)


def parse_epc(text: str) -> Subject:
    """A lot, serial or SSCC named by its GS1 Digital Link URI (or an LGTIN URN)."""
    m = _DL.match(text.strip())
    if m is not None:
        if m.group(5):
            return Subject.for_sscc(m.group(5))
        value = urllib.parse.unquote(m.group(4))
        return (Subject.for_lot if m.group(3) == "10" else Subject.for_serial)(m.group(2), value)
    m2 = _LGTIN.match(text.strip())
    if m2 is not None:
        return _lgtin_subject(m2)
    raise AnchorError(
        "bad-parameter",
        f"{text[:80]!r} is not a GS1 Digital Link URI (https://id.gs1.org/01/GTIN/10/LOT, "
        ".../21/SERIAL, /00/SSCC) or an LGTIN URN",
    )


def _ms(text: str, name: str) -> int:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise AnchorError("bad-parameter", f"{name} is an RFC 3339 time") from e
    if t.tzinfo is None:
        raise AnchorError("bad-parameter", f"{name} needs a time zone (Z or +hh:mm)")
    return int(t.timestamp() * 1000)


def _query_digest(query: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(query.items())).encode()).hexdigest()[:16]


def _token(query: dict[str, str], offset: int) -> str:
    raw = json.dumps({"o": offset, "q": _query_digest(query)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(token: str, query: dict[str, str]) -> int:
    """The offset a nextPageToken carries, if this query gave it."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset, digest = int(data["o"]), data["q"]
    except (ValueError, KeyError, TypeError) as e:
        raise AnchorError("bad-cursor", "nextPageToken is not one this query gave") from e
    if digest != _query_digest(query) or offset < 0:
        raise AnchorError("bad-cursor", "nextPageToken belongs to another query")
    return offset


def _ld(doc: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """JSON-LD (EPCIS 2.0 documents are served as application/ld+json)."""
    return web.Response(
        body=json.dumps(doc, separators=(",", ":"), allow_nan=False).encode(),
        content_type="application/ld+json",
        headers=headers or {},
    )


async def lot_epcis(request: web.Request) -> web.StreamResponse:
    subject = Subject.for_lot(request.match_info["gtin"], request.match_info["lot"])
    answer = await _answer(request, subject)
    if not answer.intervals and not answer.loose_scans:
        raise AnchorError("not-found", "this ledger holds no scan of this lot")
    doc = epcis.document(epcis.events(answer, _base(request)), int(time.time() * 1000))
    return _ld(doc)


async def query_events(request: web.Request) -> web.StreamResponse:
    q = request.query
    known = {"MATCH_anyEPC", "MATCH_anyEPCClass", "EQ_bizStep", "GE_eventTime",
             "LT_eventTime", "perPage", "nextPageToken"}  # fmt: skip
    unknown = set(q) - known
    if unknown:
        raise AnchorError(
            "bad-parameter", f"unsupported query parameters: {', '.join(sorted(unknown))[:200]}"
        )
    names = [x for k in ("MATCH_anyEPCClass", "MATCH_anyEPC") for v in q.getall(k, [])
             for x in v.split("|") if x]  # fmt: skip
    if not names:
        raise AnchorError(
            "bad-parameter",
            "name the lots (MATCH_anyEPCClass) or items (MATCH_anyEPC) whose events you want;"
            " a query of every event in the ledger is not offered",
        )
    if len(names) > _MAX_SUBJECTS:
        raise AnchorError("bad-parameter", f"at most {_MAX_SUBJECTS} EPCs or classes at once")
    subjects = [parse_epc(n) for n in names]
    steps = {x for v in q.getall("EQ_bizStep", []) for x in v.split("|") if x}
    steps = {s.removeprefix("https://ref.gs1.org/cbv/BizStep-") for s in steps}
    if not steps <= _STEPS:
        raise AnchorError("bad-parameter", f"EQ_bizStep is one of {', '.join(sorted(_STEPS))}")
    ge = _ms(q["GE_eventTime"], "GE_eventTime") if "GE_eventTime" in q else None
    lt = _ms(q["LT_eventTime"], "LT_eventTime") if "LT_eventTime" in q else None
    try:
        per_page = int(q.get("perPage", "100"))
    except ValueError as e:
        raise AnchorError("bad-parameter", "perPage is a number") from e
    if not 1 <= per_page <= _PER_PAGE_MAX:
        raise AnchorError("bad-parameter", f"perPage is 1 to {_PER_PAGE_MAX}")
    query = {k: v for k, v in q.items() if k != "nextPageToken"}
    offset = _offset(q["nextPageToken"], query) if "nextPageToken" in q else 0
    found: list[dict[str, Any]] = []
    for subject in dict.fromkeys(subjects):
        answer = await _answer(request, subject)
        found += epcis.events(answer, _base(request))

    def keep(e: dict[str, Any]) -> bool:
        t = _ms(e["eventTime"], "eventTime")
        return ((not steps or e["bizStep"] in steps) and (ge is None or t >= ge)
                and (lt is None or t < lt))  # fmt: skip

    # In time order, and at one time as the answer tells it (a scan before the report
    # of the leg it closes); each event once, however many subjects name it.
    rank = {e["eventID"]: i for i, e in reversed(list(enumerate(found)))}
    chosen = sorted({e["eventID"]: e for e in found if keep(e)}.values(),
                    key=lambda e: (e["eventTime"], rank[e["eventID"]]))  # fmt: skip
    page = chosen[offset : offset + per_page]
    headers = {}
    if offset + per_page < len(chosen):
        token = _token(query, offset + per_page)
        nxt = urllib.parse.urlencode([*query.items(), ("nextPageToken", token)])
        headers["Link"] = f'<{_base(request)}/epcis/events?{nxt}>; rel="next"'
    doc = epcis.query_document(page, int(time.time() * 1000))
    return _ld(doc, headers)


async def fsma_export(request: web.Request) -> web.StreamResponse:
    store_key, _, _, (_, caller_key) = _keys()
    caller = await request.app[caller_key](request)
    if caller.role not in ("operator", "auditor") or caller.org is None:
        raise AnchorError(
            "forbidden" if caller.org else "unauthenticated",
            "the FSMA 204 spreadsheet is for operators and auditors",
        )
    q = request.query
    fmt = q.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise AnchorError("bad-parameter", "format is csv or xlsx")
    store: LedgerStore = request.app[store_key]
    if "gtin" in q or "lot" in q:
        if not q.get("gtin") or not q.get("lot"):
            raise AnchorError("bad-parameter", "give both gtin and lot (the traceability lot code)")
        lots = [(parse_gtin(q["gtin"]), q["lot"])]
    elif "from" in q and "to" in q:
        t_from, t_to = _ms(q["from"], "from"), _ms(q["to"], "to")
        if not t_from < t_to or t_to - t_from > 366 * 86_400_000:
            raise AnchorError("bad-parameter", "from..to runs forwards over at most 366 days")
        lots = await asyncio.to_thread(store.lots_between, t_from, t_to, _FSMA_LOTS_MAX)
    else:
        raise AnchorError("bad-parameter", "give gtin and lot, or from and to (RFC 3339)")

    def place(pid: str) -> str:
        p = store.place(pid)
        return f"{p.name} ({p.org_id})" if p is not None else pid

    def involved(answer: ProvenanceAnswer) -> bool:
        if caller.role == "auditor":
            return True
        if answer.product is not None and answer.product.org_id == caller.org:
            return True
        return any((p := store.place(ia.custody.holder)) is not None and p.org_id == caller.org
                   for ia in answer.intervals)  # fmt: skip

    out: list[fsma.KdeRow] = []
    for gtin, lot in lots:
        try:
            subject = Subject.for_lot(gtin, lot)
        except AnchorError:
            continue
        answer = await _answer(request, subject)
        if await asyncio.to_thread(involved, answer):
            out += await asyncio.to_thread(fsma.rows, answer, place)
    name = "fsma204-" + re.sub(r"[^A-Za-z0-9._-]", "_", q.get("lot", "range"))[:60]
    if fmt == "csv":
        return web.Response(
            body=fsma.csv_bytes(out), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )  # fmt: skip
    body = await asyncio.to_thread(fsma.xlsx_bytes, out, "FSMA 204 key data elements")
    return web.Response(
        body=body,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )


async def product(request: web.Request) -> web.StreamResponse:
    store_key = _keys()[0]
    gtin = parse_gtin(request.match_info["gtin"])
    p = await asyncio.to_thread(request.app[store_key].product, gtin)
    if p is None:
        raise AnchorError("not-found", "no master data is registered for this GTIN")
    return json_response({"gtin": p.gtin, "name": p.name, "description": p.description,
                          "pack": p.pack, "unit": p.unit, "unit_words": unit_words(p.unit),
                          "owner": p.org_id, "profile": p.profile or None})  # fmt: skip


async def resolver_description(request: web.Request) -> web.StreamResponse:
    base = _base(request)
    return json_response({
        "name": "coldtrail anchor",
        "resolverRoot": base,
        "supportedPrimaryKeys": ["01", "00"],
        "supportedLinkType": [
            {"namespace": "https://gs1.org/voc/", "prefix": "gs1:",
             "profile": "https://gs1.org/voc/?show=linktypes"},
        ],
        "linkTypeDefaultCanBeLinkset": True,
        "validatesDigitalLinkSyntax": True,
        "supportedContextValuesEnumerated": [],
        "linkTypes": ["gs1:traceability", "gs1:epcis", "gs1:pip", "gs1:certificationInfo"],
    })  # fmt: skip


def linkset(base: str, gtin: str, lot: str | None, documents: list[Any]) -> dict[str, Any]:
    """RFC 9264 linkset of a product or a lot, GS1 link types as relation URIs."""
    q = urllib.parse.quote
    path = f"/01/{gtin}" + (f"/10/{q(lot, safe='')}" if lot is not None else "")
    links: dict[str, Any] = {"anchor": base + path}
    if lot is not None:
        links["https://gs1.org/voc/traceability"] = [
            {"href": base + path, "title": "Where this lot has been and whether it was kept cold",
             "type": "text/html", "hreflang": ["en"]}]  # fmt: skip
        links["https://gs1.org/voc/epcis"] = [
            {"href": f"{base}/v1/lots/{gtin}/{q(lot, safe='')}/epcis",
             "title": "The lot's EPCIS 2.0 events", "type": "application/ld+json"},
            {"href": base + "/epcis/events?" + urllib.parse.urlencode(
                {"MATCH_anyEPCClass": f"https://id.gs1.org/01/{gtin}/10/{lot}"}),
             "title": "EPCIS event query", "type": "application/ld+json"}]  # fmt: skip
    links["https://gs1.org/voc/pip"] = [
        {"href": f"{base}/v1/products/{gtin}", "title": "Product master data",
         "type": "application/json"}]  # fmt: skip
    if documents:
        links["https://gs1.org/voc/certificationInfo"] = [
            {"href": f"{base}/v1/documents/{d.entry.digest}",
             "title": f"{d.entry.label}: {d.entry.name} ({d.entry.issuer})",
             "type": "application/json"} for d in documents]  # fmt: skip
    return {"linkset": [links]}


_LINK_PATH = re.compile(r"^/01/(\d{14})(?:/10/([^/]+))?/?$")


@web.middleware
async def linkset_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/01/...`` asked for a linkset gets one; everything else goes on as before."""
    m = _LINK_PATH.match(request.path)
    wants = LINKSET in request.headers.get("Accept", "") or request.query.get("linkType") == "all"
    if m is None or not wants or request.method != "GET":
        return await handler(request)
    try:
        gtin = parse_gtin(m.group(1))
        lot = urllib.parse.unquote(m.group(2)) if m.group(2) else None
        if lot is not None:
            Subject.for_lot(gtin, lot)  # the lot's syntax, refused like the page would
        store_key = _keys()[0]
        store: LedgerStore = request.app[store_key]
        product = await asyncio.to_thread(store.product, gtin)
        subjects = [("organisation", product.org_id)] if product is not None else []
        if lot is not None:
            subjects.append(("lot", lot_subject(gtin, lot)))
        documents = await asyncio.to_thread(store.documents_about, subjects) if subjects else []
    except AnchorError as e:
        return problem_response(e.code, e.detail, request.path)
    body = linkset(_base(request), gtin, lot, documents)
    return web.Response(text=json.dumps(body), content_type=LINKSET, headers={"Vary": "Accept"})


def openapi_paths() -> dict[str, Any]:
    problem = {"content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}  # fmt: skip

    def problems(*codes: int) -> dict[str, Any]:
        return {str(c): {"description": "Refused", **problem} for c in codes}

    def q(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": {"type": "string"}}  # fmt: skip

    def path(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}

    ld = {"content": {"application/ld+json": {"schema": {"type": "object"}}}}
    return {
        "/v1/lots/{gtin}/{lot}/epcis": {"get": {
            "summary": "A lot's EPCIS 2.0 document", "parameters": [path("gtin"), path("lot")],
            "responses": {"200": {"description": "EPCISDocument", **ld},
                          **problems(400, 404)}}},
        "/epcis/events": {"get": {
            "summary": "EPCIS 2.0 event query (SimpleEventQuery subset)",
            "parameters": [q("MATCH_anyEPCClass", "lots as Digital Link URIs, | separated"),
                           q("MATCH_anyEPC", "serials or SSCCs as Digital Link URIs"),
                           q("EQ_bizStep", "CBV business steps, | separated"),
                           q("GE_eventTime", "RFC 3339"), q("LT_eventTime", "RFC 3339"),
                           q("perPage", "1-500"), q("nextPageToken", "from a Link header")],
            "responses": {"200": {"description": "EPCISQueryDocument", **ld},
                          **problems(400)}}},
        "/v1/exports/fsma204": {"get": {
            "summary": "FSMA 204 sortable spreadsheet (operators, auditors)",
            "parameters": [q("gtin", "GTIN-14"), q("lot", "lot"), q("from", "RFC 3339"),
                           q("to", "RFC 3339"), q("format", "csv or xlsx")],
            "responses": {"200": {"description": "CSV or XLSX attachment"},
                          **problems(400, 401, 403)}}},
        "/v1/products/{gtin}": {"get": {
            "summary": "A product's master data", "parameters": [path("gtin")],
            "responses": {"200": {"description": "master data", "content": {
                "application/json": {"schema": {"type": "object"}}}}, **problems(400, 404)}}},
        "/.well-known/gs1resolver": {"get": {
            "summary": "GS1 Digital Link resolver description",
            "responses": {"200": {"description": "resolver description", "content": {
                "application/json": {"schema": {"type": "object"}}}}}}},
    }  # fmt: skip


def setup_exports(app: web.Application) -> None:
    from anchor.http.keys import OPENAPI

    doc = app.get(OPENAPI)
    if doc is not None:
        doc["paths"].update(openapi_paths())
    app.middlewares.append(linkset_middleware)
    app.router.add_routes(
        [
            web.get("/v1/lots/{gtin}/{lot}/epcis", with_problems(lot_epcis)),
            web.get("/epcis/events", with_problems(query_events)),
            web.get("/v1/exports/fsma204", with_problems(fsma_export)),
            web.get("/v1/products/{gtin}", with_problems(product)),
            web.get("/.well-known/gs1resolver", with_problems(resolver_description)),
        ]
    )
