"""The auditor's report of a lot: ``GET /v1/lots/{gtin}/{lot}/report`` (operator and
auditor tokens), one self-contained printable HTML page.

It says, in this order: the verdict and the rules and limits it was judged by; MKT with
its window and formula; the custody timeline; each logger (identity, owner, sampling
interval, completeness, calibration documents and their status over its readings);
every excursion; clock-sync evidence and signed gaps; dispositions and overrides with
who signed them and what that signature means; claims; and the proof summary (final
checkpoint, cosigners, quorum). It embeds the lot's proof bundle as inert JSON, and the
figures a reader relies on carry ``data-claim``: ``coldtrail-verify REPORT.html``
verifies the bundle and checks every such figure against it, offline (proofs.report).
The figures are printed by the same functions that check them.

No script runs in it (CSP ``default-src 'none'``; styles inline); print styles put each
section on its own page where it fits. PDF is the browser's "print to PDF" (ADR 0321).
"""

from __future__ import annotations

import html
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from anchor.errors import AnchorError
from anchor.http.problems import problem_response
from anchor.ledger.ports import LedgerStore
from anchor.provenance.answer import (
    ProvenanceAnswer,
    Subject,
    answer_for_subject,
    assemble_bundle,
    lot_bundle_subject,
)
from proofs.bundle import BundleReport, verify_bundle
from proofs.coldchain import ACTIVATION_ENERGY_K, duration_words
from proofs.documents import CALIBRATION
from proofs.report import BUNDLE_ELEMENT_ID, excursion_rows, excursion_text, fmt_c, report_claims

__all__ = ["render_report", "setup_report"]

esc = html.escape
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"
_STYLE = """
body{font:11pt/1.45 system-ui,sans-serif;color:#111;margin:2rem auto;max-width:60rem;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .2rem}h2{font-size:1.15rem;border-bottom:2px solid #333;
margin:1.6rem 0 .6rem;padding-bottom:.2rem}table{border-collapse:collapse;width:100%;margin:.4rem 0}
th,td{border:1px solid #999;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#eee}.fail{color:#a3001f;font-weight:700}.pass{color:#1d6b35;font-weight:700}
.indeterminate{color:#8a5a00;font-weight:700}code,.mono{font-family:ui-monospace,monospace;
font-size:.9em;overflow-wrap:anywhere}.small{font-size:.9em;color:#444}
header.run{display:none}
@media print{body{margin:0;max-width:none;font-size:10pt}section{break-inside:avoid-page}
section.break{break-before:page}header.run{display:block;position:fixed;top:0;right:0;
font-size:8pt;color:#555}a{color:inherit;text-decoration:none}}
@page{size:A4;margin:18mm 14mm}
"""


def _t(ms: int | None) -> str:
    if ms is None:
        return "still held"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _until(ms: int) -> str:
    return _t(ms) if ms else "no end"


def _claim(name: str, text: str, tag: str = "span") -> str:
    return f'<{tag} data-claim="{esc(name)}">{esc(text)}</{tag}>'


def _table(head: list[str], rows: list[str]) -> str:
    if not rows:
        return '<p class="small">None.</p>'
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _row(*cells: str) -> str:
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_report(
    answer: ProvenanceAnswer,
    bundle: dict[str, Any],
    checked: BundleReport,
    store: LedgerStore,
    now_ms: int,
    log_origin: str,
) -> str:
    """The report's HTML (see the module); ``checked`` is ``verify_bundle(bundle)``."""
    subject = answer.subject
    assert subject is not None and subject.gtin and subject.lot
    v = answer.verdict
    lot = v.lot
    p = v.profile
    claims = report_claims(checked)
    product = answer.product
    title = product.name if product is not None else f"GTIN {subject.gtin}"

    def org_of_place(pid: str) -> str:
        place = store.place(pid)
        return place.org_id if place is not None else "?"

    # --- verdict and limits
    limits = []
    for label, value in (("Range, low", p.low_c), ("Range, high", p.high_c),
                         ("Allowed excursions down to", p.allowed_low_c),
                         ("Allowed excursions up to", p.allowed_high_c),
                         ("MKT limit", p.mkt_limit_c)):  # fmt: skip
        if value is not None:
            limits.append(_row(esc(label), esc(fmt_c(value))))
    window = f"any {duration_words(p.mkt_window_ms)}" if p.mkt_window_ms else "the whole custody"
    reasons = "".join(
        f"<li><code>{esc(r.code)}</code> ({esc(r.status)}): {esc(r.message)}</li>"
        for r in lot.reasons
    )
    verdict_html = (
        "<section><h2>Verdict</h2>"
        f'<p>Status: <strong class="{esc(lot.status)}">{_claim("verdict-status", lot.status)}'
        f"</strong> ({esc(v.label())}), under profile <code>{esc(p.name)}</code> v{p.version}"
        f" (digest <code>{esc(lot.profile_digest)}</code>), rules <code>"
        f"{esc(lot.rules_version)}</code>; {v.readings} readings"
        f"{'' if v.complete else ' (the bundle proves a sample)'}.</p>"
        f"<h3>Alarm limits</h3>{_table(['Limit', 'Value'], limits)}"
        f"<h3>Reasons</h3><ul>{reasons or '<li>None: kept within its profile.</li>'}</ul>"
        f"<p>Time out of range in all: {_claim('time-out', claims['time-out'][0])}.</p></section>"
    )
    mkt_html = (
        "<section><h2>Mean kinetic temperature</h2>"
        f"<p>Worst window: {_claim('mkt', claims['mkt'][0])} over {esc(window)}.</p>"
        "<p>USP &lt;1079.2&gt;, time-weighted: MKT = (ΔH/R) / (−ln(Σ wᵢ·e<sup>−(ΔH/R)/Tᵢ</sup>"
        f" / Σ wᵢ)) − 273.15, with ΔH/R = {ACTIVATION_ENERGY_K:,.0f} K, Tᵢ each reading in"
        " kelvin and wᵢ the time it stands for (until the next reading, or one sampling"
        " interval before a gap). Equally spaced readings weigh the same: the USP formula"
        " exactly.</p></section>"
    )
    # --- custody
    legs = []
    for ia in answer.intervals:
        c = ia.custody
        scans = [c.opened_by, *c.events] + ([c.closed_by] if c.closed_by else [])
        steps = "<br>".join(
            f"{esc(s.step)} {esc(_t(s.t))} <span class='mono'>{esc(s.gw)}#{s.seq}</span>"
            for s in scans
        )
        legs.append(_row(esc(c.holder), esc(org_of_place(c.holder)), esc(_t(c.start)),
                         esc(_t(c.end)), steps))  # fmt: skip
    custody_html = ('<section class="break"><h2>Custody timeline</h2>'
                    + _table(["Holder", "Organisation", "From", "To", "Scans"], legs)
                    + "</section>")  # fmt: skip
    # --- loggers
    calibration = [d for d in answer.documents if d.entry.doc_type == CALIBRATION]
    notes = {(r.sensor, r.code) for r in lot.notes if r.code.startswith("calibration-")}
    loggers = []
    for holder, leg in lot.legs:
        for f in leg.sensors:
            gw = f.sensor.rsplit("/", 1)[0]
            g = store.gateway(gw)
            docs = [d for d in calibration if (d.entry.subject_kind, d.entry.subject) in
                    (("sensor", f.sensor), ("gateway", gw))]  # fmt: skip
            if (f.sensor, "calibration-missing") in notes:
                cal = "none on record"
            else:
                cal = (
                    "; ".join(
                        f"{esc(d.entry.name)} by {esc(d.entry.issuer)}, valid"
                        f" {esc(_t(d.entry.valid_from))} to {esc(_until(d.entry.valid_until))}"
                        f" (SHA-256 <span class='mono'>{esc(d.entry.digest[:16])}…</span>)"
                        for d in docs
                    )
                    or "–"
                )
                if (f.sensor, "calibration-expired") in notes:
                    cal += " <strong class='fail'>does not cover its readings</strong>"
            comp = f.completeness
            loggers.append(_row(
                f"<code>{esc(f.sensor)}</code>", esc(holder),
                esc(g.org_id if g is not None else "?"), esc(duration_words(f.interval_ms)),
                str(f.readings), f"{comp.covered_fraction:.1%} ({len(comp.gaps)} gap(s))", cal,
            ))  # fmt: skip
    loggers_html = ('<section><h2>Loggers</h2>' + _table(
        ["Sensor", "At", "Owner", "Sampling interval", "Readings", "Completeness",
         "Calibration"], loggers) + "</section>")  # fmt: skip
    # --- excursions
    exc = [f"<li>{_claim('excursion', excursion_text(h, s, e))}</li>"
           for h, s, e in excursion_rows(lot)]  # fmt: skip
    exc_html = (
        "<section><h2>Excursions</h2>"
        + (f"<ol>{''.join(exc)}</ol>" if exc else "<p>None.</p>")
        + '<p class="small">Start and end in ms since 1970 (UTC); duration as held by the'
        " readings (each holds until the next, never interpolated); degree-minutes beyond"
        " the crossed bound.</p></section>"
    )
    # --- clocks and gaps
    by_reason: dict[str, int] = {}
    for gap in answer.gaps:
        by_reason[gap.reason] = by_reason.get(gap.reason, 0) + 1
    clocks_html = (
        "<section><h2>Clock-sync evidence and signed gaps</h2>"
        f"<p>{esc(str(answer.anomaly_count))} clock anomalies"
        f"{': ' + esc(answer.anomaly_summary) if answer.anomaly_summary else ''}.</p>"
        f"<p>{len(answer.gaps)} signed gap record(s)"
        + (
            ": " + esc(", ".join(f"{n} {r}" for r, n in sorted(by_reason.items())))
            if by_reason
            else ""
        )
        + ".</p></section>"
    )
    # --- dispositions
    disp = [_row(str(d.n), esc(d.disposition), esc(d.cause),
                 esc(d.rule or d.reason), esc(d.by), esc(_t(d.at)), esc(d.custodian or "–"),
                 f"<span class='mono'>{esc(d.attestation[:24])}…</span>")
            for d in answer.dispositions]  # fmt: skip
    disp_html = (
        "<section><h2>Dispositions and overrides</h2>"
        + _table(
            ["#", "Disposition", "Cause", "Rule or reason", "By", "At", "Custodian", "Signature"],
            disp,
        )
        + "<p class='small'>Each row is signed by the log key of"
        f" <code>{esc(log_origin)}</code> over its statement: the anchor attests that the"
        " row was written"
        " as shown at that time, by the profile's rule (by: anchor) or by the operator token"
        " named (an override, with its reason). <code>coldtrail-anchor verify-ledger</code>"
        " checks every signature.</p></section>"
    )
    # --- claims
    lot_claims = store.claims(gtin=subject.gtin, lot=subject.lot)
    claim_rows = [_row(f"<span class='mono'>{esc(c.id[:8])}…</span>", esc(_t(c.filed_at)),
                       esc(c.state), esc(c.routed_to), esc(c.route_reason))
                  for c in lot_claims]  # fmt: skip
    claims_html = ('<section><h2>Claims</h2>'
                   + _table(["Claim", "Filed", "State", "Routed to", "Why"], claim_rows)
                   + "</section>")  # fmt: skip
    # --- proof
    proof_html = (
        '<section class="break"><h2>Proof</h2>'
        f"<p>Log <code>{esc(checked.origin)}</code>, final checkpoint of size"
        f" {_claim('checkpoint-size', claims['checkpoint-size'][0])}, root"
        f" <span class='mono'>{_claim('checkpoint-root', claims['checkpoint-root'][0])}</span>,"
        f" cosigned by {_claim('cosigners', claims['cosigners'][0])} (quorum"
        f" {esc(str(bundle.get('quorum', '?')))}).</p>"
        f"<p>{checked.records} records proven ({checked.readings} readings, {checked.scans}"
        f" scans, {checked.gaps} gaps) in {checked.batches} batches.</p>"
        "<p>This page carries the lot's proof bundle. Save it and run <code>coldtrail-verify"
        " report.html --policy policy.txt</code>: it verifies the bundle offline, recomputes"
        " the verdict and checks every marked figure on this page against it.</p></section>"
    )
    blob = json.dumps(bundle, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Cold-chain report: {esc(title)}, lot {esc(subject.lot)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f'<header class="run">{esc(subject.gtin)} / {esc(subject.lot)}</header>'
        f"<h1>Cold-chain report: {esc(title)}</h1>"
        f"<p>GTIN {_claim('gtin', subject.gtin)}, lot {_claim('lot', subject.lot)}"
        + (f", {esc(product.pack)}" if product is not None and product.pack else "")
        + f". Made {esc(_t(now_ms))} by the anchor of <code>{esc(log_origin)}</code>.</p>"
        + verdict_html
        + mkt_html
        + custody_html
        + loggers_html
        + exc_html
        + clocks_html
        + disp_html
        + claims_html
        + proof_html
        + f'<script type="application/json" id="{BUNDLE_ELEMENT_ID}">{blob}</script>'
        "</body></html>\n"
    )


async def get_report(request: web.Request) -> web.StreamResponse:
    from anchor.http.keys import STORE
    from anchor.http.limits import PUBLIC_GATE
    from anchor.http.pages import CALLER_RESOLVER, PROVENANCE_CONFIG, PROVENANCE_SOURCE

    try:
        caller = await request.app[CALLER_RESOLVER](request)
        if caller.role not in ("operator", "auditor") or caller.org is None:
            raise AnchorError(
                "forbidden" if caller.org else "unauthenticated",
                "the auditor's report is for operator and auditor tokens",
            )
        subject = Subject.for_lot(request.match_info["gtin"], request.match_info["lot"])
        source, config, store = (request.app[PROVENANCE_SOURCE], request.app[PROVENANCE_CONFIG],
                                 request.app[STORE])  # fmt: skip
        now = int(time.time() * 1000)

        def build() -> str:
            answer = answer_for_subject(source, subject, config, now)
            if not answer.intervals:
                raise AnchorError("not-found", "this ledger holds no scan of this lot")
            trust = source.log_trust()
            result = assemble_bundle(source, answer.proof_keys,
                                     lot_bundle_subject(answer, trust.attest))  # fmt: skip
            if result.bundle is None:
                raise AnchorError(
                    "no-proof-yet", "none of the lot's records is in a checkpoint yet"
                )
            checked = verify_bundle(result.bundle)
            origin = trust.log_vkey.split("+", 1)[0]
            return render_report(answer, result.bundle, checked, store, now, origin)

        text = await request.app[PUBLIC_GATE].run(build)
    except AnchorError as e:
        return problem_response(e.code, e.detail, request.path, retry_after_s=e.retry_after_s)
    name = f"coldtrail-report-{subject.gtin}-{subject.lot}"[:100]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return web.Response(
        text=text,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{safe}.html"',
            "Cache-Control": "private, no-store",
        },
    )


def setup_report(app: web.Application) -> None:
    app.router.add_get("/v1/lots/{gtin}/{lot}/report", get_report)
