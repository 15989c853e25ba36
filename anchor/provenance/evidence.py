"""Which readings an answer reads one by one, and which hours it takes from their rollups.

A holder's custody interval ``[start, end)`` is cut at hour boundaries
(:data:`~anchor.ledger.rollups.BUCKET_MS`). The partial hours at both ends are always read
reading by reading. A whole hour is taken from its rollups (one per sensor) only when
they show that reading it one by one could not change anything the answer says beyond
what the rollups carry:

- every reading of the checked quantity is inside the product's range, so it adds no
  time out of range and no excursion, and only its first and last readings can end
  another hour's excursion or hold;
- the hour's readings of that quantity leave no silent gap: sensors whose own gaps are
  all within the silence limit cover the hour's readings end to end (then no two
  consecutive readings of the union are further apart than the limit either);
- every clock was synchronised, the gateway did not reboot within the hour, the hour is
  after 2000 (so no reading of it is a clock anomaly), and the wall clock's offset from
  the monotonic clock stays, over every hour of that boot the answer uses, within the
  clock-jump tolerance (so no two of its readings can be a jump, whatever the order);
- its gateway is not revoked (an answer counts exactly which records came after a
  compromise).

Every other hour is read one by one, so an answer built this way says exactly what one
built from every reading says (``tests/unit/anchor/test_rollup_answers.py`` checks that on
random ledgers); only the chart and the proof sample see an hour through its first,
lowest, highest and last readings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from anchor.ledger.rollups import BUCKET_MS, Rollup, Sample, bucket_span
from anchor.provenance.source import ProvenanceSource, ReadingPoint, ReadingQuery

__all__ = ["ClockEvidence", "HolderEvidence", "gather", "point_of", "widen"]

# More rollup rows than this for one interval (10 sensors for 4 years) and the interval
# is read one by one, within its reading budget, like a source without rollups.
MAX_ROLLUPS = 400_000
# A wall clock before 2000-01-01 is a board that booted without RTC or NTP.
PLAUSIBLE_SINCE_MS = 946_684_800_000


def point_of(r: Rollup, s: Sample) -> ReadingPoint:
    """One of the readings a rollup names, as a reading point of its series."""
    k = r.key
    return ReadingPoint(
        k.gw, s.seq, k.src, k.holder, s.t, k.q, s.val, r.unit, s.sync, s.boot, s.mono_us
    )


@dataclass(slots=True)
class HolderEvidence:
    """The readings of one custody interval: read one by one, or as hourly rollups."""

    holder: str
    start: int
    end: int
    points: list[ReadingPoint] = field(default_factory=list)  # time order
    summaries: list[Rollup] = field(default_factory=list)  # hours not read one by one
    truncated: bool = False
    budget: int = 0  # readings it may still read one by one

    def readings(self) -> int:
        return len(self.points) + sum(r.n for r in self.summaries)

    def counts_by_gateway(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for p in self.points:
            out[p.gw] += 1
        for r in self.summaries:
            out[r.key.gw] += r.n
        return dict(out)

    def representatives(self) -> list[ReadingPoint]:
        """Every reading read, and the named readings of every rollup used, in time order."""
        reps = list(self.points)
        for r in self.summaries:
            reps.extend(point_of(r, s) for s in r.samples())
        reps.sort(key=lambda p: (p.t, p.gw, p.seq))
        return reps

    def sample_keys(self, n: int) -> set[tuple[str, int]]:
        """``(gw, seq)`` of ``n`` readings evenly spaced over the interval (a rollup's
        hour counts as one place, its first reading), for the proof's chart sample."""
        if n <= 0:
            return set()
        items: list[tuple[int, ReadingPoint | Rollup]] = [(p.t, p) for p in self.points]
        if self.summaries:
            items += [(r.first_t, r) for r in self.summaries]
            items.sort(key=lambda item: item[0])
        step = max(1, len(items) // n)
        out: set[tuple[str, int]] = set()
        for _, item in items[::step][:n]:
            if isinstance(item, Rollup):
                out.add((item.key.gw, item.first.seq))
            else:
                out.add((item.gw, item.seq))
        return out

    def _read(self, source: ProvenanceSource, t_from: int, t_to: int) -> None:
        if t_from >= t_to or self.truncated:
            return
        found = source.readings(
            ReadingQuery(asset=self.holder, t_from=t_from, t_to=t_to), self.budget + 1
        )
        if len(found) > self.budget:
            self.truncated = True
            found = found[: self.budget]
        self.budget -= len(found)
        self.points.extend(found)


def _hour_is_clean(rows: Sequence[Rollup], q: str) -> bool:
    """An hour whose rollups can stand for its readings: a synchronised clock within
    one boot, and no reading of the checked quantity (the verdict's MKT, excursions and
    gaps need each of those; docs/adr/0316)."""
    if not rows or rows[0].key.bucket * BUCKET_MS < PLAUSIBLE_SINCE_MS:
        return False
    return all(not r.unsynced and r.boot is not None and r.key.q != q for r in rows)


def gather(
    source: ProvenanceSource,
    holder: str,
    start: int,
    end: int,
    *,
    checked_q: str,
    budget: int,
    use_rollups: bool = True,
) -> HolderEvidence:
    """The readings of ``holder`` in ``[start, end)``: whole clean hours as rollups."""
    ev = HolderEvidence(holder, start, end, budget=budget)
    first_full = -(-start // BUCKET_MS)
    last_full = end // BUCKET_MS  # exclusive
    rollups = (
        source.reading_rollups(holder, first_full, last_full, MAX_ROLLUPS + 1)
        if use_rollups and first_full < last_full
        else None
    )
    if rollups is None or len(rollups) > MAX_ROLLUPS:
        ev._read(source, start, end)
        return ev
    by_hour: dict[int, list[Rollup]] = defaultdict(list)
    for r in rollups:
        by_hour[r.key.bucket].append(r)
    clean = {b for b, rows in by_hour.items() if _hour_is_clean(rows, checked_q)}
    ev.summaries = [r for r in rollups if r.key.bucket in clean]
    # Read everything else one by one: the partial hours at both ends, and the runs of
    # hours whose rollups do not settle the answer (hours with no reading cost nothing).
    cursor = start
    for b in sorted(clean):
        b_start, b_end = bucket_span(b)
        ev._read(source, cursor, b_start)
        cursor = b_end
    ev._read(source, cursor, end)
    ev.points.sort(key=lambda p: (p.t, p.gw, p.seq))
    return ev


@dataclass(slots=True)
class ClockEvidence:
    """The band of wall-minus-monotonic offsets per (gateway, boot) an answer relies on."""

    bands: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    def add(self, gw: str, boot: str, lo_us: int, hi_us: int) -> None:
        band = self.bands.get((gw, boot))
        self.bands[(gw, boot)] = (
            (lo_us, hi_us) if band is None else (min(band[0], lo_us), max(band[1], hi_us))
        )

    def add_point(self, gw: str, boot: str, t: int, mono_us: int) -> None:
        off = t * 1000 - mono_us
        self.add(gw, boot, off, off)

    def too_wide(self, tolerance_ms: int) -> set[tuple[str, str]]:
        # A jump needs |(t1 - t0) - (m1 - m0) // 1000| > tolerance, so an offset
        # difference above tolerance * 1000 - 1000 µs (the floor division's slack).
        limit = tolerance_ms * 1000 - 1000
        return {k for k, (lo, hi) in self.bands.items() if hi - lo > limit}


def widen(
    source: ProvenanceSource,
    evidence: Iterable[HolderEvidence],
    unclear: Callable[[Rollup], bool],
) -> None:
    """Read one by one every hour whose rollups include one that ``unclear`` rejects:
    a clock band too wide for the whole answer, a revoked gateway."""
    for ev in evidence:
        hours = {r.key.bucket for r in ev.summaries if unclear(r)}
        if not hours:
            continue
        ev.summaries = [r for r in ev.summaries if r.key.bucket not in hours]
        for b in sorted(hours):
            ev._read(source, *bucket_span(b))
        ev.points.sort(key=lambda p: (p.t, p.gw, p.seq))
