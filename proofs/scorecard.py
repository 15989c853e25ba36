"""Custodian scorecards: a carrier's or site's record, recomputable by anyone.

A **shipment** is one custody leg of one lot: the lot held by one place (a truck, a cold
room; the anchor's "holder") from the scan that opened the leg to the scan that closed
it. The anchor publishes one :class:`ShipmentRow` per shipment, each carrying the
figures the cold-chain engine (:mod:`proofs.coldchain`) gave that leg and the log leaves
they rest on; every figure of a scorecard is a pure function of those rows
(:func:`scorecard`), so a shipper recomputes it from the export and the anchor cannot
state a better record than its rows give (:func:`verify_scorecard`).

Definitions (docs/scorecards.md has them with examples):

* ``shipments``: the number of rows; a lot held twice by the same place is two rows.
* ``with_excursion`` / ``excursion_rate``: rows with at least one excursion, and that
  number over ``shipments`` rounded to 6 decimals (``None`` without shipments).
* ``degree_minutes`` / ``degree_minutes_per_shipment``: the exactly rounded sum
  (:func:`math.fsum`) of the rows' degree-minutes, and that sum over ``shipments``, both
  rounded to 3 decimals.
* ``custody_ms``, ``covered_ms``, ``completeness``: summed custody time, summed time the
  readings stand for, and their ratio rounded to 6 decimals (time-weighted: a week in a
  cold room weighs more than an hour on a dock).
* ``receipts`` / ``median_receipt_ms``: every ``(leaf, latency)`` of every row pooled,
  and the :func:`median` of the latencies (reading time to the time its batch was
  received, ms).
* ``claims``, ``claims_resolved``, ``median_resolution_ms``: claims filed against the
  rows, those resolved (or rejected: closed), and the median of closed minus filed
  time. The anchor counts each claim against the leg it was routed for (the holder at
  the excursion) or, routed to the lot's owner, the owner's first leg of the lot.

Figures are given for each organisation, each holder and each organisation's calendar
month (UTC, of the leg's start).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from .errors import FormatError, VerificationError
from .identifiers import check_identifier
from .note import Checkpoint, NoteVerifier, SignedNote

__all__ = [
    "SCORECARD_FORMAT",
    "Claim",
    "ShipmentRow",
    "figures",
    "median",
    "month_of",
    "rows_from_json",
    "scorecard",
    "verify_scorecard",
]

SCORECARD_FORMAT: Final = "coldtrail-scorecard/1"
STATUSES: Final = ("pass", "fail", "indeterminate")
_MAX_TIME_MS: Final = 2**53 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_ROWS: Final = 100_000


def _int(value: object, what: str, lo: int = 0, hi: int = _MAX_TIME_MS) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise FormatError(f"{what} must be an integer in [{lo}, {hi}]", code="scorecard-malformed")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{what} must be a list", code="scorecard-malformed")
    return value


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be an object", code="scorecard-malformed")
    return value


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim against one shipment: filed at ``filed_ms``, resolved at ``resolved_ms``
    (``None`` while open): anchor.provenance.claims, counted by
    anchor.provenance.scorecards."""

    filed_ms: int
    resolved_ms: int | None = None

    def __post_init__(self) -> None:
        _int(self.filed_ms, "a claim's filed_ms")
        if self.resolved_ms is not None:
            _int(self.resolved_ms, "a claim's resolved_ms", lo=self.filed_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"filed_ms": self.filed_ms, "resolved_ms": self.resolved_ms}


@dataclass(frozen=True, slots=True)
class ShipmentRow:
    """One custody leg of one lot, as a scorecard counts it.

    ``excursions`` and ``degree_minutes`` are the worst sensor's of the leg (two probes in
    one truck seeing one excursion count it once), ``covered_ms`` the best-covered
    sensor's time (0 without readings). ``leaves`` are the log leaf indices of the batches
    the leg rests on (its custody scans and readings); ``receipts`` one ``(leaf,
    latency_ms)`` per batch holding the leg's readings, the latency being the batch's
    receipt time minus its earliest reading of the leg (negative when a gateway's clock
    ran ahead)."""

    gtin: str
    lot: str
    holder: str
    org: str
    start_ms: int
    end_ms: int
    status: str
    excursions: int
    degree_minutes: float
    covered_ms: int
    leaves: tuple[int, ...] = ()
    receipts: tuple[tuple[int, int], ...] = ()
    claims: tuple[Claim, ...] = ()

    def __post_init__(self) -> None:
        for value, what in ((self.gtin, "gtin"), (self.lot, "lot"), (self.holder, "holder"),
                            (self.org, "org")):  # fmt: skip
            if not isinstance(value, str) or not 0 < len(value) <= 128:
                raise FormatError(
                    f"a row's {what} must be 1-128 characters", code="scorecard-malformed"
                )
        check_identifier(self.holder, "a row's holder")
        check_identifier(self.org, "a row's org")
        _int(self.start_ms, "a row's start_ms")
        _int(self.end_ms, "a row's end_ms", lo=self.start_ms + 1)
        if self.status not in STATUSES:
            raise FormatError(f"a row's status: {self.status!r:.20}", code="scorecard-malformed")
        _int(self.excursions, "a row's excursions", hi=2**31)
        dm = self.degree_minutes
        if (
            isinstance(dm, bool)
            or not isinstance(dm, int | float)
            or not (math.isfinite(dm) and dm >= 0)
        ):
            raise FormatError(
                "a row's degree_minutes must be a finite number >= 0", code="scorecard-malformed"
            )
        _int(self.covered_ms, "a row's covered_ms", hi=self.end_ms - self.start_ms)
        for leaf in self.leaves:
            _int(leaf, "a row's leaf index")
        for leaf, latency in self.receipts:
            _int(leaf, "a receipt's leaf index")
            _int(latency, "a receipt's latency_ms", lo=-_MAX_TIME_MS)
            if leaf not in self.leaves:
                raise FormatError(
                    f"a receipt names leaf {leaf}, which is not among the row's leaves",
                    code="scorecard-malformed",
                )

    @property
    def month(self) -> str:
        return month_of(self.start_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gtin": self.gtin,
            "lot": self.lot,
            "holder": self.holder,
            "org": self.org,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "status": self.status,
            "excursions": self.excursions,
            "degree_minutes": self.degree_minutes,
            "covered_ms": self.covered_ms,
            "leaves": list(self.leaves),
            "receipts": [[leaf, latency] for leaf, latency in self.receipts],
            "claims": [c.to_dict() for c in self.claims],
        }

    @classmethod
    def from_dict(cls, data: object) -> ShipmentRow:
        d = _mapping(data, "a row")
        try:
            receipts = tuple(_receipt(r) for r in _list(d.get("receipts", []), "receipts"))
            claims = tuple(
                Claim(_mapping(c, "a claim")["filed_ms"], c.get("resolved_ms"))
                for c in _list(d.get("claims", []), "a row's claims")
            )
            return cls(
                gtin=d["gtin"],
                lot=d["lot"],
                holder=d["holder"],
                org=d["org"],
                start_ms=d["start_ms"],
                end_ms=d["end_ms"],
                status=d["status"],
                excursions=d["excursions"],
                degree_minutes=d["degree_minutes"],
                covered_ms=d["covered_ms"],
                leaves=tuple(_list(d.get("leaves", []), "a row's leaves")),
                receipts=receipts,
                claims=claims,
            )
        except KeyError as e:
            raise FormatError(f"a row has no {e.args[0]!r}", code="scorecard-malformed") from e
        except TypeError as e:
            raise FormatError(f"a row is malformed: {e}", code="scorecard-malformed") from e


def _receipt(value: object) -> tuple[int, int]:
    pair = _list(value, "a receipt")
    if len(pair) != 2:
        raise FormatError("a receipt is [leaf, latency_ms]", code="scorecard-malformed")
    return _int(pair[0], "a receipt's leaf"), _int(pair[1], "a receipt's latency", lo=-_MAX_TIME_MS)


def rows_from_json(data: object) -> list[ShipmentRow]:
    rows = _list(data, "rows")
    if len(rows) > MAX_ROWS:
        raise FormatError(f"more than {MAX_ROWS} rows", code="scorecard-malformed")
    return [ShipmentRow.from_dict(r) for r in rows]


def month_of(t_ms: int) -> str:
    """The UTC calendar month of a time: ``"2026-11"``."""
    return (_EPOCH + timedelta(milliseconds=t_ms)).strftime("%Y-%m")


def median(values: Iterable[int]) -> int | None:
    """The median of integers: ``None`` for none; for an odd count the middle value of
    the sorted values; for an even count the mean of the two middle values rounded down
    (towards minus infinity: ``(a + b) // 2``), so it stays an exact integer."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    if n % 2:
        return ordered[n // 2]
    return (ordered[n // 2 - 1] + ordered[n // 2]) // 2


def _ratio(num: float, den: int, digits: int) -> float | None:
    return round(num / den, digits) if den else None


def figures(rows: Sequence[ShipmentRow]) -> dict[str, Any]:
    """The figures of one group of shipments (the module docstring defines each)."""
    n = len(rows)
    with_excursion = sum(1 for r in rows if r.excursions > 0)
    dm = math.fsum(r.degree_minutes for r in rows)
    custody = sum(r.end_ms - r.start_ms for r in rows)
    covered = sum(r.covered_ms for r in rows)
    latencies = [latency for r in rows for _, latency in r.receipts]
    claims = [c for r in rows for c in r.claims]
    resolved = [c.resolved_ms - c.filed_ms for c in claims if c.resolved_ms is not None]
    return {
        "shipments": n,
        "passed": sum(1 for r in rows if r.status == "pass"),
        "failed": sum(1 for r in rows if r.status == "fail"),
        "indeterminate": sum(1 for r in rows if r.status == "indeterminate"),
        "with_excursion": with_excursion,
        "excursion_rate": _ratio(with_excursion, n, 6),
        "excursions": sum(r.excursions for r in rows),
        "degree_minutes": round(dm, 3),
        "degree_minutes_per_shipment": _ratio(dm, n, 3),
        "custody_ms": custody,
        "covered_ms": covered,
        "completeness": _ratio(covered, custody, 6),
        "receipts": len(latencies),
        "median_receipt_ms": median(latencies),
        "claims": len(claims),
        "claims_resolved": len(resolved),
        "median_resolution_ms": median(resolved),
    }


def _grouped(rows: Iterable[ShipmentRow], key: Any) -> dict[str, list[ShipmentRow]]:
    out: dict[str, list[ShipmentRow]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return {k: out[k] for k in sorted(out)}


def scorecard(rows: Sequence[ShipmentRow]) -> dict[str, Any]:
    """Figures per organisation, per holder and per organisation and month."""
    return {
        "orgs": {org: figures(rs) for org, rs in _grouped(rows, lambda r: r.org).items()},
        "holders": {h: figures(rs) for h, rs in _grouped(rows, lambda r: r.holder).items()},
        "months": {
            org: {m: figures(ms) for m, ms in _grouped(rs, lambda r: r.month).items()}
            for org, rs in _grouped(rows, lambda r: r.org).items()
        },
    }


def _first_difference(stated: object, computed: object, path: str) -> str | None:
    if isinstance(computed, dict):
        if not isinstance(stated, dict):
            return path
        for k in sorted(set(computed) | set(stated)):
            if k not in computed or k not in stated:
                return f"{path}.{k}"
            found = _first_difference(stated[k], computed[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(stated, bool) != isinstance(computed, bool) or stated != computed:
        return path
    return None


def _lookup(doc: object, path: str) -> object:
    for part in path.split(".")[1:]:
        if not isinstance(doc, dict) or part not in doc:
            return "(absent)"
        doc = doc[part]
    return doc


def _check_checkpoint(checkpoint: Mapping[str, Any], log_vkeys: Sequence[str]) -> int:
    """The stated checkpoint size; its signed note (when present, and always when
    ``log_vkeys`` are pinned) must state the same size and root, signed by a pinned key."""
    size = _int(checkpoint.get("tree_size"), "the checkpoint's tree_size")
    note = checkpoint.get("note")
    if note is None:
        if log_vkeys:
            raise VerificationError(
                "the export names no signed checkpoint to check against the pinned log key",
                code="scorecard-unsigned-checkpoint",
            )
        return size
    if not isinstance(note, str):
        raise FormatError("the checkpoint's note must be text", code="scorecard-malformed")
    signed = SignedNote.parse(note)
    cp = Checkpoint.from_text(signed.text)
    if cp.size != size or cp.root.hex() != checkpoint.get("root"):
        raise VerificationError(
            "the checkpoint's size or root is not the one its signed note states",
            code="scorecard-checkpoint-mismatch",
        )
    if log_vkeys:
        signed.verify([NoteVerifier.from_vkey(k) for k in log_vkeys])
    return size


def verify_scorecard(doc: object, log_vkeys: Sequence[str] = ()) -> list[ShipmentRow]:
    """Check an export (``coldtrail-scorecard/1``): every row well formed, resting only on
    leaves inside the checkpoint it states, and every stated figure the one its rows give;
    with ``log_vkeys``, also that the checkpoint's note is signed by one of those keys.
    Returns the rows; raises :class:`FormatError` (``scorecard-malformed``) for an
    unreadable export and :class:`VerificationError` for a figure that does not follow
    (``scorecard-figure-mismatch``) or a row beyond the checkpoint
    (``scorecard-unanchored-row``)."""
    d = _mapping(doc, "a scorecard export")
    if d.get("format") != SCORECARD_FORMAT:
        raise FormatError(
            f"not a {SCORECARD_FORMAT} export: format {d.get('format')!r:.40}",
            code="scorecard-malformed",
        )
    size = _check_checkpoint(_mapping(d.get("checkpoint"), "the export's checkpoint"), log_vkeys)
    rows = rows_from_json(d.get("rows"))
    for i, r in enumerate(rows):
        beyond = [leaf for leaf in r.leaves if leaf >= size]
        if beyond:
            raise VerificationError(
                f"row {i} ({r.holder}, lot {r.lot}) rests on log leaf {beyond[0]}, beyond the"
                f" checkpoint of size {size} the export states",
                code="scorecard-unanchored-row",
            )
    computed = scorecard(rows)
    stated = d.get("figures")
    where = _first_difference(stated, computed, "figures")
    if where is not None:
        raise VerificationError(
            f"{where} does not follow from the rows: stated {_lookup(stated, where)!r:.60},"
            f" recomputed {_lookup(computed, where)!r:.60}",
            code="scorecard-figure-mismatch",
        )
    return rows
