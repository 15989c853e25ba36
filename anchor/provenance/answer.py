"""Provenance answers: custody from scans, readings joined to it, verdicts and proof bundles.

Pure logic over a :class:`~anchor.provenance.source.ProvenanceSource`: no sockets,
no HTML. ``anchor.http.pages`` turns the answers into pages and JSON.

How an answer is built (docs/provenance.md has the long version):

1. the scans that mention the subject (GTIN+lot, SSCC or GTIN+serial) become a
   **custody timeline**: packing/loading/receiving/storing at a holder (the
   scan's asset, else its read point) opens an interval there; unloading and
   shipping close it; inspecting is an event inside it;
2. the readings made on each holder during its interval are **aggregated**
   per quantity (count/min/max/mean, time above/below the product's range,
   excursions, silent periods); raw readings only go to callers entitled to them;
3. gaps, unsynchronised or implausible wall clocks and clock jumps found in the
   evidence are listed, and make the verdict *incomplete* rather than *pass*;
4. a **bounded** selection of records is proven in a bundle: every custody
   scan, every gap, the extremes of each interval, the first/peak/last reading
   of each excursion and an evenly spaced sample.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from anchor.errors import AnchorError
from anchor.ledger.model import Disposition, Product, StoredDocument
from anchor.ledger.rollups import Rollup
from anchor.provenance.evidence import (
    ClockEvidence,
    HolderEvidence,
    gather,
    point_of,
    widen,
)
from anchor.provenance.source import (
    BatchInfo,
    ProvenanceSource,
    ReadingPoint,
    ReadingQuery,
    ScanQuery,
    holder_of,
)
from proofs.bundle import BatchProof, build_bundle
from proofs.coldchain import (
    CHECKED_QUANTITY,
    CONTROLLED_COLD,
    Leg,
    LotVerdict,
    Profile,
    Reason,
    SensorFigures,
    Status,
    celsius,
    lot_verdict,
    sensor_id,
)
from proofs.coldchain import Excursion as CcExcursion
from proofs.coldchain import Gap as CcGap
from proofs.coldchain import Verdict as LegVerdict
from proofs.documents import BundleDocument, calibration_notes, lot_subject, sensor_spans
from proofs.merkle import MerkleTree
from proofs.records import Gap, Reading, Scan

__all__ = [
    "ANOMALY_KINDS",
    "ClockAnomaly",
    "ColdChainRange",
    "CompromisedUse",
    "CustodyInterval",
    "Excursion",
    "ProvenanceAnswer",
    "ProvenanceConfig",
    "QuantityStats",
    "Subject",
    "Verdict",
    "analyse_series",
    "answer_for_readings",
    "answer_for_subject",
    "assemble_bundle",
    "build_custody",
    "find_clock_anomalies",
    "find_compromised",
    "gs1_check_digit_ok",
    "parse_gs1_text",
    "parse_gtin",
    "parse_sscc",
]

# A wall clock before 2000-01-01 is a board that booted without RTC or NTP.
PLAUSIBLE_SINCE_MS = 946_684_800_000
_OPENING_STEPS = frozenset({"packing", "loading", "receiving", "storing"})
_CLOSING_STEPS = frozenset({"unloading", "shipping"})
ANOMALY_KINDS = ("unsynced-clock", "implausible-wall-clock", "clock-jump")
# GS1 General Specifications, figure 7.11-1: file-safe "CSET 82" for X..20 AIs such as lot.
_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")


# --- GS1 identifiers ------------------------------------------------------------


def gs1_check_digit_ok(digits: str) -> bool:
    """GS1 mod-10 check digit (GTIN, SSCC, GLN): weights 3,1,3,... from the right."""
    if not digits.isascii() or not digits.isdigit() or len(digits) < 2:
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def parse_gtin(text: str) -> str:
    """A GTIN-8/12/13/14 with a valid check digit, returned as GTIN-14 (as scans carry it)."""
    if not (text.isascii() and text.isdigit() and len(text) in (8, 12, 13, 14)):
        raise AnchorError("bad-gtin", "a GTIN is 8, 12, 13 or 14 digits")
    if not gs1_check_digit_ok(text):
        raise AnchorError("bad-gtin", "the GTIN's check digit is wrong")
    return text.rjust(14, "0")


def parse_sscc(text: str) -> str:
    if not (text.isascii() and text.isdigit() and len(text) == 18):
        raise AnchorError("bad-sscc", "an SSCC is 18 digits")
    if not gs1_check_digit_ok(text):
        raise AnchorError("bad-sscc", "the SSCC's check digit is wrong")
    return text


def parse_gs1_text(text: str, what: str) -> str:
    """A lot or serial: 1-20 characters of GS1 CSET 82, and never a path dot-segment."""
    if not _CSET82.fullmatch(text):
        raise AnchorError(f"bad-{what}", f"a {what} is 1-20 characters of the GS1 character set 82")
    # CSET 82 allows '.' and '/', so "../.." is a syntactically valid lot; it is
    # refused because no real lot looks like a path and it is what traversal probes send.
    if any(seg in ("", ".", "..") for seg in text.split("/")):
        raise AnchorError(
            "path-traversal", f"a {what} must not contain empty, '.' or '..' path segments"
        )
    return text


@dataclass(frozen=True, slots=True)
class Subject:
    """What a provenance query is about."""

    kind: Literal["lot", "sscc", "serial"]
    gtin: str | None = None
    lot: str | None = None
    sscc: str | None = None
    serial: str | None = None

    @classmethod
    def for_lot(cls, gtin: str, lot: str) -> Subject:
        return cls("lot", gtin=parse_gtin(gtin), lot=parse_gs1_text(lot, "lot"))

    @classmethod
    def for_serial(cls, gtin: str, serial: str) -> Subject:
        return cls("serial", gtin=parse_gtin(gtin), serial=parse_gs1_text(serial, "serial"))

    @classmethod
    def for_sscc(cls, sscc: str) -> Subject:
        return cls("sscc", sscc=parse_sscc(sscc))

    def scan_query(self) -> ScanQuery:
        if self.kind == "lot":
            return ScanQuery((("01", self.gtin or ""), ("10", self.lot or "")))
        if self.kind == "serial":
            return ScanQuery((("01", self.gtin or ""), ("21", self.serial or "")))
        return ScanQuery((("00", self.sscc or ""),))

    def digital_link(self) -> str:
        """The GS1 Digital Link path (percent-encoding left to the caller)."""
        if self.kind == "lot":
            return f"/01/{self.gtin}/10/{self.lot}"
        if self.kind == "serial":
            return f"/01/{self.gtin}/21/{self.serial}"
        return f"/00/{self.sscc}"

    def query_params(self) -> dict[str, str]:
        if self.kind == "lot":
            return {"gtin": self.gtin or "", "lot": self.lot or ""}
        if self.kind == "serial":
            return {"gtin": self.gtin or "", "serial": self.serial or ""}
        return {"sscc": self.sscc or ""}

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, **self.query_params()}


# --- configuration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColdChainRange:
    """The allowed range of one quantity, e.g. 2-8 °C (chilled) or <= -18 °C (frozen)."""

    low: float | None
    high: float | None
    q: str = "temperature"
    unit: str = "CEL"

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ValueError("a cold-chain range needs a low or a high bound")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("a cold-chain range's low bound is above its high bound")

    @classmethod
    def of(cls, profile: Profile) -> ColdChainRange:
        """The labelled range of a profile (what a reading outside is an excursion of)."""
        return cls(profile.low_c, profile.high_c)

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def describe(self) -> str:
        unit = "°C" if self.unit == "CEL" else self.unit
        if self.low is not None and self.high is not None:
            return f"{_num(self.low)} to {_num(self.high)} {unit}"
        if self.high is not None:
            return f"at most {_num(self.high)} {unit}"
        return f"at least {_num(self.low or 0)} {unit}"

    def to_json(self) -> dict[str, Any]:
        return {"q": self.q, "unit": self.unit, "low": self.low, "high": self.high}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True, slots=True)
class ProvenanceConfig:
    """Bounds and defaults of provenance answers; units in the names.

    A lot is judged by its product's registered profile (anchor.ledger.products), else
    ``profile_by_gtin`` (the config file's), else ``default_profile``."""

    default_profile: Profile = CONTROLLED_COLD
    profile_by_gtin: dict[str, Profile] = field(default_factory=dict)
    max_scans: int = 1_000
    max_readings_per_interval: int = 200_000
    max_gaps: int = 500
    max_anomalies_listed: int = 50
    clock_jump_tolerance_ms: int = 60_000
    # An open custody (no closing scan yet) is judged up to now minus this: readings
    # reach the anchor in batches, so the last minutes are not yet a gap.
    open_custody_grace_s: int = 3_600
    # A bundle proves every reading the verdict rests on up to this many (so that
    # coldtrail-verify and the page recompute it); above, a sample, and says so.
    bundle_max_readings: int = 5_000
    proof_sample_per_interval: int = 24
    proof_max_excursions: int = 50
    chart_max_points: int = 480
    # Excursions and gaps listed per interval in answers and pages (all are counted).
    max_listed_per_interval: int = 200
    raw_page_max: int = 10_000
    raw_page_default: int = 1_000
    use_rollups: bool = True  # hours without checked readings from rollups (evidence.py)
    # A logger without a calibration certificate valid over its readings makes the
    # verdict indeterminate (else the verdict only says so: proofs.documents).
    require_calibration: bool = False

    @property
    def default_range(self) -> ColdChainRange:
        return ColdChainRange.of(self.default_profile)

    def profile_for(self, gtin: str | None, source: ProvenanceSource | None = None) -> Profile:
        if gtin and source is not None:
            product = source.product(gtin)
            if product is not None and product.profile:
                row = source.profile(product.profile)
                if row is not None:
                    return Profile.from_dict(json.loads(row.body))
        return self.profile_by_gtin.get(gtin or "", self.default_profile)

    def range_for(self, gtin: str | None, source: ProvenanceSource | None = None) -> ColdChainRange:
        return ColdChainRange.of(self.profile_for(gtin, source))


# --- custody ---------------------------------------------------------------------


@dataclass(slots=True)
class CustodyInterval:
    """The subject was held by ``holder`` from ``start`` until ``end`` (None: still there)."""

    holder: str
    opened_by: Scan
    closed_by: Scan | None = None
    events: list[Scan] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.opened_by.t

    @property
    def end(self) -> int | None:
        return self.closed_by.t if self.closed_by else None


def build_custody(scans: Sequence[Scan]) -> tuple[list[CustodyInterval], list[Scan]]:
    """Custody intervals from scans in time order, and the scans outside any interval.

    Opening steps at the current holder only add an event (a re-scan is not a
    transfer); at another holder they close the current interval and open one
    there. Unloading at the current holder closes it (the lot is in transit
    until the next scan); unloading at another holder is a hand-over into it, and
    further unloading scans there (the other cases of the same pallet) are events
    of that hand-over, not its end.
    """
    intervals: list[CustodyInterval] = []
    loose: list[Scan] = []
    current: CustodyInterval | None = None
    for scan in sorted(scans, key=lambda s: (s.t, s.gw, s.seq)):
        holder = holder_of(scan)
        if scan.step in _OPENING_STEPS or (
            scan.step == "unloading" and current is not None and current.holder != holder
        ):
            if current is not None and current.holder == holder:
                current.events.append(scan)
                continue
            if current is not None:
                current.closed_by = scan
            current = CustodyInterval(holder, scan)
            intervals.append(current)
        elif scan.step in _CLOSING_STEPS:
            if (
                current is not None
                and current.holder == holder
                and scan.step == "unloading"
                and current.opened_by.step == "unloading"
            ):
                current.events.append(scan)
            elif current is not None and current.holder == holder:
                current.closed_by = scan
                current = None
            else:
                loose.append(scan)
        elif current is not None:
            current.events.append(scan)
        else:
            loose.append(scan)
    return intervals, loose


# --- readings ---------------------------------------------------------------------


@dataclass(slots=True)
class Excursion:
    """A run of consecutive out-of-range readings of one sensor."""

    src: str
    start: int
    end: int  # the first reading back in range, or the last one out of it
    count: int
    peak: ReadingPoint
    first: ReadingPoint
    last: ReadingPoint

    def to_json(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "from": self.start,
            "to": self.end,
            "count": self.count,
            "peak": self.peak.val,
            "peak_t": self.peak.t,
        }


@dataclass(slots=True)
class QuantityStats:
    q: str
    unit: str
    count: int = 0
    min: ReadingPoint | None = None
    max: ReadingPoint | None = None
    total: float = 0.0
    above_ms: int = 0
    below_ms: int = 0

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def add(self, p: ReadingPoint) -> None:
        self.count += 1
        self.total += p.val
        self._extremes(p)

    def _extremes(self, p: ReadingPoint) -> None:
        # Ties go to the earliest reading, in whatever order readings are seen.
        if self.min is None or _low_key(p) < _low_key(self.min):
            self.min = p
        if self.max is None or _high_key(p) < _high_key(self.max):
            self.max = p

    def add_rollup(self, r: Rollup) -> None:
        """An hour of one sensor, counted from its rollup (its named readings are read
        only when one may be a new extreme)."""
        self.count += r.n
        self.total += r.total
        # An equal value wins only if it can be earlier: the hour starts before it.
        lo, hi = self.min, self.max
        if lo is None or r.min_val < lo.val or (r.min_val == lo.val and r.first_t <= lo.t):
            self._extremes(point_of(r, r.min))
        if hi is None or r.max_val > hi.val or (r.max_val == hi.val and r.first_t <= hi.t):
            self._extremes(point_of(r, r.max))

    def merge(self, other: QuantityStats) -> None:
        self.count += other.count
        self.total += other.total
        self.above_ms += other.above_ms
        self.below_ms += other.below_ms
        for p in (other.min, other.max):
            if p is not None:
                self._extremes(p)

    def to_json(self) -> dict[str, Any]:
        mean = self.mean
        return {
            "q": self.q,
            "unit": self.unit,
            "count": self.count,
            "min": self.min.val if self.min else None,
            "max": self.max.val if self.max else None,
            "mean": round(mean, 3) if mean is not None else None,
            "time_above_ms": self.above_ms,
            "time_below_ms": self.below_ms,
        }


def _low_key(p: ReadingPoint) -> tuple[float, int, str, int]:
    return p.val, p.t, p.gw, p.seq


def _high_key(p: ReadingPoint) -> tuple[float, int, str, int]:
    return -p.val, p.t, p.gw, p.seq


@dataclass(slots=True)
class SeriesAnalysis:
    stats: dict[str, QuantityStats] = field(default_factory=dict)
    excursions: list[Excursion] = field(default_factory=list)


def analyse_series(
    points: Sequence[ReadingPoint],
    checked: ColdChainRange,
    start: int,
    end: int,
    *,
    summaries: Sequence[Rollup] = (),
) -> SeriesAnalysis:
    """Aggregates per quantity (count, min, max, mean) of readings in [start, end), and
    the runs of out-of-range readings of each sensor (the records a bundle proves when it
    cannot prove them all). Time out of range, durations, MKT and gaps are the verdict
    engine's (proofs.coldchain). ``summaries`` are whole hours given as rollups instead of
    ``points``: only hours without a reading of the checked quantity (evidence.py)."""
    out = SeriesAnalysis()
    by_series: dict[tuple[str, str, str], list[ReadingPoint]] = defaultdict(list)
    earliest: dict[str, tuple[int, str, int]] = {}
    for p in points:
        by_series[(p.q, p.gw, p.src)].append(p)
        stats = out.stats.get(p.q)
        if stats is None:
            stats = out.stats[p.q] = QuantityStats(p.q, p.unit)
            earliest[p.q] = (p.t, p.gw, p.seq)
        stats.add(p)
    for r in summaries:
        k = r.key
        stats = out.stats.get(k.q)
        if stats is None:
            stats = out.stats[k.q] = QuantityStats(k.q, r.unit)
        first = point_of(r, r.first)
        if k.q not in earliest or (first.t, first.gw, first.seq) < earliest[k.q]:
            earliest[k.q] = (first.t, first.gw, first.seq)
            stats.unit = r.unit
        stats.add_rollup(r)
    if summaries:  # quantities in the order their first reading came, as from points alone
        out.stats = {q: out.stats[q] for q in sorted(out.stats, key=earliest.__getitem__)}
    for (q, _gw, src), series in by_series.items():
        if q != checked.q:
            continue
        series.sort(key=lambda p: (p.t, p.seq))
        run: list[ReadingPoint] = []
        for p in series:
            if not checked.contains(p.val):
                run.append(p)
            elif run:
                out.excursions.append(_excursion(src, run, checked, p.t))
                run = []
        if run:
            out.excursions.append(_excursion(src, run, checked, run[-1].t))
    out.excursions.sort(key=lambda e: e.start)
    return out


def _excursion(src: str, run: list[ReadingPoint], r: ColdChainRange, end: int) -> Excursion:
    def distance(p: ReadingPoint) -> float:
        if r.high is not None and p.val > r.high:
            return p.val - r.high
        if r.low is not None and p.val < r.low:
            return r.low - p.val
        return 0.0

    peak = max(run, key=distance)
    return Excursion(src, run[0].t, end, len(run), peak, run[0], run[-1])


@dataclass(frozen=True, slots=True)
class ClockAnomaly:
    kind: str  # one of ANOMALY_KINDS
    gw: str
    seq: int
    t: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "gw": self.gw,
            "seq": self.seq,
            "t": self.t,
            "detail": self.detail,
        }


def find_clock_anomalies(
    points: Iterable[ReadingPoint | Scan], tolerance_ms: int
) -> list[ClockAnomaly]:
    """Records whose own clock evidence undermines their wall-clock time.

    Within one boot, CLOCK_MONOTONIC cannot lie about elapsed time; when the
    wall clock moved more than ``tolerance_ms`` away from it between two
    consecutive records, the later record's time is suspect.
    """
    found: list[ClockAnomaly] = []
    by_boot: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
    for p in points:
        if isinstance(p, Scan):
            gw, seq, t, sync, boot, mono = p.gw, p.seq, p.t, p.clk.sync, p.clk.boot, p.clk.mono_us
        else:
            gw, seq, t, sync, boot, mono = p.gw, p.seq, p.t, p.sync, p.boot, p.mono_us
        if t < PLAUSIBLE_SINCE_MS:
            found.append(
                ClockAnomaly(
                    "implausible-wall-clock", gw, seq, t, "the wall clock was before the year 2000"
                )
            )
        elif not sync:
            found.append(
                ClockAnomaly(
                    "unsynced-clock", gw, seq, t, "the gateway's clock was not NTP-synchronised"
                )
            )
        by_boot[(gw, boot)].append((mono, seq, t))
    for (gw, _boot), rows in by_boot.items():
        rows.sort()
        for (m0, _s0, t0), (m1, s1, t1) in itertools.pairwise(rows):
            drift = (t1 - t0) - (m1 - m0) // 1_000
            if abs(drift) > tolerance_ms:
                found.append(
                    ClockAnomaly(
                        "clock-jump",
                        gw,
                        s1,
                        t1,
                        f"the wall clock moved {drift / 1000:+.0f} s against the monotonic clock",
                    )
                )
    found.sort(key=lambda a: (a.t, a.gw, a.seq))
    return found


# --- verdict ---------------------------------------------------------------------


_LABELS = {
    "pass": "Kept within its profile",
    "fail": "Out of its profile",
    "indeterminate": "Not enough evidence to say",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The lot's verdict by the one engine (:func:`proofs.coldchain.lot_verdict`): the
    readings of every sensor in every custody leg under the product's profile, and notes
    from evidence beside the readings (signed gaps, clocks, compromised keys, limits)."""

    lot: LotVerdict
    profile: Profile
    complete: bool = True  # every checked reading the verdict rests on is in the bundle
    readings: int = 0  # checked readings the verdict used

    @property
    def status(self) -> Status:
        return self.lot.status

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(r.message for r in self.lot.reasons if r.status != "pass" or r.code)

    def label(self) -> str:
        return _LABELS[self.status]

    def claim(self) -> dict[str, Any]:
        """What a bundle's subject carries: recomputable by ``coldtrail-verify``."""
        return {**self.lot.to_dict(), "complete": self.complete, "readings": self.readings}

    def to_json(self) -> dict[str, Any]:
        lot = self.lot
        return {
            "status": self.status,
            "label": self.label(),
            "reasons": [r.to_dict() for r in lot.reasons],
            "rules": lot.rules_version,
            "profile": {**self.profile.to_dict(), "digest": lot.profile_digest},
            "mkt_c": lot.mkt_c,
            "time_out_of_range_ms": lot.time_out_of_range_ms,
            "excursion_count": sum(len(s.excursions) for _, v in lot.legs for s in v.sensors),
            "readings": self.readings,
            "complete": self.complete,
        }


# --- answers ----------------------------------------------------------------------


@dataclass(slots=True)
class IntervalAnswer:
    custody: CustodyInterval
    end: int  # effective end used for the join (now, for an open interval)
    analysis: SeriesAnalysis
    truncated: bool
    evidence: HolderEvidence
    listed_max: int = 200
    counts: dict[str, int] = field(default_factory=dict)  # readings used, by gateway
    verdict: LegVerdict | None = None  # the engine's figures for this leg
    _points: list[ReadingPoint] | None = field(default=None, repr=False)

    @property
    def points(self) -> list[ReadingPoint]:
        """Every reading read, and the named readings of each rollup used (charts);
        built when first asked for: the JSON answer never needs them."""
        if self._points is None:
            ev = self.evidence
            self._points = ev.representatives() if ev.summaries else ev.points
        return self._points

    def sensors(self) -> tuple[SensorFigures, ...]:
        return self.verdict.sensors if self.verdict is not None else ()

    def excursions(self) -> list[tuple[str, CcExcursion]]:
        """Every excursion of every sensor here, in time order: ``(sensor, excursion)``."""
        found = [(f.sensor, e) for f in self.sensors() for e in f.excursions]
        return sorted(found, key=lambda se: (se[1].start_ms, se[0]))

    def coverage_gaps(self) -> list[tuple[str, CcGap]]:
        found = [(f.sensor, g) for f in self.sensors() for g in f.completeness.gaps]
        return sorted(found, key=lambda sg: (sg[1].start_ms, sg[0]))

    def to_json(self) -> dict[str, Any]:
        c = self.custody
        return {
            "holder": c.holder,
            "from": c.start,
            "to": c.end,
            "opened_by": _scan_json(c.opened_by),
            "closed_by": _scan_json(c.closed_by) if c.closed_by else None,
            "events": [_scan_json(s) for s in c.events],
            "stats": [s.to_json() for s in self.analysis.stats.values()],
            "sensors": [_sensor_json(f, self.listed_max) for f in self.sensors()],
            "excursion_count": len(self.excursions()),
            "coverage_gap_count": sum(len(f.completeness.gaps) for f in self.sensors()),
            "truncated": self.truncated,
        }


def _sensor_json(f: SensorFigures, listed_max: int) -> dict[str, Any]:
    """A sensor's figures for an answer: the engine's, excursions and gaps bounded."""
    doc = f.to_dict()
    doc["excursions"] = doc["excursions"][:listed_max]
    doc["gaps"] = doc["gaps"][:listed_max]
    doc["excursion_count"] = len(f.excursions)
    doc["gap_count"] = len(f.completeness.gaps)
    return doc


def _scan_json(s: Scan) -> dict[str, Any]:
    return {
        "gw": s.gw,
        "seq": s.seq,
        "t": s.t,
        "step": s.step,
        "holder": holder_of(s),
        "rp": s.rp,
        "asset": s.asset,
    }


@dataclass(slots=True)
class ProvenanceAnswer:
    subject: Subject | None
    checked: ColdChainRange
    intervals: list[IntervalAnswer]
    loose_scans: list[Scan]
    overall: dict[str, QuantityStats]
    verdict: Verdict
    gaps: list[Gap]
    anomalies: list[ClockAnomaly]
    anomaly_count: int
    proof_keys: list[tuple[str, int]]
    scans_truncated: bool = False
    compromised: list[CompromisedUse] = field(default_factory=list)
    product: Product | None = None  # the GTIN's master data, if registered
    anomaly_summary: str = ""  # every anomaly, summarised per kind (summarise_anomalies)
    dispositions: list[Disposition] = field(default_factory=list)  # oldest first
    # Documents behind the lot (calibration certificates, ...): anchor.ledger.documents.
    documents: list[StoredDocument] = field(default_factory=list)
    now_ms: int = 0  # when the answer was made (a document's status is at this time)

    def dispositions_json(self) -> list[dict[str, Any]]:
        return [
            {"n": d.n, "disposition": d.disposition, "cause": d.cause, "rule": d.rule,
             "status": d.status, "custodian": d.custodian, "owner": d.owner, "by": d.by,
             "reason": d.reason, "at": d.at}
            for d in self.dispositions
        ]  # fmt: skip

    def documents_json(self, now_ms: int) -> list[dict[str, Any]]:
        """Each document's entry, what it is, and whether it is valid now."""
        return [
            {**d.entry.to_dict(), "label": d.entry.label, "status": d.entry.status_at(now_ms)}
            for d in self.documents
        ]

    def bundle_documents(self, attest: Callable[[bytes], bytes] | None) -> list[dict[str, Any]]:
        """What a bundle's subject carries: each entry, its chunk hashes and a signature
        by the log key that signs the bundle (proofs.documents.bundle_documents checks
        them). In a consortium an entry was signed by the member that attached it; the
        serving node, which checked that signature when it applied the entry, signs it
        again with its own log key, so the bundle's reader needs only that key."""
        out = []
        for d in self.documents:
            sig = (
                base64.b64encode(attest(d.entry.statement())).decode()
                if attest is not None
                else d.attestation
            )
            out.append(BundleDocument(d.entry, d.chunks, sig).to_dict())
        return out

    def product_json(self) -> dict[str, Any] | None:
        p = self.product
        if p is None:
            return None
        return {"gtin": p.gtin, "name": p.name, "description": p.description, "pack": p.pack,
                "unit": p.unit, "owner": p.org_id}  # fmt: skip

    @property
    def all_points(self) -> list[ReadingPoint]:
        return [p for i in self.intervals for p in i.points]

    def excursions(self) -> list[tuple[str, CcExcursion]]:
        return [e for i in self.intervals for e in i.excursions()]

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject.to_json() if self.subject else None,
            "range": self.checked.to_json(),
            "verdict": self.verdict.to_json(),
            "product": self.product_json(),
            "disposition": self.dispositions_json()[-1] if self.dispositions else None,
            "disposition_history": self.dispositions_json(),
            "documents": self.documents_json(self.now_ms),
            "timeline": [i.to_json() for i in self.intervals],
            "other_scans": [_scan_json(s) for s in self.loose_scans],
            "stats": [s.to_json() for s in self.overall.values()],
            "gaps": [
                {
                    "gw": g.gw,
                    "seq": g.seq,
                    "t": g.t,
                    "reason": g.reason,
                    "detail": g.detail,
                    "count": g.count,
                    "asset": holder_of(g),
                }
                for g in self.gaps
            ],
            "clock_anomalies": [a.to_json() for a in self.anomalies],
            "clock_anomaly_count": self.anomaly_count,
            "scans_truncated": self.scans_truncated,
            "proven_records": len(self.proof_keys),
            "compromised": [c.to_json() for c in self.compromised],
        }


@dataclass(frozen=True, slots=True)
class CompromisedUse:
    """Records an answer uses from a gateway after its compromise time: logged before
    the revocation was recorded, so kept (the log is append-only), and said so."""

    gw: str
    since: int  # the compromise time the revocation gave, ms
    records: int

    def reason(self) -> str:
        return (
            f"{self.records} record(s) from gateway {self.gw} were anchored after its key"
            f" was compromised ({fmt_ms(self.since)}) and may be forged"
        )

    def to_json(self) -> dict[str, Any]:
        return {"gw": self.gw, "compromised_since": self.since, "records": self.records}


_MAX_COMPROMISED_BATCHES = 10_000


def find_compromised(
    source: ProvenanceSource, used: Iterable[tuple[str, int]]
) -> list[CompromisedUse]:
    """Which of the ``(gw, seq)`` records used come from batches of a revoked gateway
    accepted at or after its compromise time."""
    by_gw: dict[str, list[int]] = defaultdict(list)
    for gw, seq in used:
        by_gw[gw].append(seq)
    out: list[CompromisedUse] = []
    for gw in sorted(by_gw):
        info = source.gateway(gw)
        if info is None or info.revoked_at is None:
            continue
        ranges = source.compromised_ranges(gw, info.revoked_at, _MAX_COMPROMISED_BATCHES)
        if not ranges:
            continue
        n = sum(1 for seq in by_gw[gw] if any(a <= seq <= b for a, b in ranges))
        if n:
            out.append(CompromisedUse(gw, info.revoked_at, n))
    return out


def fmt_ms(t: int) -> str:
    return datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def answer_for_subject(
    source: ProvenanceSource,
    subject: Subject,
    config: ProvenanceConfig,
    now_ms: int,
    *,
    use_rollups: bool | None = None,
) -> ProvenanceAnswer:
    """The whole provenance answer for a lot, SSCC or serial: bounded by ``config``.

    Whole hours without a reading of the checked quantity are taken from the ledger's
    rollups (:mod:`anchor.provenance.evidence`); ``use_rollups=False`` (default: the
    config's) reads every reading, which gives the same answer (the bench's reference)."""
    profile = config.profile_for(subject.gtin, source)
    checked = ColdChainRange.of(profile)
    scans = source.scans(subject.scan_query(), config.max_scans + 1)
    scans_truncated = len(scans) > config.max_scans
    scans = scans[: config.max_scans]
    custody, loose = build_custody(scans)
    evidence = [
        gather(
            source,
            c.holder,
            c.start,
            c.end if c.end is not None else max(now_ms, c.start),
            checked_q=checked.q,
            budget=config.max_readings_per_interval,
            use_rollups=config.use_rollups if use_rollups is None else use_rollups,
        )
        for c in custody
    ]
    holders = sorted({c.holder for c in custody})
    # Readings stamped with a 1970 wall clock fall outside every time window; look
    # for them on the same holders so a lost clock is shown, not silently dropped.
    # They belong to this custody if they come from a boot seen during it, or from a
    # holder that has no placeable reading at all (its clock may have been lost throughout).
    boots = {(p.gw, p.boot) for ev in evidence for p in ev.points}
    boots |= {(r.key.gw, r.boot or "") for ev in evidence for r in ev.summaries}
    boots |= {(s.gw, s.clk.boot) for s in scans}
    silent_holders = {ev.holder for ev in evidence if not ev.readings()}
    stray = [
        p
        for h in holders
        for p in source.readings(ReadingQuery(asset=h, t_to=PLAUSIBLE_SINCE_MS), 100)
        if (p.gw, p.boot) in boots or h in silent_holders
    ]
    _settle_rollups(source, evidence, [*stray, *scans], config.clock_jump_tolerance_ms)
    legs = [
        _leg(c, ev, checked.q, now_ms - config.open_custody_grace_s * 1000)
        for c, ev in zip(custody, evidence, strict=True)
    ]
    gws = sorted({gw for ev in evidence for gw in ev.counts_by_gateway()} | {s.gw for s in scans})
    t_from = custody[0].start if custody else 0
    t_to = max((ev.end for ev in evidence), default=0) + 1
    gaps = source.gaps(holders, gws, t_from, t_to, config.max_gaps) if custody else []
    # Hours taken from rollups hold no clock anomaly (evidence.py): only what was read.
    anomalies = find_clock_anomalies(
        [*stray, *scans, *(p for ev in evidence for p in ev.points)],
        config.clock_jump_tolerance_ms,
    )
    # Revoked gateways' hours are never summarised (_settle_rollups): the readings read
    # one by one are all the records of theirs this answer uses.
    used = {(p.gw, p.seq) for ev in evidence for p in ev.points}
    used |= {(s.gw, s.seq) for s in scans} | {(g.gw, g.seq) for g in gaps}
    compromised = find_compromised(source, used)
    notes = _notes(evidence, gaps, anomalies, compromised, scans_truncated)
    lot = lot_verdict(legs, profile, notes)
    product = source.product(subject.gtin) if subject.gtin else None
    spans = sensor_spans(lot.to_dict())
    documents = source.documents_about(_document_subjects(subject, spans, holders, product))
    lot = lot.with_notes(
        calibration_notes(
            spans,
            [d.entry for d in documents],
            "indeterminate" if config.require_calibration else "pass",
        )
    )
    intervals: list[IntervalAnswer] = []
    for c, ev, leg, (_, judged) in zip(custody, evidence, legs, lot.legs, strict=True):
        analysis = analyse_series(ev.points, checked, c.start, ev.end, summaries=ev.summaries)
        stats = analysis.stats.get(checked.q)
        if stats is not None:  # time out of range: the engine's, the worst sensor's
            stats.above_ms = max((f.time_above_ms for f in judged.sensors), default=0)
            stats.below_ms = max((f.time_below_ms for f in judged.sensors), default=0)
        intervals.append(
            IntervalAnswer(
                c,
                leg.end_ms,
                analysis,
                ev.truncated,
                ev,
                config.max_listed_per_interval,
                ev.counts_by_gateway(),
                verdict=judged,
            )
        )
    overall: dict[str, QuantityStats] = {}
    for ia in intervals:
        for q, stats in ia.analysis.stats.items():
            overall.setdefault(q, QuantityStats(q, stats.unit)).merge(stats)
    checked_keys = [
        (p.gw, p.seq) for ev, leg in zip(evidence, legs, strict=True) for p in _leg_points(ev, leg)
    ]
    complete = len(checked_keys) <= config.bundle_max_readings and not any(
        ev.truncated for ev in evidence
    )
    keys = choose_proof_records(intervals, scans, gaps, config)
    if complete:
        keys = sorted(set(keys) | set(checked_keys))
    verdict = Verdict(lot, profile, complete, len(checked_keys))
    return ProvenanceAnswer(
        subject=subject,
        checked=checked,
        intervals=intervals,
        loose_scans=loose,
        overall=overall,
        verdict=verdict,
        gaps=gaps,
        anomalies=anomalies[: config.max_anomalies_listed],
        anomaly_count=len(anomalies),
        proof_keys=keys,
        scans_truncated=scans_truncated,
        compromised=compromised,
        product=product,
        documents=documents,
        now_ms=now_ms,
        anomaly_summary=summarise_anomalies(anomalies) if anomalies else "",
        dispositions=(
            source.dispositions(subject.gtin, subject.lot)
            if subject.kind == "lot" and subject.gtin and subject.lot
            else []
        ),
    )


def _document_subjects(
    subject: Subject,
    spans: Mapping[str, tuple[int, int]],
    holders: Sequence[str],
    product: Product | None,
) -> list[tuple[str, str]]:
    """What documents behind a lot may be about: the lot, its product's owner, the
    places that held it, and every logger (and its gateway) whose readings it uses."""
    found: list[tuple[str, str]] = []
    if subject.kind == "lot" and subject.gtin and subject.lot:
        found.append(("lot", lot_subject(subject.gtin, subject.lot)))
    if product is not None:
        found.append(("organisation", product.org_id))
    found += [("asset", h) for h in holders]
    for sensor in spans:
        found += [("sensor", sensor), ("gateway", sensor.rsplit("/", 1)[0])]
    return list(dict.fromkeys(found))


def _in_leg(p: ReadingPoint, q: str, leg: Leg) -> bool:
    return p.q == q and leg.start_ms <= p.t < leg.end_ms and celsius(p.val, p.unit) is not None


def _leg_points(ev: HolderEvidence, leg: Leg) -> list[ReadingPoint]:
    return [p for p in ev.points if _in_leg(p, CHECKED_QUANTITY, leg)]


def _leg(c: CustodyInterval, ev: HolderEvidence, q: str, open_until: int) -> Leg:
    """A custody interval as the engine's leg: its checked readings in °C per sensor.
    An open interval (no closing scan) ends at ``open_until`` (now less the upload
    grace), or just after its last reading if that is later."""
    points = [p for p in ev.points if p.q == q]
    if c.end is not None:
        end = max(c.end, c.start + 1)
    else:
        last = max((p.t for p in points if p.t >= c.start), default=c.start)
        end = max(open_until, last + 1, c.start + 1)
    readings: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        value = celsius(p.val, p.unit)
        if value is not None and c.start <= p.t < end:
            readings[sensor_id(p.gw, p.src)].append((p.t, value))
    return Leg(c.holder, c.start, end, dict(readings))


def _notes(
    evidence: Sequence[HolderEvidence],
    gaps: Sequence[Gap],
    anomalies: Sequence[ClockAnomaly],
    compromised: Sequence[CompromisedUse],
    scans_truncated: bool,
) -> list[Reason]:
    """What casts doubt on a verdict beside the readings: never better than indeterminate."""
    notes: list[Reason] = []
    for ev in evidence:
        if ev.truncated:
            notes.append(
                Reason(
                    "too-many-readings",
                    "indeterminate",
                    f"too many readings at {ev.holder}; only the first were used",
                )
            )
    if gaps:
        notes.append(
            Reason(
                "signed-gap",
                "indeterminate",
                f"{len(gaps)} signed gap record(s): the gateways involved say they lost readings",
            )
        )
    if anomalies:
        notes.append(Reason("clock-evidence", "indeterminate", summarise_anomalies(anomalies)))
    for c in compromised:
        notes.append(Reason("compromised-gateway", "indeterminate", c.reason()))
    if scans_truncated:
        notes.append(
            Reason("too-many-scans", "indeterminate", "too many scans; only the first were used")
        )
    return notes


def summarise_anomalies(anomalies: Sequence[ClockAnomaly]) -> str:
    """One sentence per kind: "718 records from 3 gateways without NTP; ..."."""
    parts = []
    words = {
        "unsynced-clock": "without NTP",
        "implausible-wall-clock": "with a wall clock before 2000",
        "clock-jump": "after a clock jump",
    }
    for kind in ANOMALY_KINDS:
        mine = [a for a in anomalies if a.kind == kind]
        if mine:
            gws = len({a.gw for a in mine})
            parts.append(
                f"{len(mine)} record(s) from {gws} gateway{'s' if gws != 1 else ''} {words[kind]}"
            )
    return "; ".join(parts) + ": their times may be wrong"


def _settle_rollups(
    source: ProvenanceSource,
    evidence: Sequence[HolderEvidence],
    others: Sequence[ReadingPoint | Scan],
    tolerance_ms: int,
) -> None:
    """Read one by one the hours whose rollups the whole answer cannot rely on.

    Two facts span intervals: a gateway's clock (the offsets of one boot over every
    hour and scan the answer uses must stay within the jump tolerance), and revocation
    (an answer counts exactly which records of a revoked gateway it uses).
    """
    if not any(ev.summaries for ev in evidence):
        return
    clocks = ClockEvidence()
    for ev in evidence:
        for r in ev.summaries:
            assert r.boot is not None  # an hour spanning a reboot is never summarised
            clocks.add(r.key.gw, r.boot, r.offset_lo_us, r.offset_hi_us)
        for p in ev.points:
            clocks.add_point(p.gw, p.boot, p.t, p.mono_us)
    for o in others:  # scans, and readings with a pre-2000 wall clock
        if isinstance(o, Scan):
            clocks.add_point(o.gw, o.clk.boot, o.t, o.clk.mono_us)
        else:
            clocks.add_point(o.gw, o.boot, o.t, o.mono_us)
    jumpy = clocks.too_wide(tolerance_ms)
    gws = {r.key.gw for ev in evidence for r in ev.summaries}
    revoked = {gw for gw in gws if (g := source.gateway(gw)) is not None and g.revoked_at}
    if jumpy or revoked:
        widen(
            source,
            evidence,
            lambda r: r.key.gw in revoked or (r.key.gw, r.boot or "") in jumpy,
        )


def answer_for_readings(
    source: ProvenanceSource, query: ReadingQuery, config: ProvenanceConfig, checked: ColdChainRange
) -> tuple[dict[str, QuantityStats], list[ClockAnomaly], bool]:
    """Aggregates for a gateway/sensor/time-range query (no custody), bounded like a lot's."""
    points = source.readings(query, config.max_readings_per_interval + 1)
    truncated = len(points) > config.max_readings_per_interval
    points = points[: config.max_readings_per_interval]
    end = points[-1].t + 1 if points else query.t_from
    analysis = analyse_series(points, checked, query.t_from if points else end, end)
    anomalies = find_clock_anomalies(points, config.clock_jump_tolerance_ms)
    return analysis.stats, anomalies, truncated


# --- which records a bundle proves ------------------------------------------------------


def choose_proof_records(
    intervals: Sequence[IntervalAnswer],
    scans: Sequence[Scan],
    gaps: Sequence[Gap],
    config: ProvenanceConfig,
) -> list[tuple[str, int]]:
    """A bounded set of records whose proofs back every value the answer shows.

    Every custody scan and gap record; per interval and quantity the min and max
    reading (so the browser can re-check the extremes and the verdict exactly);
    first, peak and last reading of up to ``proof_max_excursions`` excursions; and
    ``proof_sample_per_interval`` readings evenly spaced in time for the chart.
    At most ~(2 + 3*50 + 24) readings per interval, whatever the lot's size.
    """
    keys: set[tuple[str, int]] = {(s.gw, s.seq) for s in scans}
    keys.update((g.gw, g.seq) for g in gaps)
    for ia in intervals:
        for stats in ia.analysis.stats.values():
            for p in (stats.min, stats.max):
                if p is not None:
                    keys.add((p.gw, p.seq))
        for e in ia.analysis.excursions[: config.proof_max_excursions]:
            keys.update(
                {(e.first.gw, e.first.seq), (e.peak.gw, e.peak.seq), (e.last.gw, e.last.seq)}
            )
        keys.update(ia.evidence.sample_keys(config.proof_sample_per_interval))
    return sorted(keys)


@dataclass(slots=True)
class BundleResult:
    bundle: dict[str, Any] | None
    proven: int
    unproven: int  # chosen records whose batch is not yet in a signed checkpoint


def lot_bundle_subject(
    answer: ProvenanceAnswer, attest: Callable[[bytes], bytes] | None
) -> dict[str, Any]:
    """The attested subject of a lot's (serial's, SSCC's) bundle: its GS1 keys, and what
    ``coldtrail-verify`` and the page recompute from the records proven: the profile, the
    verdict with every figure it rests on, and the documents behind it."""
    assert answer.subject is not None
    subject: dict[str, Any] = {
        **answer.subject.query_params(),
        "profile": answer.verdict.profile.to_dict(),
        "verdict": answer.verdict.claim(),
        # Each signed by the log key: the verdict's calibration notes follow from them.
        "documents": answer.bundle_documents(attest),
    }
    if answer.compromised:
        # Attested with the rest of the subject: a bundle cannot drop it.
        subject["compromised"] = [c.to_json() for c in answer.compromised]
    if answer.dispositions:
        # What was done with the stock, and who decided (an override names the operator
        # and the reason): attested with the subject.
        subject["dispositions"] = answer.dispositions_json()
    return subject


def assemble_bundle(
    source: ProvenanceSource, keys: Sequence[tuple[str, int]], subject: dict[str, Any]
) -> BundleResult:
    """A ``coldtrail-bundle/1`` proving ``keys`` against the latest checkpoint."""
    block = source.proof_checkpoint()
    if block is None or not keys:
        return BundleResult(None, 0, len(keys))
    by_batch: dict[tuple[str, int], tuple[BatchInfo, list[int]]] = {}
    unproven = 0
    for gw, seq in keys:
        info = source.batch_of(gw, seq)
        if info is None or info.leaf_index >= block.tree_size or info.records_evicted:
            unproven += 1
            continue
        by_batch.setdefault((gw, info.batch_seq), (info, []))[1].append(seq)
    records = {(r.gw, r.seq): r for r in source.records(keys)}
    proofs: list[BatchProof] = []
    gateway_keys: dict[str, str] = {}
    for (gw, batch_seq), (info, seqs) in sorted(
        by_batch.items(), key=lambda kv: kv[1][0].leaf_index
    ):
        manifest = source.batch_manifest(gw, batch_seq)
        gateway = source.gateway(gw)
        if manifest is None or gateway is None:
            unproven += len(seqs)
            continue
        gateway_keys[gw] = gateway.public_key
        tree = MerkleTree(source.batch_leaf_hashes(gw, batch_seq))
        chosen: list[tuple[Reading | Scan | Gap, int, list[bytes]]] = []
        for seq in sorted(seqs):
            record = records.get((gw, seq))
            index = seq - info.first_seq
            if record is None or not 0 <= index < tree.size:
                unproven += 1
                continue
            chosen.append((record, index, tree.inclusion_proof(index)))
        if chosen:
            log_proof = source.log_inclusion_proof(info.leaf_index, block.tree_size)
            proofs.append(BatchProof(manifest, info.leaf_index, log_proof, chosen))
    if not proofs:
        return BundleResult(None, 0, unproven)
    claim = subject.get("verdict")
    if unproven and isinstance(claim, dict) and claim.get("complete"):
        # Some readings the verdict rests on are not in a checkpoint yet: the bundle
        # proves a sample, and says so (the verifier then checks, not recomputes).
        subject = {**subject, "verdict": {**claim, "complete": False}}
    trust = source.log_trust()
    bundle = build_bundle(
        log_vkey=trust.log_vkey,
        checkpoint_note=block.note,
        batches=proofs,
        gateway_keys=gateway_keys,
        cosigner_vkeys=trust.cosigner_vkeys,
        quorum=trust.quorum,
        subject=subject,
        attest=trust.attest,
        policy_changes=trust.policy_changes,
    )
    _json_safe_summary(bundle)
    return BundleResult(bundle, sum(len(p.records) for p in proofs), unproven)


def _json_safe_summary(bundle: dict[str, Any]) -> None:
    """``summarize`` starts min/max at ±inf; a quantity always has a reading, so they are finite.

    Guard anyway: JSON has no infinities and aiohttp would emit ``Infinity``.
    """
    for agg in bundle["summary"]["quantities"].values():
        for k in ("min", "max"):
            if isinstance(agg[k], float) and not math.isfinite(agg[k]):
                agg[k] = None


# --- chart data -------------------------------------------------------------------------


def chart_points(points: Sequence[ReadingPoint], q: str, max_points: int) -> list[ReadingPoint]:
    """At most ``max_points`` readings of ``q`` that keep each time bucket's min and max,
    so a short excursion is never averaged away."""
    series = [p for p in points if p.q == q]
    if len(series) <= max_points:
        return series
    series.sort(key=lambda p: p.t)
    buckets = max(1, max_points // 2)
    t0, t1 = series[0].t, series[-1].t + 1
    width = max(1, math.ceil((t1 - t0) / buckets))
    kept: dict[int, tuple[ReadingPoint, ReadingPoint]] = {}
    for p in series:
        b = (p.t - t0) // width
        lo_hi = kept.get(b)
        if lo_hi is None:
            kept[b] = (p, p)
        else:
            lo, hi = lo_hi
            kept[b] = (p if p.val < lo.val else lo, p if p.val > hi.val else hi)
    out: list[ReadingPoint] = []
    for b in sorted(kept):
        lo, hi = kept[b]
        out.extend(sorted({lo, hi}, key=lambda p: p.t))
    return out
