"""The FSMA 204 electronic sortable spreadsheet: Key Data Elements per Critical Tracking
Event, from the same answers as everything else.

A lot's scans become CTEs by their business step: ``packing`` is the initial packing,
``loading`` and ``shipping`` are shipping (from the place that held the lot), ``unloading``
and ``receiving`` are receiving (at the place that takes it). Scans of one step at one
place make one row, the quantity being the number of items scanned (serials or
cases) in the product's unit, in words. The traceability lot code is the GS1 lot with its
GTIN; its source is the place where the lot was initially packed. The reference document
is the signed coldtrail record of the first scan (``gw#seq``), which anyone can prove
against the log. Cells that a spreadsheet would run as a formula are escaped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from anchor.exports.units import unit_words
from anchor.provenance.answer import ProvenanceAnswer
from proofs.records import Scan

__all__ = ["COLUMNS", "KdeRow", "csv_bytes", "rows", "safe_cell", "xlsx_bytes"]

CTE = {
    "packing": "Initial Packing",
    "loading": "Shipping",
    "shipping": "Shipping",
    "unloading": "Receiving",
    "receiving": "Receiving",
}
COLUMNS = (
    "Traceability Lot Code",
    "Traceability Lot Code Source",
    "GTIN",
    "Product Description",
    "Quantity",
    "Unit of Measure",
    "Critical Tracking Event",
    "Event Date",
    "Event Time (UTC)",
    "Location Description",
    "Immediate Previous Source",
    "Immediate Subsequent Recipient",
    "Reference Document Type",
    "Reference Document Number",
)

PlaceWords = Callable[[str], str]  # place id -> "Name (organisation)"


@dataclass(frozen=True, slots=True)
class KdeRow:
    tlc: str
    tlc_source: str
    gtin: str
    product: str
    quantity: int
    unit: str
    cte: str
    t_ms: int
    location: str
    previous: str
    next: str
    reference: str

    def cells(self) -> list[str]:
        when = datetime.fromtimestamp(self.t_ms / 1000, UTC)
        return [self.tlc, self.tlc_source, self.gtin, self.product, str(self.quantity),
                self.unit, self.cte, when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S"),
                self.location, self.previous, self.next, "coldtrail signed record",
                self.reference]  # fmt: skip


def rows(answer: ProvenanceAnswer, place: PlaceWords) -> list[KdeRow]:
    """The CTE rows of one lot's answer, in time order."""
    subject = answer.subject
    if subject is None or subject.kind != "lot" or not subject.gtin or not subject.lot:
        return []
    product = answer.product
    description = (
        ", ".join(x for x in (product.name, product.description, product.pack) if x)
        if product is not None
        else f"GTIN {subject.gtin}"
    )
    unit_code = product.unit if product is not None else "C62"
    legs = answer.intervals
    holders = [ia.custody.holder for ia in legs]
    source = next((ia.custody.holder for ia in legs if ia.custody.opened_by.step == "packing"),
                  holders[0] if holders else "")  # fmt: skip
    groups: dict[tuple[str, str], list[Scan]] = {}
    order: list[tuple[str, str, int]] = []
    used: set[tuple[str, int]] = set()
    for i, ia in enumerate(legs):
        c = ia.custody
        scans = [c.opened_by, *c.events]
        if c.closed_by is not None:
            scans.append(c.closed_by)
        for s in scans:
            cte = CTE.get(s.step)
            if cte is None or (s.gw, s.seq) in used:
                continue  # a hand-over scan closes one leg and opens the next: once
            used.add((s.gw, s.seq))
            # Shipping is from the place that held the lot, receiving at the one taking it.
            at = c.holder
            if cte == "Shipping" and s is c.opened_by and i > 0:
                at = legs[i - 1].custody.holder
            elif cte == "Receiving" and s is c.closed_by and i + 1 < len(legs):
                at = legs[i + 1].custody.holder
            key = (cte, at)
            if key not in groups:
                groups[key] = []
                order.append((cte, at, i))
            groups[key].append(s)
    out = []
    for cte, at, i in order:
        scans = sorted(groups[(cte, at)], key=lambda s: (s.t, s.gw, s.seq))
        items = {s.gs1.get("21") or s.gs1.get("00") or f"{s.gw}#{s.seq}" for s in scans}
        pos = holders.index(at) if at in holders else i
        previous = place(holders[pos - 1]) if cte == "Receiving" and pos > 0 else ""
        following = place(holders[pos + 1]) if cte == "Shipping" and pos + 1 < len(holders) else ""
        first = scans[0]
        out.append(KdeRow(
            tlc=f"{subject.gtin}/{subject.lot}", tlc_source=place(source), gtin=subject.gtin,
            product=description, quantity=len(items), unit=unit_words(unit_code, len(items)),
            cte=cte, t_ms=first.t, location=place(at), previous=previous, next=following,
            reference=f"{first.gw}#{first.seq}",
        ))  # fmt: skip
    return sorted(out, key=lambda r: (r.t_ms, r.cte))


def safe_cell(value: str) -> str:
    """A cell no spreadsheet runs as a formula (OWASP CSV injection): a leading = + - @,
    tab or carriage return gets a quote in front."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def csv_bytes(all_rows: Iterable[KdeRow]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    for r in all_rows:
        w.writerow([safe_cell(c) for c in r.cells()])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # a BOM: Excel reads UTF-8 then


def xlsx_bytes(all_rows: Sequence[KdeRow], title: str) -> bytes:
    from openpyxl import Workbook  # the only module that needs it (anchor extra)
    from openpyxl.styles import Font

    wb = Workbook(write_only=False)
    ws = wb.active
    assert ws is not None
    ws.title = "FSMA 204 KDEs"
    ws.append(list(COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for r in all_rows:
        cells: list[str | int] = [safe_cell(c) for c in r.cells()]
        cells[4] = r.quantity  # a number, sortable as one
        ws.append(cells)
    ws.auto_filter.ref = ws.dimensions
    ws.freeze_panes = "A2"
    wb.properties.title = title
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
