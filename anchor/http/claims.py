"""Claims over HTTP (anchor.provenance.claims).

- ``POST /v1/lots/{gtin}/{lot}/claims``: anyone files a claim (``multipart/form-data``:
  ``text``, optional ``contact`` and ``photo``) from the consumer page's form; a browser
  is sent on to the claim's page (303), a program gets the claim as JSON (201);
- ``GET /claims/{id}``: the claim's page (its id is the claimant's secret: 128 random
  bits), its state, deadlines, answers and receipts; never the contact;
- ``GET /v1/claims/{id}`` (JSON; the contact and the photo's address for the parties),
  ``GET /v1/claims/{id}/receipt?n=`` (an event's inclusion in the signed claims log),
  ``GET /v1/claims/{id}/photo`` (the parties only), ``GET /v1/claims/{id}/bundle`` (the
  lot's bundle as it stood when the claim was filed);
- ``POST /v1/claims/{id}/events``: an operator of the routed organisation or of the
  lot's owner answers (``answered``), resolves or rejects (with a reason);
- ``GET /v1/claims?state=``: an operator's or auditor's list of its organisation's
  claims with what is overdue.

Abuse is expected: bodies are read as a stream and cut at the limits, photos are
sniffed (JPEG or PNG), each client address may file ``per_client_per_hour`` claims and
each lot gets at most ``per_lot_per_day``; everything a claimant wrote is escaped.
"""

from __future__ import annotations

import asyncio
import collections
import html
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, web

from anchor.errors import AnchorError
from anchor.http.params import json_response
from anchor.http.problems import with_problems
from anchor.ledger.documents import DocumentFiles
from anchor.ledger.model import Claim
from anchor.ledger.ports import LedgerStore
from anchor.provenance.answer import (
    ProvenanceConfig,
    Subject,
    answer_for_subject,
    assemble_bundle,
    lot_bundle_subject,
)
from anchor.provenance.claims import (
    ClaimAnnounce,
    ClaimsConfig,
    change_claim,
    claim_json,
    file_claim,
    load_bundle,
    receipt,
)
from anchor.provenance.source import ProvenanceSource
from proofs.claims import MAX_PHOTO_BYTES, TRANSITIONS
from proofs.note import NoteSigner

__all__ = ["CLAIMS", "ClaimsContext", "setup_claims"]

_BODY_MAX = MAX_PHOTO_BYTES + 64 * 1024
_FIELD_MAX = 16 * 1024


class ClaimsContext:
    """What the claim handlers need, bound once the app has started."""

    def __init__(
        self,
        store: LedgerStore,
        source: ProvenanceSource,
        provenance: ProvenanceConfig,
        files: DocumentFiles,
        signer: NoteSigner,
        log_vkey: str,
        attest: Callable[[bytes], str],
        config: ClaimsConfig,
        client_of: Callable[[web.Request], str],
        announce: ClaimAnnounce | None = None,
    ) -> None:
        self.store, self.source, self.provenance, self.files = store, source, provenance, files
        self.signer, self.log_vkey, self.attest, self.config = signer, log_vkey, attest, config
        self.client_of, self.announce = client_of, announce
        # client -> times of its recent claims (bounded: oldest clients dropped)
        self._recent: collections.OrderedDict[str, list[float]] = collections.OrderedDict()

    def admit(self, client: str, now_s: float) -> None:
        """Count a claim from ``client``; refuse it over ``per_client_per_hour``."""
        times = [t for t in self._recent.pop(client, []) if now_s - t < 3600]
        if len(times) >= self.config.per_client_per_hour:
            self._recent[client] = times
            wait = int(3600 - (now_s - times[0])) + 1
            raise AnchorError(
                "rate-limited",
                f"at most {self.config.per_client_per_hour} claims an hour from one address",
                retry_after_s=wait,
            )
        times.append(now_s)
        self._recent[client] = times
        while len(self._recent) > 10_000:
            self._recent.popitem(last=False)


CLAIMS: web.AppKey[ClaimsContext] = web.AppKey("claims")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _caller(request: web.Request) -> Any:
    from anchor.http.pages import CALLER_RESOLVER  # pages imports the app's keys

    return await request.app[CALLER_RESOLVER](request)


def _ctx(request: web.Request) -> ClaimsContext:
    ctx = request.app.get(CLAIMS)
    if ctx is None:
        raise AnchorError("unavailable", "claims are not open yet; try again shortly")
    return ctx


def _claim_id(request: web.Request) -> str:
    cid = request.match_info["claim"]
    if len(cid) != 32 or not all(c in "0123456789abcdef" for c in cid):
        raise AnchorError("not-found", "no such claim")
    return cid


async def _form(request: web.Request) -> dict[str, bytes]:
    if not request.content_type.startswith("multipart/form-data"):
        raise AnchorError("unsupported-media-type", "send the claim as multipart/form-data")
    if request.content_length is not None and request.content_length > _BODY_MAX:
        raise AnchorError("claim-too-large", "a claim with its photo is at most 5 MiB")
    parts: dict[str, bytes] = {}
    total = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name not in (
            "text", "contact", "photo", "serial"
        ):  # fmt: skip
            raise AnchorError("claim-malformed", "a claim has text, contact and photo only")
        limit = MAX_PHOTO_BYTES if part.name == "photo" else _FIELD_MAX
        chunks: list[bytes] = []
        size = 0
        while chunk := await part.read_chunk(65_536):
            size += len(chunk)
            total += len(chunk)
            if size > limit or total > _BODY_MAX:
                raise AnchorError("claim-too-large", f"the {part.name} is too large")
            chunks.append(chunk)
        parts[part.name] = b"".join(chunks)
    return parts


def _text(parts: dict[str, bytes], name: str) -> str:
    try:
        return parts.get(name, b"").decode("utf-8")
    except UnicodeDecodeError as e:
        raise AnchorError("claim-malformed", f"the {name} is not UTF-8 text") from e


def _wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


async def post_claim(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    subject = Subject.for_lot(request.match_info["gtin"], request.match_info["lot"])
    parts = await _form(request)
    now = int(time.time() * 1000)
    ctx.admit(ctx.client_of(request), time.monotonic())

    def work() -> tuple[Claim, Any]:
        answer = answer_for_subject(ctx.source, subject, ctx.provenance, now)
        bundle = None
        if answer.intervals and answer.proof_keys:
            trust = ctx.source.log_trust()
            result = assemble_bundle(
                ctx.source, answer.proof_keys, lot_bundle_subject(answer, trust.attest)
            )
            bundle = result.bundle
        return file_claim(
            ctx.store,
            ctx.files,
            answer,
            bundle,
            text=_text(parts, "text"),
            contact=_text(parts, "contact"),
            photo=parts.get("photo", b""),
            now=now,
            config=ctx.config,
            attest=ctx.attest,
            announce=ctx.announce,
        )

    claim, _ = await asyncio.to_thread(work)
    if _wants_html(request):
        raise web.HTTPSeeOther(f"/claims/{claim.id}")
    events = await asyncio.to_thread(ctx.store.claim_events, claim.id)
    body = claim_json(claim, events, now, party=False)
    body["url"] = f"/claims/{claim.id}"
    return json_response(body, status=201, headers={"Location": f"/claims/{claim.id}"})


async def _load(request: web.Request) -> tuple[ClaimsContext, Claim, Any, bool]:
    ctx = _ctx(request)
    cid = _claim_id(request)
    claim = await asyncio.to_thread(ctx.store.claim, cid)
    if claim is None:
        raise AnchorError("not-found", "no such claim")
    caller = await _caller(request)
    party = caller.role == "auditor" or (
        caller.org is not None
        and caller.org in (claim.routed_to, claim.owner)
        and caller.role == "operator"
    )
    events = await asyncio.to_thread(ctx.store.claim_events, cid)
    return ctx, claim, events, party


async def get_claim(request: web.Request) -> web.StreamResponse:
    _, claim, events, party = await _load(request)
    return json_response(claim_json(claim, events, int(time.time() * 1000), party=party))


async def get_receipt(request: web.Request) -> web.StreamResponse:
    ctx, claim, _, _ = await _load(request)
    n_text = request.query.get("n")
    if n_text is not None and not (n_text.isdigit() and 0 < len(n_text) < 6):
        raise AnchorError("bad-parameter", "n is an event number")
    n = int(n_text) if n_text is not None else None
    body = await asyncio.to_thread(receipt, ctx.store, claim.id, n, ctx.signer, ctx.log_vkey)
    return json_response(
        body,
        headers={
            "Content-Disposition": f'attachment; filename="claim-{claim.id[:8]}-receipt.json"'
        },
    )


async def get_photo(request: web.Request) -> web.StreamResponse:
    ctx, claim, _, party = await _load(request)
    if not party:
        raise AnchorError("forbidden", "the photo is for the parties who must answer")
    data = (
        await asyncio.to_thread(ctx.files.read, claim.photo_sha256) if claim.photo_sha256 else None
    )
    if data is None:
        raise AnchorError("not-found", "this claim has no photo")
    return web.Response(
        body=data,
        content_type=claim.photo_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Content-Disposition": f'inline; filename="claim-{claim.id[:8]}"',
            "Cache-Control": "private, no-store",
        },
    )


async def get_claim_bundle(request: web.Request) -> web.StreamResponse:
    ctx, claim, _, _ = await _load(request)
    bundle = await asyncio.to_thread(load_bundle, ctx.files, claim)
    if bundle is None:
        raise AnchorError("not-found", "no bundle was kept with this claim")
    return json_response(
        bundle,
        headers={"Content-Disposition": f'attachment; filename="claim-{claim.id[:8]}-bundle.json"'},
    )


async def post_event(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    cid = _claim_id(request)
    caller = await _caller(request)
    if caller.role != "operator" or caller.org is None or caller.token_id is None:
        raise AnchorError("forbidden", "only an operator token answers a claim")
    try:
        body = await request.json()
    except ValueError as e:
        raise AnchorError("claim-malformed", 'give {"state": ..., "message": ...}') from e
    if not isinstance(body, dict) or not isinstance(body.get("state"), str):
        raise AnchorError("claim-malformed", 'give {"state": ..., "message": ...}')
    message = body.get("message", "")
    if not isinstance(message, str):
        raise AnchorError("claim-malformed", "the message is text")
    now = int(time.time() * 1000)
    stored = await asyncio.to_thread(
        lambda: change_claim(
            ctx.store,
            cid,
            body["state"],
            message,
            org=caller.org,
            by=f"{caller.org}:{caller.token_id}",
            now=now,
            attest=ctx.attest,
            announce=ctx.announce,
        )
    )
    return json_response(
        {
            **stored.event.to_dict(),
            "index": stored.index,
            "message": stored.message,
            "attestation": stored.attestation,
        },
        status=201,
    )


async def list_claims(request: web.Request) -> web.StreamResponse:
    ctx = _ctx(request)
    caller = await _caller(request)
    if caller.role not in ("operator", "auditor") or caller.org is None:
        raise AnchorError("forbidden", "claims are listed for operators and auditors")
    state = request.query.get("state")
    if state is not None and state not in TRANSITIONS:
        raise AnchorError("bad-parameter", f"state is one of {', '.join(TRANSITIONS)}")
    org = None if caller.role == "auditor" else caller.org
    found = await asyncio.to_thread(ctx.store.claims, org, state)
    now = int(time.time() * 1000)
    out = []
    for c in found:
        events = await asyncio.to_thread(ctx.store.claim_events, c.id)
        out.append(claim_json(c, events, now, party=True))
    return json_response({"claims": out})


# --- the claimant's page ---------------------------------------------------------------

_STATE_WORDS = {
    "received": "Received: waiting for an answer",
    "answered": "Answered",
    "resolved": "Resolved",
    "rejected": "Rejected",
}


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_claim_page(claim: Claim, events: list[Any], now: int) -> str:
    from anchor.http.pages import _page  # the site's one page frame

    esc = html.escape
    rows = []
    for e in events:
        ev = e.event
        who = "you" if ev.by == "claimant" else ev.by.split(":", 1)[0]
        said = (
            f'<blockquote class="claim-message">{esc(e.message)}</blockquote>' if e.message else ""
        )
        rows.append(
            f'<li class="claim-event" data-state="{esc(ev.state)}">'
            f"<time>{esc(_when(ev.at))}</time> <strong>{esc(ev.state)}</strong> by {esc(who)}"
            f" (event {esc(str(ev.n))}, claims log leaf {esc(str(e.index))};"
            f' <a href="/v1/claims/{esc(claim.id)}/receipt?n={esc(str(ev.n))}" download>'
            f"receipt</a>){said}</li>"
        )
    late = []
    answered = any(e.event.state != "received" for e in events)
    if not answered and now > claim.answer_due:
        late.append("the first answer is overdue")
    if claim.state not in ("resolved", "rejected") and now > claim.resolve_due:
        late.append("the resolution is overdue")
    body = (
        '<section class="claim"><p class="kicker">Your claim</p>'
        f'<h1 id="claim-state" data-state="{esc(claim.state)}">'
        f"{esc(_STATE_WORDS.get(claim.state, claim.state))}</h1>"
        f'<p>About lot <a href="/01/{esc(claim.gtin)}/10/{esc(claim.lot)}">{esc(claim.lot)}'
        f"</a> of GTIN {esc(claim.gtin)}, filed {esc(_when(claim.filed_at))}.</p>"
        f'<p id="claim-routed">Routed to <strong>{esc(claim.routed_to)}</strong>:'
        f" {esc(claim.route_reason)}.</p>"
        f"<p>A first answer is due by {esc(_when(claim.answer_due))}, a resolution by"
        f" {esc(_when(claim.resolve_due))}."
        + (f' <strong class="bad">{esc("; ".join(late))}.</strong>' if late else "")
        + "</p>"
        f'<h2>What you said</h2><blockquote id="claim-text">{esc(claim.text)}</blockquote>'
        + (
            "<p>With a photo (seen only by the parties who must answer).</p>"
            if claim.photo_sha256
            else ""
        )
        + f'<h2>What happened since</h2><ol id="claim-events">{"".join(rows)}</ol>'
        "<h2>Keep your receipts</h2><p>Each receipt proves that the event is in this"
        " anchor's signed claims log; check one offline with"
        " <code>coldtrail-verify receipt.json</code>. Keep this page's address: it is the"
        " only key to your claim.</p>"
        + (
            f'<p><a href="/v1/claims/{esc(claim.id)}/bundle" download>The lot\'s proof bundle'
            " as it stood when you filed</a>.</p>"
            if claim.bundle_sha256
            else ""
        )
        + "</section>"
    )
    return _page(f"Claim about lot {claim.lot}", body)


async def claim_page(request: web.Request) -> web.StreamResponse:
    _, claim, events, _ = await _load(request)
    text = render_claim_page(claim, events, int(time.time() * 1000))
    from anchor.http.pages import _html

    response = _html(text)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL is the claimant's key
    return response


def setup_claims(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post("/v1/lots/{gtin}/{lot}/claims", with_problems(post_claim)),
            web.get("/v1/claims", with_problems(list_claims)),
            web.get("/v1/claims/{claim}", with_problems(get_claim)),
            web.get("/v1/claims/{claim}/receipt", with_problems(get_receipt)),
            web.get("/v1/claims/{claim}/photo", with_problems(get_photo)),
            web.get("/v1/claims/{claim}/bundle", with_problems(get_claim_bundle)),
            web.post("/v1/claims/{claim}/events", with_problems(post_event)),
            web.get("/claims/{claim}", with_problems(claim_page)),
        ]
    )
