"""Reading rollups: what a provenance answer needs of an hour of one sensor, kept at apply time.

A lot's answer aggregates every reading its holders made while they held it: 10,000
readings for an ordinary shipment, far more for a month in a warehouse. Reading them all
per request costs ~100 ms of CPU (docs/adr/0316). The ledger therefore keeps, for every
*series* (holder, quantity, gateway, sensor) and every hour-long *bucket*, one
:class:`Rollup` of that hour's readings: count, sum, the extreme, first and last readings,
the longest gap between two readings, how many carried an unsynchronised clock, and the
band of the wall clock's offset against the monotonic clock.

Nothing in a rollup depends on a product's range or on the answer's tolerances, so one
rollup serves every lot, range and configuration: an answer uses a bucket's rollup when it
proves that bucket's readings cannot change the verdict beyond what the rollup carries
(every value inside the checked range, no gap longer than the silence limit, synchronised
clocks, offsets within the clock-jump tolerance), and reads the bucket's readings
otherwise. ``anchor.provenance.answer`` holds that test; this module only builds rollups.

Rollups are derived state, like the scan index: :class:`LedgerApplier` updates them in the
transaction that appends the readings, and ``verify-ledger`` re-derives every one from
the signed records and compares. A rollup is a pure function of its series' readings in
that bucket: appending readings in time order folds them in; a reading that arrives
before the bucket's last one (a late batch) makes the bucket be summarised again from
the stored readings, so the result never depends on arrival order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "BUCKET_MS",
    "ReadingRow",
    "Rollup",
    "Sample",
    "SeriesKey",
    "bucket_of",
    "bucket_span",
    "extend",
    "group_readings",
    "points_from_json",
    "points_json",
    "summarise",
]

BUCKET_MS = 3_600_000  # one hour: ~60 rows per lot-day per sensor, edges cost one hour raw


def bucket_of(t: int) -> int:
    return t // BUCKET_MS


def bucket_span(bucket: int) -> tuple[int, int]:
    """The half-open wall-clock window ``[start, end)`` of a bucket, ms."""
    return bucket * BUCKET_MS, (bucket + 1) * BUCKET_MS


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a series: value and the clock evidence it was signed with."""

    seq: int
    t: int  # wall clock, ms
    val: float
    sync: bool
    boot: str
    mono_us: int

    @property
    def offset_us(self) -> int:
        """Wall clock minus monotonic clock, µs: constant while neither clock jumps."""
        return self.t * 1000 - self.mono_us

    def order(self) -> tuple[int, int]:
        return self.t, self.seq


@dataclass(frozen=True, slots=True, order=True)
class SeriesKey:
    holder: str  # the asset or read point the readings were made at
    bucket: int
    q: str
    gw: str
    src: str


@dataclass(frozen=True, slots=True)
class Rollup:
    """One series' readings in one bucket. Extremes break ties by the earlier reading.

    The four named readings (first, lowest, highest, last) are kept as their storage
    text and parsed only when asked for: an answer reads hundreds of rollups and needs
    the readings of only a few (the scalar columns decide everything else)."""

    key: SeriesKey
    unit: str
    n: int
    total: float  # left fold in (t, seq) order, so any two builds agree to the bit
    min_val: float
    max_val: float
    first_t: int
    last_t: int
    max_gap_ms: int  # longest time between consecutive readings of the series here
    unsynced: int  # readings whose gateway clock was not NTP-synchronised
    boot: str | None  # None: the gateway rebooted within the hour
    offset_lo_us: int
    offset_hi_us: int
    named: str  # points_json: [first, min, max, last]

    def named_samples(self) -> tuple[Sample, Sample, Sample, Sample]:
        """``(first, min, max, last)``."""
        return points_from_json(self.named)

    @property
    def first(self) -> Sample:
        return self.named_samples()[0]

    @property
    def min(self) -> Sample:
        return self.named_samples()[1]

    @property
    def max(self) -> Sample:
        return self.named_samples()[2]

    @property
    def last(self) -> Sample:
        return self.named_samples()[3]

    def samples(self) -> tuple[Sample, ...]:
        """The distinct readings this rollup names (for charts and proof samples)."""
        out: dict[int, Sample] = {}
        for s in self.named_samples():
            out.setdefault(s.seq, s)
        return tuple(sorted(out.values(), key=Sample.order))


def _order(s: Sample) -> tuple[int, int]:
    return s.t, s.seq


def summarise(key: SeriesKey, unit: str, samples: Sequence[Sample]) -> Rollup:
    """The rollup of ``samples`` (one series, one bucket, at least one reading)."""
    if not samples:
        raise ValueError("a rollup needs at least one reading")
    ordered = sorted(samples, key=_order)
    first = ordered[0]
    return _fold(
        key,
        unit,
        n=1,
        total=first.val,
        named=(first, first, first, first),
        gap=0,
        unsynced=0 if first.sync else 1,
        boot=first.boot,
        offsets=(first.offset_us, first.offset_us),
        ordered=ordered[1:],
    )


def extend(rollup: Rollup, samples: Sequence[Sample]) -> Rollup | None:
    """``rollup`` with ``samples`` folded in, or None when one of them is not after the
    rollup's last reading (the bucket must then be summarised from all its readings)."""
    ordered = sorted(samples, key=_order)
    named = rollup.named_samples()
    if ordered and ordered[0].order() <= named[3].order():
        return None
    r = rollup
    return _fold(
        r.key,
        r.unit,
        n=r.n,
        total=r.total,
        named=named,
        gap=r.max_gap_ms,
        unsynced=r.unsynced,
        boot=r.boot,
        offsets=(r.offset_lo_us, r.offset_hi_us),
        ordered=ordered,
    )


def _fold(
    key: SeriesKey,
    unit: str,
    *,
    n: int,
    total: float,
    named: tuple[Sample, Sample, Sample, Sample],
    gap: int,
    unsynced: int,
    boot: str | None,
    offsets: tuple[int, int],
    ordered: Iterable[Sample],
) -> Rollup:
    first, lo, hi, last = named
    off_lo, off_hi = offsets
    lo_val, hi_val, last_t = lo.val, hi.val, last.t
    for s in ordered:  # the apply step's inner loop: plain comparisons, no calls
        n += 1
        val = s.val
        total += val
        if val < lo_val:
            lo, lo_val = s, val
        if val > hi_val:
            hi, hi_val = s, val
        if s.t - last_t > gap:
            gap = s.t - last_t
        if not s.sync:
            unsynced += 1
        if s.boot != boot:
            boot = None
        off = s.t * 1000 - s.mono_us
        if off < off_lo:
            off_lo = off
        if off > off_hi:
            off_hi = off
        last, last_t = s, s.t
    return Rollup(
        key=key,
        unit=unit,
        n=n,
        total=total,
        min_val=lo.val,
        max_val=hi.val,
        first_t=first.t,
        last_t=last.t,
        max_gap_ms=gap,
        unsynced=unsynced,
        boot=boot,
        offset_lo_us=off_lo,
        offset_hi_us=off_hi,
        named=points_json((first, lo, hi, last)),
    )


# --- storage form of the four named readings ----------------------------------------


def points_json(named: tuple[Sample, Sample, Sample, Sample]) -> str:
    """``[first, min, max, last]``, each ``[seq, t, val, sync, boot, mono_us]``."""
    return json.dumps(
        [[s.seq, s.t, s.val, s.sync, s.boot, s.mono_us] for s in named],
        separators=(",", ":"),
    )


def points_from_json(text: str) -> tuple[Sample, Sample, Sample, Sample]:
    rows: Any = json.loads(text)
    if not isinstance(rows, list) or len(rows) != 4:
        raise ValueError("a rollup names four readings")
    first, lo, hi, last = (
        Sample(int(s[0]), int(s[1]), float(s[2]), bool(s[3]), str(s[4]), int(s[5])) for s in rows
    )
    return first, lo, hi, last


# --- what a batch adds ----------------------------------------------------------------


class ReadingRow(Protocol):
    """The fields of a new record a rollup reads (anchor.ledger.model.NewRecord)."""

    @property
    def type(self) -> str: ...
    @property
    def gw(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def src(self) -> str: ...
    @property
    def asset(self) -> str | None: ...
    @property
    def t(self) -> int: ...
    @property
    def q(self) -> str | None: ...
    @property
    def val(self) -> float | None: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def json(self) -> bytes: ...


def group_readings(
    records: Iterable[ReadingRow], gateway_asset: str | None
) -> dict[SeriesKey, tuple[str, list[Sample]]]:
    """The readings among ``records`` by series and bucket: ``{key: (unit, samples)}``.

    A reading is held where its own asset stamp says, else at its gateway's asset; a
    reading with neither is at no holder, and no lot's answer can use it."""
    samples: dict[tuple[str, int, str, str, str], list[Sample]] = {}
    units: dict[tuple[str, int, str, str, str], tuple[tuple[int, int], str]] = {}
    for r in records:
        if r.type != "reading" or r.q is None or r.val is None:
            continue
        holder = r.asset or gateway_asset
        if not holder:
            continue
        clk: tuple[bool, str, int] | None = getattr(r, "clk", None)  # NewRecord carries it
        if clk is None:  # a stored record: the evidence is in the signed body
            doc = json.loads(r.json)["clk"]
            clk = (bool(doc["sync"]), str(doc["boot"]), int(doc["mono_us"]))
        key = (holder, r.t // BUCKET_MS, r.q, r.gw, r.src)  # a tuple hashes fastest
        found = samples.get(key)
        if found is None:
            found = samples[key] = []
            units[key] = ((r.t, r.seq), r.unit or "")
        elif (r.t, r.seq) < units[key][0]:  # a series' unit is its earliest reading's
            units[key] = ((r.t, r.seq), r.unit or "")
        found.append(Sample(r.seq, r.t, float(r.val), clk[0], clk[1], clk[2]))
    return {SeriesKey(*key): (units[key][1], found) for key, found in samples.items()}
