"""The auditor's report, checked offline.

The anchor's printable report of a lot (``GET /v1/lots/{gtin}/{lot}/report``) embeds the
lot's proof bundle (``<script type="application/json" id="coldtrail-bundle">``, inert
data) and marks each figure a reader relies on with ``data-claim``. :func:`extract`
takes both out of the HTML with the standard library's parser; :func:`check_claims`
compares the figures as printed with the ones recomputed from the verified bundle
(:func:`proofs.bundle.verify_bundle`), so an edited verdict, MKT, time out of range,
excursion row, checkpoint or cosigner is named (``report-mismatch``), and a report
whose bundle was swapped for another lot's fails on the subject.

The same formatting functions print the figures in the anchor and check them here, so
they cannot drift apart. Pure: no I/O, typed strictly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from .bundle import BundleReport
from .coldchain import Excursion, LotVerdict, duration_words
from .errors import FormatError, VerificationError

__all__ = [
    "BUNDLE_ELEMENT_ID",
    "MAX_REPORT_BYTES",
    "ReportClaims",
    "check_claims",
    "excursion_rows",
    "extract",
    "fmt_c",
    "report_claims",
]

BUNDLE_ELEMENT_ID = "coldtrail-bundle"
MAX_REPORT_BYTES = 64 * 1024 * 1024


def fmt_c(value: float | None) -> str:
    """A temperature as the report prints it: two decimals and the unit."""
    return "–" if value is None else f"{value:.2f} °C"


def excursion_rows(verdict: LotVerdict) -> list[tuple[str, str, Excursion]]:
    """``(holder, sensor, excursion)`` of every excursion, in time order."""
    rows = [(h, s.sensor, e) for h, v in verdict.legs for s in v.sensors for e in s.excursions]
    return sorted(rows, key=lambda r: (r[2].start_ms, r[1], r[0]))


def excursion_text(holder: str, sensor: str, e: Excursion) -> str:
    """The one line the report prints for an excursion (and the checker expects)."""
    return (
        f"{sensor} at {holder}: {e.side} from {e.start_ms} to {e.end_ms} ms,"
        f" {duration_words(e.duration_ms)}, peak {fmt_c(e.peak_c)},"
        f" {e.degree_minutes:.1f} °C·min"
    )


@dataclass
class ReportClaims:
    """What the report states: ``claim -> [text, ...]`` in document order, and the
    embedded bundle."""

    claims: dict[str, list[str]] = field(default_factory=dict)
    bundle: Any = None


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = ReportClaims()
        self._stack: list[tuple[str, str | None, list[str]]] = []  # tag, claim, text
        self._json: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("id") == BUNDLE_ELEMENT_ID:
            if self.out.bundle is not None or self._json is not None:
                raise FormatError("the report embeds more than one bundle", code="bad-report")
            self._json = []
            return
        if tag in ("br", "img", "meta", "link", "hr", "input"):
            return
        self._stack.append((tag, a.get("data-claim"), []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._json is not None:
            try:
                self.out.bundle = json.loads("".join(self._json))
            except ValueError as e:
                raise FormatError(
                    "the report's embedded bundle is not JSON", code="bad-report"
                ) from e
            self._json = None
            return
        while self._stack:
            open_tag, claim, text = self._stack.pop()
            joined = " ".join("".join(text).split())
            if self._stack:
                self._stack[-1][2].append("".join(text))
            if claim is not None:
                self.out.claims.setdefault(claim, []).append(joined)
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._json is not None:
            self._json.append(data)
        elif self._stack:
            self._stack[-1][2].append(data)


def extract(html: str | bytes) -> ReportClaims:
    """The claims and the bundle of a report (``bad-report`` if it has no bundle)."""
    if isinstance(html, bytes):
        if len(html) > MAX_REPORT_BYTES:
            raise FormatError("the report is larger than 64 MiB", code="too-large")
        try:
            html = html.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("the report is not UTF-8", code="bad-report") from e
    parser = _Parser()
    parser.feed(html)
    parser.close()
    if parser.out.bundle is None:
        raise FormatError("the report embeds no coldtrail bundle", code="bad-report")
    return parser.out


def report_claims(report: BundleReport) -> dict[str, list[str]]:
    """The figures a report of the verified ``report`` must print, as the anchor prints
    them."""
    v = report.verdict
    expected: dict[str, list[str]] = {
        "checkpoint-size": [str(report.tree_size)],
        "checkpoint-root": [report.root_hex],
        "cosigners": [", ".join(report.cosigners) or "nobody"],
    }
    for key in ("gtin", "lot"):
        if key in report.subject:
            expected[key] = [str(report.subject[key])]
    if v is not None:
        expected["verdict-status"] = [v.status]
        expected["mkt"] = [fmt_c(v.mkt_c)]
        expected["time-out"] = [duration_words(v.time_out_of_range_ms)
                                if v.time_out_of_range_ms else "never"]  # fmt: skip
        expected["excursion"] = [excursion_text(h, s, e) for h, s, e in excursion_rows(v)]
    return expected


def check_claims(stated: ReportClaims, report: BundleReport) -> int:
    """Every figure the verified bundle settles must be printed as it is; returns how many
    were compared. A report that states none of them is refused too."""
    expected = report_claims(report)
    compared = 0
    for claim, want in expected.items():
        got = stated.claims.get(claim, [])
        if got != want:
            first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                         min(len(got), len(want)))  # fmt: skip
            shown = got[first] if first < len(got) else "nothing"
            wanted = want[first] if first < len(want) else "nothing"
            raise VerificationError(
                f"the report's {claim} says {shown!r:.120}, the bundle {wanted!r:.120}",
                code="report-mismatch",
            )
        compared += len(want)
    unknown = sorted(set(stated.claims) - set(expected))
    if unknown:
        raise VerificationError(
            f"the report states {', '.join(unknown)[:200]} that this verifier cannot check",
            code="report-mismatch",
        )
    return compared
