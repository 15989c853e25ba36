"""Provenance over HTTP: GS1 Digital Link pages, the provenance API, bundles and the explorer.

Routes (``setup_web`` adds them to the app):

- ``GET /01/{gtin}/10/{lot}``, ``/01/{gtin}/21/{serial}``, ``/00/{sscc}``: the consumer
  page for people (``Accept: text/html``), the provenance answer as JSON for programs
  (any other Accept, or ``?format=json``);
- ``GET /v1/provenance``: by ``gtin``+``lot``, ``gtin``+``serial``, ``sscc``, ``gateway``
  or ``sensor``, with ``from``/``to``, ``limit`` and ``cursor`` for raw readings;
- ``GET /v1/provenance/bundle``: the same selectors; a downloadable ``coldtrail-bundle/1``;
- ``GET /explorer``, ``/explorer/blocks/{height}``, ``/explorer/gateways/{id}``,
  ``/explorer/orgs/{id}``: plain server-rendered HTML;
- ``GET /v1/scorecards/{org}``: an organisation's custodian scorecard, a canonical-JSON
  ``coldtrail-scorecard/1`` export that ``coldtrail-verify scorecard`` recomputes;
- ``GET /explorer/consortium``: on a consortium member node, its members, policy, recent
  checkpoints' cosigners and each member node's health (404 on a node that is none).

Every value that reaches HTML goes through :func:`esc`; every page carries a
Content-Security-Policy that allows scripts and styles from this origin only.
Queries run in a worker thread because the ledger store is blocking SQLite.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import html
import json
import math
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from anchor.errors import AnchorError
from anchor.exports.units import unit_words
from anchor.http.limits import PUBLIC_GATE, BoundedCache, Overloaded, PublicGate, PublicLimits
from anchor.http.params import int_param, json_response
from anchor.http.problems import problem_response
from anchor.ledger.model import Product
from anchor.ledger.ports import LedgerStore
from anchor.ledger.registry import Attest
from anchor.metrics import AnchorMetrics
from anchor.provenance.answer import (
    ProvenanceAnswer,
    ProvenanceConfig,
    Subject,
    answer_for_readings,
    answer_for_subject,
    assemble_bundle,
    chart_points,
    lot_bundle_subject,
)
from anchor.provenance.dispositions import Announce, disposition_json, override
from anchor.provenance.scorecards import (
    ScorecardLimits,
    default_period,
    monthly,
    org_figures,
    org_scorecard,
)
from anchor.provenance.source import (
    BatchInfo,
    BlockInfo,
    GatewayInfo,
    ProvenanceSource,
    ReadingPoint,
    ReadingQuery,
    holder_of,
)
from proofs.canonical import canonical_json
from proofs.coldchain import Profile, Reason
from proofs.identifiers import is_identifier
from proofs.records import Scan

__all__ = [
    "CALLER_RESOLVER",
    "CONSORTIUM_VIEW",
    "CONTENT_SECURITY_POLICY",
    "PROVENANCE_CONFIG",
    "PROVENANCE_SOURCE",
    "Caller",
    "ConsortiumView",
    "esc",
    "openapi_paths",
    "setup_web",
]

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PROBLEM_BASE = "https://coldtrail.dev/problems/"
_MAX_HEIGHT = 2**53 - 1
STEP_LABELS = {
    "packing": "Packed",
    "loading": "Loaded",
    "unloading": "Unloaded",
    "receiving": "Received",
    "shipping": "Shipped",
    "storing": "Stored",
    "inspecting": "Inspected",
}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the public (no org), or an organisation's token in a role."""

    org: str | None = None
    role: str | None = None
    token_id: str | None = None

    def may_see_raw(self, gateway: GatewayInfo | None) -> bool:
        if self.role == "auditor":
            return True
        return self.org is not None and gateway is not None and gateway.org == self.org


CallerResolver = Callable[[web.Request], Awaitable[Caller]]


async def _public_only(request: web.Request) -> Caller:
    if request.headers.get("Authorization"):
        raise AnchorError("unauthenticated", "this anchor has no token store configured")
    return Caller()


@dataclass(frozen=True, slots=True)
class ConsortiumView:
    """How the explorer reads the consortium on a member node (anchor.consortium.status).

    ``health`` is this node's own state from memory and runs on the event loop; ``status``
    (``this_member``, ``limit``) -> the ``GET /v1/consortium`` document and ``checkpoint``
    (``height``) -> one checkpoint's cosigners and finality read the ledger, so they run
    in the public pool. Absent from the app on a node that is no consortium member.
    """

    health: Callable[[], dict[str, Any]]
    status: Callable[[dict[str, Any], int], dict[str, Any]]
    checkpoint: Callable[[int], dict[str, Any] | None]


PROVENANCE_SOURCE = web.AppKey("provenance_source", ProvenanceSource)
PROVENANCE_CONFIG = web.AppKey("provenance_config", ProvenanceConfig)
# Set by the app when it has a ledger and a log key: overrides of dispositions.
DISPOSITION_STORE = web.AppKey("disposition_store", LedgerStore)
DISPOSITION_ATTEST: web.AppKey[Attest] = web.AppKey("disposition_attest")
DISPOSITION_ANNOUNCE: web.AppKey[Announce] = web.AppKey("disposition_announce")
CALLER_RESOLVER: web.AppKey[CallerResolver] = web.AppKey("provenance_caller")
CONSORTIUM_VIEW = web.AppKey("consortium_view", ConsortiumView)


# --- HTML helpers -------------------------------------------------------------------


def esc(value: object) -> str:
    """Escape anything for HTML text and double-quoted attributes."""
    return html.escape(str(value), quote=True)


# Records may carry any wall clock in [0, 2**53) ms (proofs.records), which reaches far
# beyond the year 9999 that datetime can show; such times are named, not converted.
_MAX_DATETIME_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return "now"
    if not 0 <= ms <= _MAX_DATETIME_MS:
        return "after 9999" if ms > 0 else "before 1970"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso_time(ms: int) -> str:
    clamped = min(max(ms, 0), _MAX_DATETIME_MS)
    return (
        datetime.fromtimestamp(clamped / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def fmt_num(x: float | None, digits: int = 2) -> str:
    """Shortest faithful text of a reading value (the browser compares numbers, not text)."""
    if x is None:
        return "–"
    if float(x).is_integer():
        return str(int(x))
    return repr(round(float(x), digits))


def fmt_duration(ms: int) -> str:
    minutes = round(ms / 60_000)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def unit_label(unit: str) -> str:
    return {"CEL": "°C", "P1": "%", "FAH": "°F", "KEL": "K"}.get(unit, unit)


def describe_profile(p: Profile) -> str:
    """A profile in words: "controlled cold, 2 to 8 °C, MKT at most 8 °C over any 24 h"."""
    if p.low_c is not None and p.high_c is not None:
        rng = f"{fmt_num(p.low_c)} to {fmt_num(p.high_c)} °C"
    elif p.high_c is not None:
        rng = f"at most {fmt_num(p.high_c)} °C"
    else:
        rng = f"at least {fmt_num(p.low_c)} °C"
    parts = [f"{p.kind.replace('-', ' ')}, {rng}"]
    if p.allowed_low_c is not None or p.allowed_high_c is not None:
        lo = fmt_num(p.allowed_low_c) if p.allowed_low_c is not None else "-"
        hi = fmt_num(p.allowed_high_c) if p.allowed_high_c is not None else "-"
        parts.append(f"excursions allowed between {lo} and {hi} °C")
    if p.mkt_limit_c is not None:
        over = f"any {fmt_duration(p.mkt_window_ms)}" if p.mkt_window_ms else "the whole custody"
        parts.append(f"mean kinetic temperature at most {fmt_num(p.mkt_limit_c)} °C over {over}")
    return ", ".join(parts)


def verdict_sentence(answer: ProvenanceAnswer) -> str:
    """The verdict in one plain sentence, with the figures a person asks for first."""
    v = answer.verdict
    lot = v.lot
    found = answer.excursions()
    out_ms = lot.time_out_of_range_ms
    if v.status == "pass" and not found:
        return f"Every reading stayed within {describe_profile(v.profile).split(', ')[1]}."
    if v.status == "pass":
        return (
            f"{len(found)} excursion(s), {fmt_duration(out_ms)} out of range in all, each within"
            " what the profile allows."
        )
    if v.status == "fail":
        failing = [r for r in lot.reasons if r.status == "fail"]
        head = f"Out of range for {fmt_duration(out_ms)}" if out_ms else "Failed"
        return f"{head}: {failing[0].message}" + (
            f" (and {len(failing) - 1} more reason(s))" if len(failing) > 1 else ""
        )
    doubts = [r for r in lot.reasons if r.status == "indeterminate"]
    return (
        "The readings cannot settle it: "
        + doubts[0].message
        + (f" (and {len(doubts) - 1} more reason(s))" if len(doubts) > 1 else "")
    )


_DISPOSITION_WORDS = {
    "release": "Released for sale",
    "quarantine": "Held in quarantine",
    "reject": "Rejected",
    "needs-review": "Waiting for a person's review",
}


def _disposition_html(answer: ProvenanceAnswer) -> str:
    """The lot's disposition, who or what decided it and why; an override says so."""
    if not answer.dispositions:
        return ""
    d = answer.dispositions[-1]
    if d.cause == "override":
        why = f"overridden by operator {d.by} on {fmt_time(d.at)}: {d.reason}"
    else:
        why = f"by the rule {d.rule}, {fmt_time(d.at)}"
    held = f"; responsible custodian: {d.custodian}" if d.custodian else ""
    return (
        f'<p class="disposition disposition-{esc(d.disposition)}">'
        f'<strong data-disposition="{esc(d.disposition)}">'
        f"{esc(_DISPOSITION_WORDS.get(d.disposition, d.disposition))}</strong>"
        f" ({esc(why)}{esc(held)})</p>"
    )


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


_DOCUMENT_STATUS = {"valid": "valid", "expired": "expired", "not-yet-valid": "not yet valid"}


def _documents_html(answer: ProvenanceAnswer) -> str:
    """The documents behind the lot (proofs.documents), their status now, and a file
    check the browser runs against the bundle's signed entries (static/documents.js)."""
    if not answer.documents:
        return (
            '<section class="documents"><h2>Documents behind this lot</h2><p>No calibration'
            " certificate or other document is registered for this lot, its loggers or the"
            " places that held it.</p></section>"
        )
    items = []
    for d in answer.documents:
        e = d.entry
        status = e.status_at(answer.now_ms)
        until = f"to {_day(e.valid_until)}" if e.valid_until else "with no end"
        items.append(
            f'<li class="document" data-digest="{esc(e.digest)}">'
            f"{esc(e.label.capitalize())} <q>{esc(e.name)}</q> for {esc(e.subject_kind)}"
            f" <code>{esc(e.subject)}</code>, issued by {esc(e.issuer)}, valid from"
            f" {esc(_day(e.valid_from))} {esc(until)}:"
            f' <strong class="doc-{esc(status)}">{esc(_DOCUMENT_STATUS[status])}</strong></li>'
        )
    return (
        '<section class="documents"><h2>Documents behind this lot</h2>'
        f'<ul id="documents">{"".join(items)}</ul>'
        '<p><label for="doc-file">Hold a copy of one? Check it against the ledger'
        ' (it stays on your device):</label> <input type="file" id="doc-file"></p>'
        '<p id="doc-result" role="status" aria-live="polite"></p></section>'
    )


def _claim_form_html(subject: Subject) -> str:
    """A plain HTML form (no script needed) filing a claim about the lot
    (anchor.http.claims); the browser is sent on to the claim's own page."""
    if subject.kind != "lot" or not subject.gtin or not subject.lot:
        return ""
    action = f"/v1/lots/{urllib.parse.quote(subject.gtin)}/{urllib.parse.quote(subject.lot)}/claims"
    return (
        '<section class="claim-form"><h2>Something wrong with your pack?</h2>'
        "<p>Tell us what happened. Your claim goes to whoever held this lot when it went out"
        " of its profile (or else to its owner), with the lot's record as it stands now;"
        " how to reach you is seen only by them.</p>"
        f'<form id="claim-form" method="post" action="{esc(action)}"'
        ' enctype="multipart/form-data">'
        '<p><label for="claim-what">What happened</label><br>'
        '<textarea id="claim-what" name="text" rows="4" maxlength="4000" required>'
        "</textarea></p>"
        '<p><label for="claim-photo">A photo (optional: JPEG or PNG, up to 5 MiB)</label><br>'
        '<input type="file" id="claim-photo" name="photo" accept="image/jpeg,image/png"></p>'
        '<p><label for="claim-contact">How to reach you (optional)</label><br>'
        '<input type="text" id="claim-contact" name="contact" maxlength="200"'
        ' autocomplete="email"></p>'
        '<p><button type="submit">Send the claim</button></p></form></section>'
    )


def _reason_items(reasons: Sequence[Reason]) -> str:
    """The verdict's reasons, one line each; loggers without calibration in one line."""
    lines: list[str] = []
    uncal = {
        code: [r.sensor or "" for r in reasons if r.code == code]
        for code in ("calibration-missing", "calibration-expired")
    }
    for r in reasons:
        if r.code in uncal:
            continue
        lines.append(f"<li>{esc(r.message)}</li>")
    if uncal["calibration-missing"]:
        names = ", ".join(uncal["calibration-missing"])
        lines.append(
            f'<li data-reason="calibration-missing">No calibration certificate is on record for'
            f" {esc(len(uncal['calibration-missing']))} logger(s): {esc(names)}</li>"
        )
    for r in reasons:
        if r.code == "calibration-expired":
            lines.append(f'<li data-reason="calibration-expired">{esc(r.message)}</li>')
    return "".join(lines)


def _verdict_figures(answer: ProvenanceAnswer, unit: str) -> str:
    overall = answer.overall.get(answer.checked.q)
    lot = answer.verdict.lot
    rows = []
    if lot.mkt_c is not None:
        rows.append(
            '<div><dt>Mean kinetic temperature</dt><dd data-claim="mkt">'
            f"{esc(fmt_num(round(lot.mkt_c, 2)))} °C</dd></div>"
        )
    rows.append(
        '<div><dt>Time out of range</dt><dd data-claim="time-out">'
        f"{esc(fmt_duration(lot.time_out_of_range_ms))}</dd></div>"
    )
    if overall is not None and overall.count:
        rows += [
            f'<div><dt>Lowest</dt><dd><span data-claim="min" data-q="{esc(overall.q)}">'
            f"{esc(fmt_num(overall.min.val if overall.min else None))}</span>"
            f" {esc(unit)}</dd></div>",
            f'<div><dt>Highest</dt><dd><span data-claim="max" data-q="{esc(overall.q)}">'
            f"{esc(fmt_num(overall.max.val if overall.max else None))}</span>"
            f" {esc(unit)}</dd></div>",
            f"<div><dt>Average</dt><dd>{esc(fmt_num(overall.mean))} {esc(unit)}</dd></div>",
            f"<div><dt>Readings</dt><dd>{esc(overall.count)}</dd></div>",
        ]
    return f'<dl class="stats">{"".join(rows)}</dl>'


def _page(
    title: str, body: str, *, scripts: Sequence[str] = (), nav: Sequence[tuple[str, str]] = ()
) -> str:
    script_tags = "".join(f'<script type="module" src="{esc(src)}"></script>' for src in scripts)
    links = "".join(f'<a href="{esc(href)}">{esc(label)}</a>' for href, label in nav)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        '<link rel="stylesheet" href="/static/coldtrail.css">'
        f"{script_tags}</head><body>"
        '<header class="top"><a href="/explorer" class="brand">coldtrail</a>'
        + (f'<nav class="top-nav">{links}</nav>' if links else "")
        + f"</header><main>{body}</main></body></html>\n"
    )


def explorer_nav(*, consortium: bool) -> list[tuple[str, str]]:
    """The explorer's header links; the consortium page only on a member node."""
    nav = [("/explorer", "Blocks")]
    if consortium:
        nav.append(("/explorer/consortium", "Consortium"))
    return nav


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Vary": "Accept",
        },
    )


_STATUS_TEXT = {400: "Bad parameter", 401: "Unauthenticated", 403: "Forbidden", 404: "Not found"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problems(handler: Handler) -> Handler:
    """Render :class:`AnchorError` for these handlers even on an app without the problem
    middleware (tests mount them alone); the one renderer is anchor.http.problems."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Overloaded:
            raise  # the public gate counts it and answers 429 with its Retry-After
        except AnchorError as e:
            return problem_response(e.code, e.detail, request.path, retry_after_s=e.retry_after_s)

    return wrapped


def wants_html(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt == "json":
        return False
    if fmt == "html":
        return True
    if fmt is not None:
        raise AnchorError("bad-parameter", "format is json or html")
    accept = request.headers.get("Accept", "")
    return "text/html" in accept or "application/xhtml+xml" in accept


# --- parameters -----------------------------------------------------------------------


def _time_param(text: str, name: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 time with a zone."""
    if text.isascii() and text.isdigit() and len(text) <= 16:
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as e:
        raise AnchorError(
            "bad-parameter", f"'{name}' is milliseconds since 1970 or an ISO 8601 time"
        ) from e
    if parsed.tzinfo is None:
        raise AnchorError("bad-parameter", f"'{name}' needs a time zone (e.g. Z)")
    return int(parsed.timestamp() * 1000)


def _id_param(text: str, name: str) -> str:
    if not is_identifier(text) or ".." in text.split("/"):
        raise AnchorError(
            "bad-parameter", f"'{name}' is 1-128 characters of letters, digits and ._:/@-"
        )
    return text


_SELECTORS = {"gtin", "lot", "serial", "sscc", "gateway", "sensor"}
_PARAMS = _SELECTORS | {"from", "to", "limit", "cursor", "format"}


@dataclass(frozen=True, slots=True)
class Selector:
    subject: Subject | None
    readings: ReadingQuery | None


def parse_selector(query: Any) -> Selector:
    unknown = set(query) - _PARAMS
    if unknown:
        raise AnchorError("bad-parameter", f"unknown parameter(s): {', '.join(sorted(unknown))}")
    for name in _PARAMS:
        if len(query.getall(name, [])) > 1:
            raise AnchorError("bad-parameter", f"'{name}' is given more than once")
    given = {k for k in _SELECTORS if k in query}
    t_from = _time_param(query["from"], "from") if "from" in query else 0
    t_to = _time_param(query["to"], "to") if "to" in query else 2**53 - 1
    if t_to <= t_from:
        raise AnchorError("bad-parameter", "'to' must be after 'from'")
    if given == {"gtin", "lot"}:
        return Selector(Subject.for_lot(query["gtin"], query["lot"]), None)
    if given == {"gtin", "serial"}:
        return Selector(Subject.for_serial(query["gtin"], query["serial"]), None)
    if given == {"sscc"}:
        return Selector(Subject.for_sscc(query["sscc"]), None)
    if given == {"gateway"}:
        gw = _id_param(query["gateway"], "gateway")
        return Selector(None, ReadingQuery(gw=gw, t_from=t_from, t_to=t_to))
    if given == {"sensor"}:
        src = _id_param(query["sensor"], "sensor")
        return Selector(None, ReadingQuery(src=src, t_from=t_from, t_to=t_to))
    if given == {"gateway", "sensor"}:
        gw = _id_param(query["gateway"], "gateway")
        src = _id_param(query["sensor"], "sensor")
        return Selector(None, ReadingQuery(gw=gw, src=src, t_from=t_from, t_to=t_to))
    raise AnchorError(
        "bad-parameter",
        "give gtin+lot, gtin+serial, sscc, gateway or sensor (with optional from/to)",
    )


def link_path(subject: Subject) -> str:
    """The Digital Link path with each value percent-encoded (a lot may contain '/')."""

    def q(value: str | None) -> str:
        return urllib.parse.quote(value or "", safe="")

    if subject.kind == "lot":
        return f"/01/{q(subject.gtin)}/10/{q(subject.lot)}"
    if subject.kind == "serial":
        return f"/01/{q(subject.gtin)}/21/{q(subject.serial)}"
    return f"/00/{q(subject.sscc)}"


def _encode_cursor(p: ReadingPoint) -> str:
    raw = json.dumps([p.t, p.gw, p.seq], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[int, str, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        t, gw, seq = json.loads(raw)
    except (ValueError, binascii.Error, TypeError) as e:
        raise AnchorError("bad-cursor", "'cursor' is not a cursor this API returned") from e
    if not (isinstance(t, int) and isinstance(gw, str) and isinstance(seq, int)):
        raise AnchorError("bad-cursor", "'cursor' is not a cursor this API returned")
    return t, gw, seq


def _encode_lot_cursor(interval: int, p: ReadingPoint) -> str:
    raw = json.dumps([interval, p.t, p.gw, p.seq], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_lot_cursor(text: str) -> tuple[int, tuple[int, str, int]]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        i, t, gw, seq = json.loads(raw)
    except (ValueError, binascii.Error, TypeError) as e:
        raise AnchorError("bad-cursor", "'cursor' is not a cursor this API returned") from e
    if not (isinstance(i, int) and i >= 0 and isinstance(t, int) and isinstance(gw, str)):
        raise AnchorError("bad-cursor", "'cursor' is not a cursor this API returned")
    if not isinstance(seq, int):
        raise AnchorError("bad-cursor", "'cursor' is not a cursor this API returned")
    return i, (t, gw, seq)


def _point_json(p: ReadingPoint) -> dict[str, Any]:
    return {
        "gw": p.gw,
        "seq": p.seq,
        "src": p.src,
        "asset": p.asset,
        "t": p.t,
        "q": p.q,
        "val": p.val,
        "unit": p.unit,
    }


# --- the web service ---------------------------------------------------------------------

_CALLER = web.RequestKey("coldtrail_caller", Caller)  # resolved once per request
# Rough bytes of one reading point held in an answer (a slotted dataclass and its strings).
_POINT_BYTES = 240


def _answer_bytes(answer: ProvenanceAnswer) -> int:
    """What an answer costs the cache: dominated by its reading points."""
    points = sum(
        len(ia.evidence.points) + 4 * len(ia.evidence.summaries) for ia in answer.intervals
    )
    return 4096 + points * _POINT_BYTES


@dataclass(frozen=True, slots=True)
class _Cached:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]

    def response(self) -> web.Response:
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-length"}
        return web.Response(status=self.status, body=self.body, headers=headers)


class _Web:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        gate = app[PUBLIC_GATE]
        limits = gate.limits
        # Both keyed by (request, ledger version): the log only grows, so what was computed
        # at one version is right until it moves; no time-to-live is needed.
        self._answers: BoundedCache[tuple[Subject, Hashable], ProvenanceAnswer] = BoundedCache(
            limits.cache_max_entries, limits.cache_max_bytes
        )
        self._responses: BoundedCache[tuple[Hashable, ...], _Cached] = BoundedCache(
            limits.cache_max_entries, limits.cache_max_bytes
        )
        self._computing: dict[tuple[Subject, Hashable], asyncio.Future[ProvenanceAnswer]] = {}

    @property
    def source(self) -> ProvenanceSource:
        return self.app[PROVENANCE_SOURCE]

    @property
    def config(self) -> ProvenanceConfig:
        return self.app[PROVENANCE_CONFIG]

    @property
    def gate(self) -> PublicGate:
        return self.app[PUBLIC_GATE]

    @property
    def consortium(self) -> ConsortiumView | None:
        return self.app.get(CONSORTIUM_VIEW)

    def nav(self) -> list[tuple[str, str]]:
        return explorer_nav(consortium=self.consortium is not None)

    async def caller(self, request: web.Request) -> Caller:
        known = request.get(_CALLER)
        if known is not None:
            return known
        resolve: CallerResolver = self.app[CALLER_RESOLVER]
        caller = await resolve(request)
        request[_CALLER] = caller
        return caller

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        # The public pool, never the default executor ingest and /healthz use.
        return await self.gate.run(fn, *args)

    async def _version(self) -> Hashable:
        """The ledger version answers are cached under: from memory when the app keeps
        it (log size, checkpoints signed), else the latest checkpoint (test twins)."""
        if self.gate.version is not None:
            return self.gate.version()
        latest = await self._run(self.source.latest_blocks, 1)
        return (latest[0].tree_size, latest[0].height) if latest else (-1, 0)

    def cached(self, kind: str, handler: Handler) -> Handler:
        """Serve ``handler``'s 200 answers from the cache while the ledger is unchanged.

        The key is everything the answer depends on: path, query, HTML or JSON, who asks.
        """
        metrics = self.gate.metrics

        async def wrapped(request: web.Request) -> web.StreamResponse:
            version = await self._version()
            caller = await self.caller(request)
            key = (
                request.path,
                tuple(sorted(request.query.items())),
                wants_html(request),
                caller.org,
                caller.role,
                version,
            )
            hit = self._responses.get(key)
            if hit is not None:
                metrics.answer_cache_hits.labels(kind).inc()
                return hit.response()
            metrics.answer_cache_misses.labels(kind).inc()
            resp = await handler(request)
            if isinstance(resp, web.Response) and resp.status == 200 and resp.body is not None:
                body = bytes(resp.body) if isinstance(resp.body, bytes | bytearray) else None
                if body is not None:
                    entry = _Cached(resp.status, resp.content_type, body, dict(resp.headers))
                    self._responses.put(key, entry, len(body) + 512)
            return resp

        return wrapped

    # -- Digital Link
    async def lot_link(self, request: web.Request) -> web.StreamResponse:
        subject = Subject.for_lot(request.match_info["gtin"], request.match_info["lot"])
        return await self._digital_link(request, subject)

    async def serial_link(self, request: web.Request) -> web.StreamResponse:
        subject = Subject.for_serial(request.match_info["gtin"], request.match_info["serial"])
        return await self._digital_link(request, subject)

    async def sscc_link(self, request: web.Request) -> web.StreamResponse:
        return await self._digital_link(request, Subject.for_sscc(request.match_info["sscc"]))

    async def bad_link(self, request: web.Request) -> web.StreamResponse:
        raise AnchorError(
            "bad-digital-link",
            "a GS1 Digital Link here is /01/{gtin}/10/{lot}, /01/{gtin}/21/{serial} or /00/{sscc}",
        )

    async def _digital_link(self, request: web.Request, subject: Subject) -> web.StreamResponse:
        unknown = set(request.query) - {"format", "limit", "cursor"}
        if unknown:
            raise AnchorError(
                "bad-parameter", f"unknown parameter(s): {', '.join(sorted(unknown))}"
            )
        as_html = wants_html(request)
        caller = await self.caller(request)
        try:
            answer = await self._answer(subject)
        except AnchorError as e:
            if as_html and e.code == "not-found":  # a person scanned a code we know nothing of
                return _html(render_unknown(subject), status=404)
            raise
        if as_html:
            return _html(await self._run(render_consumer_page, self.source, self.config, answer))
        return json_response(await self._run(self._answer_json, answer, caller, request.query))

    async def _answer(self, subject: Subject) -> ProvenanceAnswer:
        key = (subject, await self._version())
        metrics = self.gate.metrics
        cached = self._answers.get(key)
        if cached is not None:
            metrics.answer_cache_hits.labels("answer").inc()
            answer = cached
        elif key in self._computing:
            # Single flight: twenty clients asking for the same lot at once share one
            # computation instead of queueing twenty on two cores.
            metrics.answer_cache_hits.labels("answer").inc()
            answer = await asyncio.shield(self._computing[key])
        else:
            metrics.answer_cache_misses.labels("answer").inc()
            future: asyncio.Future[ProvenanceAnswer] = asyncio.get_running_loop().create_future()
            self._computing[key] = future
            try:
                now = int(time.time() * 1000)
                answer = await self._run(answer_for_subject, self.source, subject, self.config, now)
                future.set_result(answer)
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as e:
                future.set_exception(e)
                future.exception()  # marked retrieved: the waiters re-raise it
                raise
            finally:
                del self._computing[key]
            self._answers.put(key, answer, _answer_bytes(answer))
        if not answer.intervals and not answer.loose_scans:
            raise AnchorError("not-found", f"no scan on this ledger names {subject.digital_link()}")
        return answer

    def _answer_json(self, answer: ProvenanceAnswer, caller: Caller, query: Any) -> dict[str, Any]:
        doc = answer.to_json()
        assert answer.subject is not None
        params = urllib.parse.urlencode(answer.subject.query_params())
        doc["links"] = {
            "page": link_path(answer.subject),
            "bundle": f"/v1/provenance/bundle?{params}",
        }
        limit = int_param(
            query.get("limit"),
            "limit",
            default=self.config.raw_page_default,
            lo=1,
            hi=self.config.raw_page_max,
        )
        gws = {gw for ia in answer.intervals for gw in ia.counts}
        visible = {gw for gw in gws if caller.may_see_raw(self.source.gateway(gw))}
        doc["access"] = "raw" if visible else "aggregates"
        if visible:
            cursor = _decode_lot_cursor(query["cursor"]) if "cursor" in query else (0, None)
            page, more = self._lot_readings(answer, visible, cursor, limit)
            doc["readings"] = {
                "items": [_point_json(p) for _, p in page],
                "total": sum(
                    n for ia in answer.intervals for gw, n in ia.counts.items() if gw in visible
                ),
                "next": _encode_lot_cursor(*page[-1]) if more else None,
            }
        return doc

    def _lot_readings(
        self,
        answer: ProvenanceAnswer,
        visible: set[str],
        cursor: tuple[int, tuple[int, str, int] | None],
        limit: int,
    ) -> tuple[list[tuple[int, ReadingPoint]], bool]:
        """A page of the readings of the lot's custody intervals made by ``visible``
        gateways, from the ledger (an answer keeps only a few readings per hour)."""
        first, after = cursor
        found: list[tuple[int, ReadingPoint]] = []
        for i in range(first, len(answer.intervals)):
            ia = answer.intervals[i]
            while len(found) <= limit and visible & ia.counts.keys():
                want = limit + 1 - len(found)
                rq = ReadingQuery(
                    asset=ia.custody.holder, t_from=ia.custody.start, t_to=ia.end, after=after
                )
                rows = self.source.readings(rq, want)
                found.extend((i, p) for p in rows if p.gw in visible)
                if len(rows) < want:
                    break
                after = (rows[-1].t, rows[-1].gw, rows[-1].seq)
            after = None
            if len(found) > limit:
                return found[:limit], True
        return found, False

    # -- API
    async def provenance(self, request: web.Request) -> web.StreamResponse:
        selector = parse_selector(request.query)
        caller = await self.caller(request)
        if selector.subject is not None:
            if "from" in request.query or "to" in request.query:
                raise AnchorError("bad-parameter", "from/to apply to gateway and sensor queries")
            answer = await self._answer(selector.subject)
            return json_response(await self._run(self._answer_json, answer, caller, request.query))
        assert selector.readings is not None
        return json_response(
            await self._run(self._readings_json, selector.readings, caller, request.query)
        )

    def _readings_json(self, rq: ReadingQuery, caller: Caller, query: Any) -> dict[str, Any]:
        checked = self.config.default_range
        stats, anomalies, truncated = answer_for_readings(self.source, rq, self.config, checked)
        doc: dict[str, Any] = {
            "query": {"gateway": rq.gw, "sensor": rq.src, "from": rq.t_from, "to": rq.t_to},
            "range": checked.to_json(),
            "stats": [s.to_json() for s in stats.values()],
            "clock_anomalies": [a.to_json() for a in anomalies[: self.config.max_anomalies_listed]],
            "clock_anomaly_count": len(anomalies),
            "truncated": truncated,
        }
        gateway = self.source.gateway(rq.gw) if rq.gw else None
        entitled = caller.role == "auditor" or (rq.gw is not None and caller.may_see_raw(gateway))
        doc["access"] = "raw" if entitled else "aggregates"
        if entitled:
            limit = int_param(
                query.get("limit"),
                "limit",
                default=self.config.raw_page_default,
                lo=1,
                hi=self.config.raw_page_max,
            )
            after = _decode_cursor(query["cursor"]) if "cursor" in query else None
            page_query = ReadingQuery(
                gw=rq.gw, src=rq.src, t_from=rq.t_from, t_to=rq.t_to, after=after
            )
            page = self.source.readings(page_query, limit + 1)
            if caller.role != "auditor":
                page = [p for p in page if caller.may_see_raw(self.source.gateway(p.gw))]
            doc["readings"] = {
                "items": [_point_json(p) for p in page[:limit]],
                "next": _encode_cursor(page[limit - 1]) if len(page) > limit else None,
            }
        return doc

    async def override_disposition(self, request: web.Request) -> web.StreamResponse:
        """An operator's override of a lot's disposition, with a reason: signed by the log
        key, logged, announced, and shown in the answer and the page
        (anchor.provenance.dispositions)."""
        caller = await self.caller(request)
        if caller.role != "operator" or caller.token_id is None:
            raise AnchorError("forbidden", "only an operator token may override a disposition")
        subject = Subject.for_lot(request.match_info["gtin"], request.match_info["lot"])
        try:
            body = await request.json()
        except ValueError as e:
            raise AnchorError("malformed", "the body is a JSON object") from e
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("disposition", "reason")
        ):
            raise AnchorError("malformed", 'give {"disposition": ..., "reason": ...}')
        store = self.app[DISPOSITION_STORE]
        history = await asyncio.to_thread(store.dispositions, subject.gtin or "", subject.lot or "")
        if not history:
            raise AnchorError("not-found", "this lot has no disposition yet to override")
        d = await asyncio.to_thread(
            override,
            store,
            subject.gtin or "",
            subject.lot or "",
            body["disposition"],
            body["reason"],
            f"{caller.org}:{caller.token_id}",
            int(time.time() * 1000),
            self.app[DISPOSITION_ATTEST],
            self.app.get(DISPOSITION_ANNOUNCE),
        )
        return json_response(disposition_json(d), status=201)

    async def bundle(self, request: web.Request) -> web.StreamResponse:
        selector = parse_selector(request.query)
        caller = await self.caller(request)
        if selector.subject is not None:
            answer = await self._answer(selector.subject)
            keys = answer.proof_keys
            subject_doc = lot_bundle_subject(answer, self.source.log_trust().attest)
            name = "-".join(selector.subject.query_params().values())
        else:
            assert selector.readings is not None
            rq = selector.readings
            # A window's bundle proves raw readings: only for those who may see them.
            gateway = await self._run(self.source.gateway, rq.gw) if rq.gw else None
            if not (caller.role == "auditor" or (gateway and caller.may_see_raw(gateway))):
                raise AnchorError(
                    "forbidden",
                    "bundles of a gateway's readings are for its organisation and auditors;"
                    " the public gets bundles by lot, serial or SSCC",
                )
            # The first readings of the window: page through it with from/to.
            points = await self._run(
                self.source.readings, rq, self.config.proof_sample_per_interval * 4
            )
            keys = sorted({(p.gw, p.seq) for p in points})
            subject_doc = {"gateway": selector.readings.gw, "sensor": selector.readings.src}
            name = selector.readings.gw or selector.readings.src or "readings"
        result = await self._run(assemble_bundle, self.source, keys, subject_doc)
        if result.bundle is None:
            raise AnchorError(
                "no-proof-yet",
                "none of these records is in a signed checkpoint yet; try again shortly",
            )
        filename = "coldtrail-bundle-" + re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] + ".json"
        return json_response(
            result.bundle,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "X-Coldtrail-Unproven": str(result.unproven),
            },
        )

    # -- explorer
    async def explorer(self, request: web.Request) -> web.StreamResponse:
        before = request.query.get("before")
        before_height = (
            int_param(before, "before", default=0, lo=0, hi=_MAX_HEIGHT) if before else None
        )
        blocks = await self._run(self.source.latest_blocks, 21, before_height)
        member = self.consortium is not None
        return _html(render_blocks(blocks[:20], more=len(blocks) > 20, consortium=member))

    async def explorer_block(self, request: web.Request) -> web.StreamResponse:
        height = int_param(request.match_info["height"], "height", default=0, lo=0, hi=_MAX_HEIGHT)
        offset = int_param(request.query.get("offset"), "offset", default=0, lo=0, hi=_MAX_HEIGHT)
        block = await self._run(self.source.block, height)
        if block is None:
            raise AnchorError("not-found", f"no block at height {height}")
        first = block.tree_size - block.entries
        start = first + offset
        end = min(block.tree_size, start + 100)
        leaves = await self._run(self.source.leaves, start, end)
        view = self.consortium
        cosigning = None if view is None else await self._run(view.checkpoint, height)
        more = end < block.tree_size
        page = render_block(block, leaves, offset, more=more, nav=self.nav(), cosigning=cosigning)
        return _html(page)

    async def explorer_gateway(self, request: web.Request) -> web.StreamResponse:
        gw = _id_param(request.match_info["gw"], "gateway")
        offset = int_param(request.query.get("offset"), "offset", default=0, lo=0, hi=_MAX_HEIGHT)
        gateway = await self._run(self.source.gateway, gw)
        if gateway is None:
            raise AnchorError("not-found", f"no gateway {gw!r}")
        batches = await self._run(self.source.gateway_batches, gw, offset, 51)
        return _html(
            render_gateway(gateway, batches[:50], offset, more=len(batches) > 50, nav=self.nav())
        )

    async def explorer_org(self, request: web.Request) -> web.StreamResponse:
        org_id = _id_param(request.match_info["org"], "organisation")
        org = await self._run(self.source.org, org_id)
        if org is None:
            raise AnchorError("not-found", f"no organisation {org_id!r}")
        gateways = await self._run(self.source.org_gateways, org_id, 0, 500)
        card = await self._scorecard(org_id, request.query)
        return _html(render_org(org.id, org.name, gateways, nav=self.nav(), scorecard=card))

    # -- scorecards
    async def _scorecard(self, org_id: str, query: Any) -> dict[str, Any]:
        unknown = set(query) - {"from", "to"}
        if unknown:
            raise AnchorError(
                "bad-parameter", f"unknown parameter(s): {', '.join(sorted(unknown))}"
            )
        now = int(time.time() * 1000)
        t_from, t_to = default_period(now, ScorecardLimits().default_months)
        if "from" in query:
            t_from = _time_param(query["from"], "from")
        if "to" in query:
            t_to = _time_param(query["to"], "to")
        doc: dict[str, Any] = await self._run(
            org_scorecard, self.source, org_id, self.config, now, (t_from, t_to)
        )
        return doc

    async def scorecard(self, request: web.Request) -> web.StreamResponse:
        org_id = _id_param(request.match_info["org"], "organisation")
        doc = await self._scorecard(org_id, request.query)
        return web.Response(
            body=canonical_json(doc),
            content_type="application/json",
            headers={"Vary": "Accept"},
        )

    async def explorer_consortium(self, request: web.Request) -> web.StreamResponse:
        view = self.consortium
        if view is None:
            raise AnchorError("not-found", "this node is a consortium of one; it has no members")
        limit = int_param(request.query.get("limit"), "limit", default=20, lo=1, hi=100)
        # Not cached: how long ago each member cosigned, and this node's stream and
        # review state, move without the ledger moving.
        doc = await self._run(view.status, view.health(), limit)
        return _html(render_consortium(doc, int(time.time() * 1000), nav=self.nav()))


async def _bind_ledger(app: web.Application) -> AsyncIterator[None]:
    """Adapt the app factory's ledger store, signer and token auth once they are open.

    Runs after the factory's own cleanup contexts (``setup_web`` is called after
    they are registered); imported here because ``anchor.http.app`` imports this module.
    """
    from anchor.auth import authenticate
    from anchor.consortium.status import checkpoint_status, consortium_status
    from anchor.http.keys import MEMBER, SIGNER, STORE
    from anchor.provenance.source import LogTrust
    from anchor.storage import provenance_source

    store = app[STORE]
    signer = app[SIGNER]
    member = app.get(MEMBER)
    if member is not None:

        def status(this_member: dict[str, Any], limit: int) -> dict[str, Any]:
            return consortium_status(store, signer, this_member, limit=limit)

        app[CONSORTIUM_VIEW] = ConsortiumView(
            member.health, status, functools.partial(checkpoint_status, store, signer)
        )

    def trust() -> LogTrust:
        # Read each time: a consortium's members and quorum change with its policy.
        changes = () if signer.consortium is None else signer.consortium.changes()
        return LogTrust(
            signer.log_vkey,
            tuple(signer.member_vkeys),
            signer.bundle_quorum,
            signer.log_key.sign,
            tuple(c.to_dict() for c in changes),
        )

    source = await asyncio.to_thread(provenance_source, store, trust)
    app[PROVENANCE_SOURCE] = source

    gate = app[PUBLIC_GATE]

    async def token_caller(request: web.Request) -> Caller:
        header = request.headers.get("Authorization")
        if not header:
            return Caller()
        # An invalid token is refused (AnchorError -> 401 problem), never downgraded to public.
        principal = await gate.run(authenticate, store, header, int(time.time() * 1000))
        gate.note_verified_token(principal.token_id)  # limited per token from now on
        return Caller(principal.org_id, principal.role, principal.token_id)

    app[CALLER_RESOLVER] = token_caller
    yield
    await asyncio.to_thread(source.close)


def _default_gate(app: web.Application) -> Callable[[web.Application], AsyncIterator[None]]:
    gate = PublicGate(PublicLimits(), AnchorMetrics())
    app[PUBLIC_GATE] = gate
    app.middlewares.append(gate.middleware())

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(gate.close)

    return ctx


def _extend_openapi(app: web.Application) -> None:
    """Add these routes and problem codes to the document the app serves at /openapi.json."""
    from anchor.http.keys import OPENAPI  # anchor.app imports this module: import at call time

    doc = app.get(OPENAPI)
    if doc is None:
        return
    doc["paths"].update(openapi_paths())


def setup_web(
    app: web.Application,
    source: ProvenanceSource | None = None,
    config: ProvenanceConfig | None = None,
    caller: CallerResolver | None = None,
) -> None:
    """Register the provenance routes, the explorer and the static files on ``app``.

    Tests pass a ``source`` (e.g. the in-memory twin) and a ``caller`` resolver.
    The app factory passes neither: the ledger store and token auth it opens at
    start-up are then adapted by a cleanup context added here.
    """
    app[PROVENANCE_CONFIG] = config or app.get(PROVENANCE_CONFIG) or ProvenanceConfig()
    _extend_openapi(app)
    if PUBLIC_GATE not in app:
        # Stand-alone (tests): a gate with default limits; the app factory brings its own.
        app.cleanup_ctx.append(_default_gate(app))
    if source is not None:
        app[PROVENANCE_SOURCE] = source
        app[CALLER_RESOLVER] = caller or _public_only
    else:
        app.cleanup_ctx.append(_bind_ledger)
    w = _Web(app)

    def wrap(handler: Handler, cache: str | None = None) -> Handler:
        return _problems(w.cached(cache, handler) if cache else handler)

    app.router.add_routes(
        [
            web.get("/01/{gtin}/10/{lot}", wrap(w.lot_link, "page")),
            web.get("/01/{gtin}/21/{serial}", wrap(w.serial_link, "page")),
            web.get("/00/{sscc}", wrap(w.sscc_link, "page")),
            web.get("/01/{tail:.*}", wrap(w.bad_link)),
            web.get("/00/{tail:.*}", wrap(w.bad_link)),
            web.get("/v1/provenance", wrap(w.provenance, "provenance")),
            web.post("/v1/lots/{gtin}/{lot}/disposition", wrap(w.override_disposition)),
            web.get("/v1/provenance/bundle", wrap(w.bundle, "bundle")),
            web.get("/explorer", wrap(w.explorer, "explorer")),
            web.get("/explorer/blocks/{height}", wrap(w.explorer_block, "explorer")),
            web.get("/explorer/gateways/{gw:.+}", wrap(w.explorer_gateway)),
            web.get("/explorer/orgs/{org:.+}", wrap(w.explorer_org, "scorecard")),
            web.get("/v1/scorecards/{org:.+}", wrap(w.scorecard, "scorecard")),
            web.get("/explorer/consortium", wrap(w.explorer_consortium)),
            web.static("/static", STATIC_DIR, follow_symlinks=False),
        ]
    )


# --- pages ---------------------------------------------------------------------------------


def render_consumer_page(
    source: ProvenanceSource, config: ProvenanceConfig, answer: ProvenanceAnswer
) -> str:
    """The page behind the QR code. Values the browser re-checks carry ``data-claim``."""
    subject = answer.subject
    assert subject is not None
    checked = answer.checked
    params = urllib.parse.urlencode(subject.query_params())
    bundle_url = f"/v1/provenance/bundle?{params}"
    trust = source.log_trust()
    unit = unit_label(checked.unit)

    ident = []
    if subject.gtin:
        ident.append(f'<dt>GTIN</dt><dd data-claim="gtin">{esc(subject.gtin)}</dd>')
    if subject.lot:
        ident.append(f'<dt>Lot</dt><dd data-claim="lot">{esc(subject.lot)}</dd>')
    if subject.serial:
        ident.append(f'<dt>Serial</dt><dd data-claim="serial">{esc(subject.serial)}</dd>')
    if subject.sscc:
        ident.append(f'<dt>SSCC</dt><dd data-claim="sscc">{esc(subject.sscc)}</dd>')
    title = {"lot": "Lot", "serial": "Item", "sscc": "Shipment"}[subject.kind]

    verdict = answer.verdict
    shown = [r for r in verdict.lot.reasons if r.status != "pass" or r.code != "no-sensors"]
    reasons = _reason_items(shown)
    stats_html = _verdict_figures(answer, unit)
    timeline = []
    for ia in answer.intervals:
        c = ia.custody
        scans = [c.opened_by, *c.events]
        steps = "".join(_step_html(s) for s in scans)
        q_stats = ia.analysis.stats.get(checked.q)
        summary = (
            f"{esc(fmt_num(q_stats.min.val if q_stats.min else None))}–"
            f"{esc(fmt_num(q_stats.max.val if q_stats.max else None))} {esc(unit)}, "
            f"{esc(q_stats.count)} readings"
            if q_stats
            else "no readings"
        )
        found = ia.excursions()
        flag = (
            f' <span class="bad">{esc(len(found))} excursion(s),'
            f" {esc(fmt_duration(sum(e.duration_ms for _, e in found)))} out of range</span>"
            if found
            else ""
        )
        timeline.append(
            '<li class="interval">'
            f'<h3><span class="holder-name">{esc(c.holder)}</span></h3>'
            f'<p class="when">{esc(fmt_time(c.start))} → {esc(fmt_time(c.end))}</p>'
            f'<ol class="steps">{steps}</ol>'
            f'<p class="interval-stats">{summary}{flag}</p></li>'
        )
        if (
            c.closed_by is not None
            and c.closed_by.step in ("unloading", "shipping")
            and (
                c.closed_by.gw,
                c.closed_by.seq,
            )
            not in {(x.custody.opened_by.gw, x.custody.opened_by.seq) for x in answer.intervals}
        ):
            timeline.append(
                '<li class="interval transit"><ol class="steps">'
                f"{_step_html(c.closed_by)}</ol></li>"
            )
    for s in answer.loose_scans:
        timeline.append(f'<li class="interval loose"><ol class="steps">{_step_html(s)}</ol></li>')

    holes = []
    for g in answer.gaps:
        holes.append(
            f"<li>{esc(fmt_time(g.t))}: gateway <code>{esc(g.gw)}</code> reported "
            f"<strong>{esc(g.reason)}</strong>"
            + (f" ({esc(g.detail)})" if g.detail else "")
            + "</li>"
        )
    for ia in answer.intervals:
        for f in ia.sensors():
            comp = f.completeness
            if comp.gaps:
                holes.append(
                    f"<li>Sensor <code>{esc(f.sensor)}</code> at {esc(ia.custody.holder)}: no"
                    f" reading for {esc(fmt_duration(comp.gap_ms))} in {esc(len(comp.gaps))}"
                    " gap(s)"
                    f" longer than twice its {esc(fmt_duration(f.interval_ms))} interval</li>"
                )
    if answer.anomaly_count:
        holes.append(f"<li>Clocks: {esc(answer.anomaly_summary)}</li>")
    holes_html = (
        '<section class="holes"><h2>Gaps and clock warnings</h2>'
        f"<ul>{''.join(holes)}</ul></section>"
        if holes
        else ""
    )

    chart = render_chart(answer, config)
    body = (
        f'<section class="product"><p class="kicker">{esc(title)} provenance</p>'
        f"<h1>{esc(_product_name(subject, answer.product))}</h1>"
        + (
            f'<p class="pack">{esc(answer.product.pack)}'
            f" (traded in {esc(unit_words(answer.product.unit))})</p>"
            if answer.product and answer.product.pack
            else ""
        )
        + f'<dl class="ident">{"".join(ident)}</dl></section>'
        f'<section id="verify" class="mark mark-pending" data-bundle="{esc(bundle_url)}"'
        f' data-log-vkey="{esc(trust.log_vkey)}">'
        '<p class="mark-title" id="verify-title">Checking the proofs…</p>'
        '<p class="mark-detail" id="verify-detail">Your browser is checking the signatures'
        " and Merkle proofs behind this page.</p>"
        '<noscript><p class="mark-detail">Turn on JavaScript to check the proofs here, or'
        " download the bundle and run <code>coldtrail-verify</code>.</p></noscript></section>"
        f'<section class="verdict verdict-{esc(verdict.status)}">'
        f'<h2 data-claim="verdict" data-status="{esc(verdict.status)}">'
        f"{esc(verdict.label())}</h2>"
        f'<p class="verdict-sentence">{esc(verdict_sentence(answer))}</p>'
        f'<p class="profile">Judged as {esc(describe_profile(verdict.profile))}'
        f" (rules <code>{esc(verdict.lot.rules_version)}</code>, profile"
        f" <code>{esc(verdict.lot.profile_digest[:12])}</code>)</p>"
        f"<ul>{reasons}</ul>{stats_html}{_disposition_html(answer)}</section>"
        f'<section class="chart"><h2>Temperature on the way</h2>{chart}</section>'
        f'<section class="timeline"><h2>Who held it</h2><ol id="timeline">'
        f"{''.join(timeline)}</ol></section>"
        f"{holes_html}{_documents_html(answer)}{_claim_form_html(subject)}"
        '<section class="proof"><h2>Check it yourself</h2>'
        f'<p><a href="{esc(bundle_url)}" download>Download the proof bundle</a> and run'
        " <code>coldtrail-verify bundle.json</code>: it needs no network.</p>"
        f"<p>Values marked ✓ were re-checked by your browser against signed records; the"
        f" average, the reading count and the chart are computed by the anchor from"
        f" {esc(sum(s.count for s in answer.overall.values()))} readings.</p></section>"
    )
    return _page(
        f"{title} {subject.lot or subject.serial or subject.sscc}",
        body,
        scripts=["/static/verify.js", "/static/documents.js"],
    )


def render_unknown(subject: Subject) -> str:
    ident = " ".join(f"{k.upper()} {v}" for k, v in subject.query_params().items())
    body = (
        '<section class="product"><p class="kicker">Provenance</p>'
        f"<h1>No records yet</h1><p>This ledger holds no scan of {esc(ident)}.</p>"
        "<p>If the code is new, its records may not have been uploaded yet.</p></section>"
    )
    return _page("No records", body)


def _product_name(subject: Subject, product: Product | None = None) -> str:
    if product is not None:
        return product.name
    if subject.gtin:
        return f"Product {subject.gtin}"
    return f"Shipment {subject.sscc}"


def _step_html(s: Scan) -> str:
    label = STEP_LABELS.get(s.step, s.step)
    return (
        f'<li class="step" data-claim="custody" data-gw="{esc(s.gw)}" data-seq="{esc(s.seq)}">'
        f'<time datetime="{esc(iso_time(s.t))}">{esc(fmt_time(s.t))}</time> '
        f'<span class="step-name">{esc(label)}</span> at '
        f'<span class="holder">{esc(holder_of(s))}</span></li>'
    )


def render_chart(answer: ProvenanceAnswer, config: ProvenanceConfig) -> str:
    """An SVG line chart: the allowed band, each holder's readings, excursions in red."""
    checked = answer.checked
    points = chart_points(answer.all_points, checked.q, config.chart_max_points)
    if not points:
        return '<p class="empty">No readings to chart.</p>'
    w, h, left, right, top, bottom = 640, 260, 44, 12, 12, 36
    t0 = min(ia.custody.start for ia in answer.intervals)
    # An open interval ends "now", which can be days after the last reading: end the
    # axis at the last reading or the last hand-over, whichever is later.
    closed_ends = [ia.custody.end for ia in answer.intervals if ia.custody.end is not None]
    t1 = max([*closed_ends, max(p.t for p in points)])
    t1 = max(t1, t0 + 1)
    values = [p.val for p in points]
    lo = min([*values, *(v for v in (checked.low, checked.high) if v is not None)])
    hi = max([*values, *(v for v in (checked.low, checked.high) if v is not None)])
    pad = max(1.0, (hi - lo) * 0.1)
    lo, hi = lo - pad, hi + pad

    def x(t: int) -> float:
        return left + (t - t0) / (t1 - t0) * (w - left - right)

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (h - top - bottom)

    parts = [
        f'<svg id="chart" class="chart-svg" viewBox="0 0 {w} {h}" role="img"'
        f' aria-label="{esc(checked.q)} over time with the allowed range">'
    ]
    band_top = y(checked.high) if checked.high is not None else top
    band_bottom = y(checked.low) if checked.low is not None else h - bottom
    parts.append(
        f'<rect class="band" x="{left}" y="{band_top:.1f}" width="{w - left - right}"'
        f' height="{max(0.0, band_bottom - band_top):.1f}" fill="#d8f3dc"/>'
    )
    for x0, x1 in _merged_spans((x(e.start_ms), x(e.end_ms)) for _, e in answer.excursions()):
        parts.append(
            f'<rect class="excursion" x="{x0:.1f}" y="{top}"'
            f' width="{max(2.0, x1 - x0):.1f}" height="{h - top - bottom}"'
            ' fill="#ffccd5"/>'
        )
    for ia in answer.intervals[1:]:
        xi = x(ia.custody.start)
        parts.append(
            f'<line x1="{xi:.1f}" x2="{xi:.1f}" y1="{top}" y2="{h - bottom}" stroke="#888"'
            ' stroke-dasharray="4 3"/>'
        )
    for ia in answer.intervals:
        parts.append(
            f'<text x="{x(ia.custody.start) + 3:.1f}" y="{top + 11}" font-size="11"'
            f' fill="#555">{esc(ia.custody.holder)}</text>'
        )
    by_series: dict[tuple[str, str], list[ReadingPoint]] = {}
    for p in points:
        by_series.setdefault((p.gw, p.src), []).append(p)
    for series in by_series.values():
        coords = " ".join(f"{x(p.t):.1f},{y(p.val):.1f}" for p in series)
        parts.append(
            f'<polyline class="line" points="{coords}" fill="none" stroke="#1d3557"'
            ' stroke-width="1.5"/>'
        )
    for p in points:
        if not checked.contains(p.val):
            parts.append(
                f'<circle class="out" cx="{x(p.t):.1f}" cy="{y(p.val):.1f}" r="2.5"'
                ' fill="#d00000"/>'
            )
    for v in _ticks(lo, hi):
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end"'
            f' fill="#333">{esc(fmt_num(v, 1))}</text>'
            f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
        )
    parts.append(
        f'<text x="{left}" y="{h - 10}" font-size="11" fill="#333">{esc(fmt_time(t0))}</text>'
        f'<text x="{w - right}" y="{h - 10}" font-size="11" text-anchor="end" fill="#333">'
        f"{esc(fmt_time(t1))}</text>"
        f'<text x="4" y="{top + 4}" font-size="11" fill="#333">'
        f"{esc(unit_label(checked.unit))}</text></svg>"
    )
    return "".join(parts)


def _merged_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Pixel spans merged where they touch: at most one per pixel of chart width, however
    many excursions a flapping sensor made (each would otherwise be its own rect)."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        b = max(b, a + 2.0)  # drawn at least 2 px wide
        if merged and a <= merged[-1][1] + 1.0:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


_MAX_TICKS = 8


def _ticks(lo: float, hi: float) -> list[float]:
    """At most ``_MAX_TICKS`` round values in [lo, hi]: the step is 1, 2 or 5 times a power
    of ten chosen from the span, so the count never depends on how large the values are."""
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return [lo] if math.isfinite(lo) else []
    raw = span / (_MAX_TICKS - 2)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step)
    last = math.floor(hi / step)
    ticks = (k * step for k in range(first, min(last, first + _MAX_TICKS - 1) + 1))
    return [v for v in ticks if lo <= v <= hi]


def _table(headers: Iterable[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _q(**params: object) -> str:
    return "?" + urllib.parse.urlencode({k: str(v) for k, v in params.items()})


def render_blocks(blocks: Sequence[BlockInfo], *, more: bool, consortium: bool = False) -> str:
    rows = [
        f'<tr><td><a href="/explorer/blocks/{esc(b.height)}">{esc(b.height)}</a></td>'
        f'<td><code title="{esc(b.hash_hex)}">{esc(b.hash_hex[:16])}…</code></td>'
        f"<td>{esc(fmt_time(b.time))}</td><td>{esc(b.entries)}</td><td>{esc(b.tree_size)}</td></tr>"
        for b in blocks
    ]
    nav = (
        f'<p><a href="/explorer{esc(_q(before=blocks[-1].height))}">Older blocks</a></p>'
        if more and blocks
        else ""
    )
    member = (
        '<p class="consortium-link">This node is a consortium member: see the'
        ' <a href="/explorer/consortium">consortium</a>, who cosigned each checkpoint and'
        " how each member node keeps up.</p>"
        if consortium
        else ""
    )
    body = (
        "<h1>Latest blocks</h1><p>Each block is a signed checkpoint of the append-only log."
        "</p>"
        + member
        + (
            _table(["Height", "Hash", "Time", "Entries", "Log size"], rows)
            if rows
            else "<p>No checkpoints yet.</p>"
        )
        + nav
    )
    return _page("coldtrail explorer", body, nav=explorer_nav(consortium=consortium))


def _batch_row(b: BatchInfo, with_gateway: bool) -> str:
    gw = (
        f'<td><a href="/explorer/gateways/{esc(urllib.parse.quote(b.gw, safe=""))}">'
        f"{esc(b.gw)}</a></td>"
        if with_gateway
        else ""
    )
    return (
        f"<tr><td>{esc(b.leaf_index)}</td>{gw}<td>{esc(b.batch_seq)}</td>"
        f"<td>{esc(b.count)}{' (evicted)' if b.records_evicted else ''}</td>"
        f"<td>{esc(fmt_time(b.closed))}</td><td>{esc(fmt_time(b.accepted_at))}</td></tr>"
    )


def render_block(
    block: BlockInfo,
    leaves: Sequence[BatchInfo],
    offset: int,
    *,
    more: bool,
    nav: Sequence[tuple[str, str]] = (),
    cosigning: dict[str, Any] | None = None,
) -> str:
    """``cosigning``: on a member node, the block's cosigners and finality
    (anchor.consortium.status.checkpoint_status)."""
    rows = [_batch_row(b, True) for b in leaves]
    pager = (
        f'<p><a href="/explorer/blocks/{esc(block.height)}{esc(_q(offset=offset + 100))}">'
        "More entries</a></p>"
        if more
        else ""
    )
    body = (
        f"<h1>Block {esc(block.height)}</h1>"
        f'<dl class="facts"><dt>Hash</dt><dd><code>{esc(block.hash_hex)}</code></dd>'
        f"<dt>Time</dt><dd>{esc(fmt_time(block.time))}</dd>"
        f"<dt>Entries</dt><dd>{esc(block.entries)}</dd>"
        f"<dt>Log size</dt><dd>{esc(block.tree_size)}</dd></dl>"
        + ("" if cosigning is None else render_block_cosigning(cosigning))
        + f'<h2>Signed checkpoint</h2><pre class="note">{esc(block.note)}</pre>'
        "<h2>Entries (batch manifests)</h2>"
        + (
            _table(["Leaf", "Gateway", "Batch", "Records", "Closed", "Accepted"], rows)
            if rows
            else "<p>No new entries in this block.</p>"
        )
        + pager
        + '<p><a href="/explorer">All blocks</a></p>'
    )
    return _page(f"Block {block.height}", body, nav=nav)


def render_gateway(
    gateway: GatewayInfo,
    batches: Sequence[BatchInfo],
    offset: int,
    *,
    more: bool,
    nav: Sequence[tuple[str, str]] = (),
) -> str:
    rows = [_batch_row(b, False) for b in batches]
    revoked = (
        f'<dt>Revoked</dt><dd class="bad">{esc(fmt_time(gateway.revoked_at))}</dd>'
        if gateway.revoked_at is not None
        else ""
    )
    pager = f'<p><a href="{esc(_q(offset=offset + 50))}">Older batches</a></p>' if more else ""
    body = (
        f'<h1>Gateway {esc(gateway.id)}</h1><dl class="facts">'
        f'<dt>Organisation</dt><dd><a href="/explorer/orgs/'
        f'{esc(urllib.parse.quote(gateway.org, safe=""))}">{esc(gateway.org)}</a></dd>'
        f"<dt>Asset</dt><dd>{esc(gateway.asset or '–')}</dd>"
        f"<dt>Public key</dt><dd><code>{esc(gateway.public_key)}</code></dd>{revoked}</dl>"
        "<h2>Batches</h2>"
        + (
            _table(["Leaf", "Batch", "Records", "Closed", "Accepted"], rows)
            if rows
            else "<p>No batches yet.</p>"
        )
        + pager
    )
    return _page(f"Gateway {gateway.id}", body, nav=nav)


def render_org(
    org_id: str,
    name: str,
    gateways: Sequence[GatewayInfo],
    *,
    nav: Sequence[tuple[str, str]] = (),
    scorecard: dict[str, Any] | None = None,
) -> str:
    rows = [
        f'<tr><td><a href="/explorer/gateways/{esc(urllib.parse.quote(g.id, safe=""))}">'
        f"{esc(g.id)}</a></td><td>{esc(g.asset or '–')}</td>"
        f"<td>{'revoked ' + esc(fmt_time(g.revoked_at)) if g.revoked_at else 'active'}</td></tr>"
        for g in gateways
    ]
    body = (
        f"<h1>{esc(name)}</h1><p>Organisation <code>{esc(org_id)}</code></p><h2>Gateways</h2>"
        + (_table(["Gateway", "Asset", "Status"], rows) if rows else "<p>No gateways.</p>")
        + (render_scorecard(scorecard) if scorecard is not None else "")
    )
    return _page(f"Organisation {name}", body, nav=nav)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f} %"


def _ms_words(ms: int | None) -> str:
    return "–" if ms is None else fmt_duration(ms)


def _figure_cells(f: dict[str, Any]) -> str:
    return (
        f"<td>{f['shipments']}</td><td>{_pct(f['excursion_rate'])}</td>"
        f"<td>{esc(fmt_num(f['degree_minutes_per_shipment'], 1))}</td>"
        f"<td>{_pct(f['completeness'])}</td><td>{esc(_ms_words(f['median_receipt_ms']))}</td>"
        f"<td>{f['claims']}</td><td>{esc(_ms_words(f['median_resolution_ms']))}</td>"
    )


_FIGURE_HEADERS = [
    "Shipments",
    "Excursion rate",
    "°C·min per shipment",
    "Completeness",
    "Median reading to receipt",
    "Claims",
    "Median claim resolution",
]


def render_scorecard(doc: dict[str, Any]) -> str:
    """The scorecard section of an organisation's page: its figures, a chart per month
    (shipments and excursion rate, inline SVG) with the same numbers as a table, and the
    figures of each of its places; all from the export ``/v1/scorecards/{org}`` serves."""
    org_id = doc["org"]["id"]
    link = f"/v1/scorecards/{urllib.parse.quote(org_id, safe='')}"
    period = f"{esc(fmt_time(doc['period']['from_ms']))} to {esc(fmt_time(doc['period']['to_ms']))}"
    cp = doc["checkpoint"]
    head = (
        '<section id="scorecard" class="scorecard"><h2>Scorecard</h2>'
        f"<p>Shipments (custody legs) started {period}, computed from the entries of the"
        f" log up to checkpoint size {int(cp['tree_size'])}. "
        f'<a href="{esc(link)}">Download the export</a> and recompute every figure with'
        " <code>coldtrail-verify scorecard EXPORT.json</code>.</p>"
    )
    notes = ""
    if doc["pending"]:
        notes += f"<p>{int(doc['pending'])} shipment(s) still open or not yet in a checkpoint.</p>"
    if doc["truncated"]:
        notes += "<p>Too many lots in this period: only the first were scored.</p>"
    f = org_figures(doc)
    if f is None:
        return head + notes + '<p class="empty">No shipments in this period.</p></section>'
    figures = (
        '<dl class="facts figures" id="scorecard-figures">'
        f'<dt>Shipments</dt><dd data-figure="shipments">{f["shipments"]}</dd>'
        f'<dt>Excursion rate</dt><dd data-figure="excursion_rate">{_pct(f["excursion_rate"])}'
        f" ({f['with_excursion']} of {f['shipments']})</dd>"
        "<dt>Degree-minutes per shipment</dt>"
        f'<dd data-figure="degree_minutes_per_shipment">'
        f"{esc(fmt_num(f['degree_minutes_per_shipment'], 1))} °C·min</dd>"
        f'<dt>Completeness</dt><dd data-figure="completeness">{_pct(f["completeness"])}</dd>'
        "<dt>Median time from reading to receipt</dt>"
        f'<dd data-figure="median_receipt_ms">{esc(_ms_words(f["median_receipt_ms"]))}</dd>'
        f'<dt>Claims received</dt><dd data-figure="claims">{f["claims"]}</dd>'
        "<dt>Median claim resolution</dt>"
        f'<dd data-figure="median_resolution_ms">{esc(_ms_words(f["median_resolution_ms"]))}</dd>'
        "</dl>"
    )
    months = monthly(doc)
    month_rows = [
        f"<tr><td>{esc(m)}</td><td>{mf['shipments']}</td><td>{_pct(mf['excursion_rate'])}</td></tr>"
        for m, mf in months
    ]
    holder_rows = [
        f"<tr><td>{esc(h)}</td>{_figure_cells(hf)}</tr>"
        for h, hf in doc["figures"]["holders"].items()
    ]
    return (
        head
        + notes
        + figures
        + "<h3>Per month</h3>"
        + render_scorecard_chart(months)
        + _table(["Month", "Shipments", "Excursion rate"], month_rows)
        + "<h3>Per place</h3>"
        + _table(["Place", *_FIGURE_HEADERS], holder_rows)
        + "</section>"
    )


def render_scorecard_chart(months: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Shipments per month as bars (left axis) and the excursion rate as a line with
    points (right axis, 0-100 %), server-side SVG with a title and description."""
    w, h, left, right, top, bottom = 640, 220, 40, 44, 14, 34
    n = max(1, len(months))
    most = max((int(mf["shipments"]) for _, mf in months), default=0)
    scale = max(1, most)
    slot = (w - left - right) / n
    plot_h = h - top - bottom

    def y_count(c: float) -> float:
        return top + plot_h - c / scale * plot_h

    def y_rate(r: float) -> float:
        return top + plot_h - r * plot_h

    summary = "; ".join(
        f"{m}: {mf['shipments']} shipment(s), excursion rate {_pct(mf['excursion_rate'])}"
        for m, mf in months
        if mf["shipments"]
    )
    parts = [
        f'<svg id="scorecard-chart" class="chart-svg" viewBox="0 0 {w} {h}" role="img"'
        ' aria-labelledby="scorecard-chart-title scorecard-chart-desc">'
        '<title id="scorecard-chart-title">Shipments and excursion rate per month</title>'
        f'<desc id="scorecard-chart-desc">Bars: shipments per month (left axis). Line:'
        f" share of shipments with an excursion (right axis). {esc(summary or 'No shipments.')}"
        "</desc>",
        f'<line x1="{left}" x2="{w - right}" y1="{top + plot_h}" y2="{top + plot_h}"'
        ' stroke="#333"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end" fill="#333">'
        f"{scale}</text>",
        f'<text x="{left - 6}" y="{top + plot_h + 4}" font-size="11" text-anchor="end"'
        ' fill="#333">0</text>',
        f'<text x="{w - right + 6}" y="{top + 4}" font-size="11" fill="#9d0208">100 %</text>',
        f'<text x="{w - right + 6}" y="{top + plot_h + 4}" font-size="11" fill="#9d0208">'
        "0 %</text>",
    ]
    rate_points: list[tuple[float, float]] = []
    label_every = max(1, math.ceil(n / 12))
    for i, (m, mf) in enumerate(months):
        x0 = left + i * slot
        c = int(mf["shipments"])
        if c:
            bar_top = y_count(c)
            parts.append(
                f'<rect class="bar" x="{x0 + slot * 0.15:.1f}" y="{bar_top:.1f}"'
                f' width="{slot * 0.7:.1f}" height="{top + plot_h - bar_top:.1f}"'
                f' fill="#457b9d"><title>{esc(m)}: {c} shipment(s)</title></rect>'
            )
        if mf["excursion_rate"] is not None:
            rate_points.append((x0 + slot / 2, y_rate(float(mf["excursion_rate"]))))
        if i % label_every == 0:
            parts.append(
                f'<text x="{x0 + slot / 2:.1f}" y="{h - 12}" font-size="10" text-anchor="middle"'
                f' fill="#333">{esc(m)}</text>'
            )
    if len(rate_points) > 1:
        coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in rate_points)
        parts.append(
            f'<polyline class="rate" points="{coords}" fill="none" stroke="#9d0208"'
            ' stroke-width="1.5"/>'
        )
    for x, y in rate_points:
        parts.append(f'<circle class="rate-point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#9d0208"/>')
    parts.append("</svg>")
    return "".join(parts)


# --- the consortium ----------------------------------------------------------------------

# A member that has left a checkpoint uncosigned this long is "silent", not just "behind":
# members cosign within a second or two of a checkpoint (anchor.consortium.member).
SILENT_AFTER_MS = 60_000


def policy_words(quorum: dict[str, Any]) -> str:
    """The consortium's quorum as a sentence: "final when 2 of 3 members have cosigned"."""
    k, of, name = quorum.get("k"), quorum.get("of"), quorum.get("name")
    if name == "none":
        return "final once signed: the policy asks for no cosignature"
    if k is not None and of is not None:
        return f"final when {k} of {of} members {'has' if k == 1 else 'have'} cosigned"
    return f"final when the policy's quorum {name} is met"


def fmt_ago(ms: int) -> str:
    """A duration in the past, in the largest units that matter ("3 min ago")."""
    s = ms // 1000
    if s < 1:
        return "just now"  # also a peer clock a little ahead of this one
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86_400:
        return f"{s // 3600} h {s % 3600 // 60} min ago"
    return f"{s // 86_400} d ago"


def _short_vkey(vkey: str | None) -> str:
    """A note verifier key as its key id and the start of the key, the whole in a title."""
    if not vkey:
        return "–"
    _name, _, rest = vkey.partition("+")
    key_id, _, key = rest.partition("+")
    short = f"{key_id}+{key[:8]}…" if key else vkey
    return f'<code class="key" title="{esc(vkey)}">{esc(short)}</code>'


def _member_url(url: str | None) -> str:
    if not url:
        return "–"
    if urllib.parse.urlsplit(url).scheme in ("http", "https"):
        return f'<a href="{esc(url)}">{esc(url)}</a>'
    return f"<code>{esc(url)}</code>"  # named in the policy, but not a link we follow


def member_state(member: dict[str, Any], now_ms: int) -> tuple[str, str]:
    """(``ok`` | ``warn`` | ``bad``, words) for a member row of ``GET /v1/consortium``."""
    if member.get("last_cosigned") is None:
        return "bad", "silent: no cosignature among the recent checkpoints"
    missed = member.get("first_missed")
    if missed is None:
        return "ok", "up to date"
    silent_ms = now_ms - int(missed["time"])
    if silent_ms >= SILENT_AFTER_MS:
        return "bad", f"silent for {silent_ms // 60_000} min"
    return "warn", "behind"


def _block_link(height: object) -> str:
    return f'<a href="/explorer/blocks/{esc(height)}">{esc(height)}</a>'


def _health_rows(doc: dict[str, Any], now_ms: int, me: str | None) -> list[str]:
    rows = []
    for m in doc["members"]:
        last = m.get("last_cosigned")
        cls, words = member_state(m, now_ms)
        if last is None:
            cells = "<td>–</td><td>–</td><td>–</td>"
        else:
            at_ms = int(last["at"]) * 1000  # cosignatures state seconds
            cells = (
                f"<td>{esc(m.get('behind'))}</td>"
                f"<td>{_block_link(last['height'])} (size {esc(last['size'])})</td>"
                f'<td><time datetime="{esc(iso_time(at_ms))}" title="{esc(fmt_time(at_ms))}">'
                f"{esc(fmt_ago(now_ms - at_ms))}</time></td>"
            )
        name = esc(m["name"]) + (
            ' <span class="muted">(this node)</span>' if m["name"] == me else ""
        )
        behind = "" if m.get("behind") is None else m["behind"]
        rows.append(
            f'<tr data-member="{esc(m["name"])}" data-behind="{esc(behind)}"'
            f' data-state="{esc(cls)}"><td>{name}</td>'
            f'<td><span class="state state-{esc(cls)}">{esc(words)}</span></td>{cells}</tr>'
        )
    return rows


def _this_node(health: dict[str, Any] | None) -> tuple[str, list[str]]:
    """This node's own health as a section, and the alerts it raises (shown at the top)."""
    if health is None:
        return "", []
    alerts: list[str] = []
    connected = bool(health.get("stream_connected"))
    refused = health.get("cosigning") != "ok"
    splits = int(health.get("split_views") or 0)
    if refused:
        alerts.append(
            f"This node refuses to cosign: {health.get('refusal') or 'no reason given'}."
            " Its answers cannot be trusted until its store is restored."
        )
    if splits:
        alerts.append(
            f"This node has seen {splits} split view(s): another signed tree of the same"
            " size as its own. Both views are kept; see the node's log."
        )
    if not connected:
        alerts.append("This node is not connected to the consortium's stream.")
    stream = (
        f'<dd><span class="state state-{"ok" if connected else "bad"}">'
        f"{'connected' if connected else 'disconnected'}</span>, applied up to entry"
        f" {esc(health.get('stream_applied'))}</dd>"
    )
    final_height = health.get("final_height")
    final = (
        "<dd>none yet</dd>"
        if final_height is None
        else f"<dd>{_block_link(final_height)} (size {esc(health.get('final_size'))})</dd>"
    )
    review = (
        f'<dd><span class="state state-warn">reviewing</span> ({esc(health.get("reviewed"))}'
        " entries checked so far)</dd>"
        if health.get("reviewing")
        else f"<dd>{esc(health.get('reviewed'))} entries checked</dd>"
    )
    cosigning = (
        f'<dd class="alert-text">refused: {esc(health.get("refusal"))}</dd>'
        if refused
        else '<dd><span class="state state-ok">ok</span></dd>'
    )
    split_dd = f'<dd class="alert-text">{esc(splits)}</dd>' if splits else "<dd>0</dd>"
    section = (
        f'<section id="this-node" class="{"node-alert" if refused or splits else "node"}">'
        f"<h2>This node: {esc(health.get('member'))}</h2>"
        '<dl class="facts">'
        f"<dt>Stream</dt>{stream}"
        f"<dt>Final checkpoint</dt>{final}"
        f"<dt>Store review</dt>{review}"
        f"<dt>Cosigning</dt>{cosigning}"
        f"<dt>Split views seen</dt>{split_dd}</dl></section>"
    )
    return section, alerts


def _checkpoint_rows(doc: dict[str, Any]) -> list[str]:
    names = [m["name"] for m in doc["members"]]
    rows = []
    for cp in doc["checkpoints"]:
        at = {c["member"]: int(c["at"]) for c in cp["cosigners"]}
        marks = "".join(
            f'<td class="cosigned" title="{esc(n)} cosigned {esc(fmt_time(at[n] * 1000))}">✓</td>'
            if n in at
            else f'<td class="uncosigned" title="{esc(n)} has not cosigned">–</td>'
            for n in names
        )
        final = (
            '<td><span class="state state-ok">final</span></td>'
            if cp["final"]
            else '<td><span class="state state-warn">not yet</span></td>'
        )
        rows.append(
            f'<tr data-height="{esc(cp["height"])}" data-cosigners="{esc(len(at))}">'
            f"<td>{_block_link(cp['height'])}</td><td>{esc(cp['size'])}</td>"
            f'<td><time datetime="{esc(iso_time(cp["time"]))}">{esc(fmt_time(cp["time"]))}'
            f"</time></td>{marks}{final}</tr>"
        )
    return rows


def render_consortium(
    doc: dict[str, Any], now_ms: int, *, nav: Sequence[tuple[str, str]] = ()
) -> str:
    """The consortium page from the ``GET /v1/consortium`` document, as of ``now_ms``."""
    this = doc.get("this_member")
    me = None if this is None else this.get("member")
    node_html, alerts = _this_node(this)
    alert_html = "".join(f'<p class="alert">{esc(a)}</p>' for a in alerts)
    quorum = doc["quorum"]
    members = doc["members"]
    member_rows = [
        f"<tr><td>{esc(m['name'])}</td><td>{_member_url(m.get('url'))}</td>"
        f"<td>{_short_vkey(m.get('cosigner_vkey'))}</td><td>{_short_vkey(m.get('log_vkey'))}</td></tr>"
        for m in members
    ]
    body = (
        '<p class="kicker">Consortium</p>'
        f"<h1>{esc(doc['origin'])}</h1>"
        + (f'<div id="alerts">{alert_html}</div>' if alerts else "")
        + '<section id="policy"><p class="policy-words">A checkpoint is '
        f"<strong>{esc(policy_words(quorum))}</strong>. The log holds"
        f" {esc(doc['log_size'])} entries.</p>"
        "<details><summary>The policy (C2SP tlog-policy)</summary>"
        f'<pre class="note">{esc(doc["policy"])}</pre></details></section>'
        '<section id="health"><h2>Node health</h2>'
        "<p>From the cosignatures in this node's ledger: each member's last cosigned"
        " checkpoint and how many entries the log holds beyond it.</p>"
        + _table(
            ["Member", "Status", "Behind (entries)", "Last cosigned", "When"],
            _health_rows(doc, now_ms, me),
        )
        + "</section>"
        + node_html
        + '<section id="checkpoints"><h2>Recent checkpoints</h2>'
        + (
            _table(
                ["Height", "Size", "Time", *(m["name"] for m in members), "Final"],
                _checkpoint_rows(doc),
            )
            if doc["checkpoints"]
            else "<p>No checkpoints yet.</p>"
        )
        + "</section>"
        + '<section id="members"><h2>Members</h2>'
        + _table(["Member", "URL", "Cosigner key", "Log key"], member_rows)
        + "</section>"
    )
    return _page("Consortium", body, nav=nav)


def render_block_cosigning(status: dict[str, Any]) -> str:
    """A block's cosigners and finality (anchor.consortium.status.checkpoint_status)."""
    cp = status["checkpoint"]
    names: list[str] = status["members"]
    at = {c["member"]: int(c["at"]) for c in cp["cosigners"]}
    items = "".join(
        f'<li class="cosigned">{esc(n)}: cosigned {esc(fmt_time(at[n] * 1000))}</li>'
        if n in at
        else f'<li class="uncosigned">{esc(n)}: not cosigned</li>'
        for n in names
    )
    verdict = (
        '<span class="state state-ok">Final</span>'
        if cp["final"]
        else '<span class="state state-warn">Not final yet</span>'
    )
    return (
        '<h2>Cosignatures</h2><p id="finality">'
        f"{verdict}: {esc(len(at))} of {esc(len(names))} members cosigned; a checkpoint is"
        f" {esc(policy_words(status['quorum']))}.</p>"
        f'<ul class="cosigners">{items}</ul>'
    )


# --- OpenAPI --------------------------------------------------------------------------------


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3.1 path items of these routes, for ``anchor.http.openapi`` to merge into
    ``/openapi.json`` (refers to its ``#/components/schemas/Problem``)."""
    problem_ref = {
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    }

    def problems(*statuses: int) -> dict[str, Any]:
        return {
            str(s): {"description": _STATUS_TEXT.get(s, "Refused"), **problem_ref} for s in statuses
        }

    def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema,
        }

    def path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": schema}

    text = {"type": "string", "maxLength": 64}
    selectors = [
        query(
            "gtin",
            "GTIN-8/12/13/14 with check digit",
            {"type": "string", "pattern": "^[0-9]{8,14}$"},
        ),
        query("lot", "lot, GS1 CSET 82, 1-20 characters", text),
        query("serial", "serial, GS1 CSET 82, 1-20 characters", text),
        query(
            "sscc", "SSCC, 18 digits with check digit", {"type": "string", "pattern": "^[0-9]{18}$"}
        ),
        query("gateway", "gateway id", text),
        query("sensor", "sensor (src) id", text),
        query("from", "ms since 1970 or ISO 8601 with zone (gateway/sensor queries)", text),
        query("to", "ms since 1970 or ISO 8601 with zone (gateway/sensor queries)", text),
    ]
    paging = [
        query(
            "limit", "raw readings per page", {"type": "integer", "minimum": 1, "maximum": 10_000}
        ),
        query("cursor", "the 'next' value of the previous page", text),
    ]
    answer = {"type": "object", "description": "provenance answer (docs/provenance.md)"}
    html_or_json = {
        "description": "HTML for Accept: text/html, else JSON",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/json": {"schema": answer},
        },
    }
    fmt = query(
        "format", "json or html, overriding Accept", {"type": "string", "enum": ["json", "html"]}
    )
    digital_link = {
        "get": {
            "summary": "GS1 Digital Link: consumer page or provenance answer",
            "parameters": [fmt, *paging],
            "responses": {"200": html_or_json, **problems(400, 401, 404)},
        }
    }
    html = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    period = [
        query("from", "period start, ms since 1970 or ISO 8601 with zone (default: 11 months"
              " before this month)", text),
        query("to", "period end, exclusive (default: the start of next month)", text),
    ]  # fmt: skip
    gtin_p = path("gtin", {"type": "string"})
    return {
        "/01/{gtin}/10/{lot}": {
            "parameters": [gtin_p, path("lot", {"type": "string"})],
            **digital_link,
        },
        "/01/{gtin}/21/{serial}": {
            "parameters": [gtin_p, path("serial", {"type": "string"})],
            **digital_link,
        },
        "/00/{sscc}": {"parameters": [path("sscc", {"type": "string"})], **digital_link},
        "/v1/provenance": {
            "get": {
                "summary": "Provenance by lot, serial, SSCC, gateway or sensor",
                "security": [{}, {"bearer": []}],
                "parameters": [*selectors, *paging],
                "responses": {
                    "200": {
                        "description": "answer",
                        "content": {"application/json": {"schema": answer}},
                    },
                    **problems(400, 401, 404),
                },
            }
        },
        "/v1/provenance/bundle": {
            "get": {
                "summary": "Download a coldtrail-bundle/1 proof bundle",
                "parameters": selectors,
                "responses": {
                    "200": {
                        "description": "proof bundle (attachment)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **problems(400, 401, 403, 404),
                },
            }
        },
        "/explorer": {
            "get": {
                "summary": "Latest blocks",
                "parameters": [
                    query(
                        "before", "show blocks below this height", {"type": "integer", "minimum": 0}
                    )
                ],
                "responses": {"200": html, **problems(400)},
            }
        },
        "/explorer/blocks/{height}": {
            "get": {
                "summary": "A block and its entries",
                "parameters": [
                    path("height", {"type": "integer", "minimum": 0}),
                    query("offset", "entries to skip", {"type": "integer", "minimum": 0}),
                ],
                "responses": {"200": html, **problems(400, 404)},
            }
        },
        "/explorer/gateways/{gw}": {
            "get": {
                "summary": "A gateway and its batches",
                "parameters": [
                    path("gw", text),
                    query("offset", "batches to skip", {"type": "integer", "minimum": 0}),
                ],
                "responses": {"200": html, **problems(400, 404)},
            }
        },
        "/explorer/consortium": {
            "get": {
                "summary": "A consortium member's view: members, policy, recent checkpoints'"
                " cosigners, each member node's health (404 on a node that is no member)",
                "parameters": [
                    query(
                        "limit",
                        "recent checkpoints",
                        {"type": "integer", "minimum": 1, "maximum": 100},
                    )
                ],
                "responses": {"200": html, **problems(400, 404)},
            }
        },
        "/explorer/orgs/{org}": {
            "get": {
                "summary": "An organisation, its gateways and its scorecard",
                "parameters": [path("org", text), *period],
                "responses": {"200": html, **problems(400, 404)},
            }
        },
        "/v1/scorecards/{org}": {
            "get": {
                "summary": "An organisation's custodian scorecard: per-shipment rows, the"
                " checkpoint they rest in and the figures (coldtrail-scorecard/1,"
                " docs/scorecards.md); coldtrail-verify scorecard recomputes it",
                "parameters": [path("org", text), *period],
                "responses": {
                    "200": {
                        "description": "scorecard export, canonical JSON",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **problems(400, 404),
                },
            }
        },
    }
