"""Answers built with hourly rollups say exactly what answers built from every reading say.

``anchor.provenance.evidence`` takes a whole hour from its rollups only when reading it
one by one could not change the answer. These tests build random signed journeys (several
holders and sensors, excursions, silent stretches, unsynchronised clocks, reboots, clock
jumps, readings with a 1970 clock, gaps, revoked gateways) and compare both answers field
by field; and check the pure rollup builder against its own definition.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from anchor.ledger.rollups import BUCKET_MS, Sample, SeriesKey, extend, summarise
from anchor.provenance.answer import ProvenanceConfig, Subject, answer_for_subject
from anchor.provenance.source import GatewayInfo
from support.provenance_fixtures import GTIN, LOT, MIN, T0, Journey

HOUR = BUCKET_MS


def _journey(rng: random.Random) -> tuple[Journey, int, list[str]]:
    j = Journey()
    holders = [f"asset-{i}" for i in range(rng.randint(1, 3))]
    for i, h in enumerate(holders):
        j.gateway(f"gw-{i}", f"org-{i % 2}", h)
    # Now and then a journey whose gateways lost their clocks: 1970 wall-clock times
    # (the monotonic clocks, shifted by ``lost``, still run true).
    base = T0 if rng.random() < 0.9 else 10 * HOUR
    lost = T0 - base
    t = base - base % HOUR + rng.randint(0, HOUR)
    for i in range(len(holders)):
        gw = f"gw-{i}"
        start = t
        stay = rng.randint(1, 9) * HOUR + rng.randint(0, HOUR)
        j.scan(gw, start, "loading" if i else "packing", mono_t=start + lost)
        sensors = [f"probe-{i}-{k}" for k in range(rng.randint(1, 2))]
        step = rng.choice([60_000, 5 * MIN, 12 * MIN, 25 * MIN])
        boot = "boot-1"
        jump = 0
        for k, src in enumerate(sensors):
            tt = start - rng.randint(0, HOUR)
            while tt < start + stay + HOUR:
                tt += max(1_000, int(rng.gauss(step, step / 5)))
                roll = rng.random()
                if roll < 0.01 and k == 0:
                    boot = f"boot-{rng.randint(2, 9)}"
                if roll > 0.995:
                    jump += rng.choice([-1, 1]) * rng.randint(30, 300) * 1000
                if rng.random() < 0.02:
                    tt += rng.randint(15, 90) * MIN  # a silent stretch
                val = rng.gauss(5.0, 0.8)
                if rng.random() < 0.015:
                    val = rng.choice([rng.uniform(8.1, 14.0), rng.uniform(-3.0, 1.9)])
                j.reading(
                    gw,
                    tt + jump,
                    round(val, 2),
                    src=src,
                    sync=rng.random() > 0.01,
                    mono_t=tt + lost,
                    boot=boot,
                )
                if rng.random() < 0.05:
                    j.reading(
                        gw,
                        tt,
                        round(rng.uniform(40, 90), 1),
                        src=src + "-rh",
                        q="humidity",
                        mono_t=tt + lost,
                        boot=boot,
                    )
            if rng.random() < 0.2:  # a reading whose wall clock fell back to 1970 meanwhile
                mono = start + lost + rng.randint(0, stay)
                j.reading(gw, 5_000 + rng.randint(0, 10**6), 4.0, src=src, boot=boot, mono_t=mono)
        if rng.random() < 0.2:
            j.gap(gw, start + rng.randint(0, stay), "source-down", "probe unplugged")  # mono: any
        t = start + stay
        if i + 1 == len(holders) or rng.random() < 0.3:
            j.scan(gw, t, "unloading", mono_t=t + lost)
    return j, t + 2 * HOUR, holders


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The answer's JSON with means rounded (sums over hours add in another order)."""

    def fix(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**s, "mean": None if s["mean"] is None else round(s["mean"], 2)} for s in stats]

    # The evenly spaced proof sample sees a rollup's hour through its named readings.
    out = {**doc, "stats": fix(doc["stats"]), "proven_records": None}
    out["timeline"] = [{**i, "stats": fix(i["stats"])} for i in doc["timeline"]]
    return out


@pytest.mark.parametrize("seed", range(40))
def test_rollup_answers_equal_answers_from_every_reading(seed: int) -> None:
    rng = random.Random(seed)
    journey, now, _ = _journey(rng)
    source = journey.publish_memory(batch_size=rng.choice([7, 50, 400]))
    if rng.random() < 0.25:  # a revoked gateway: compromised records are counted exactly
        gw = rng.choice(list(journey.gateways))
        g = journey.gateways[gw]
        source.add_gateway(GatewayInfo(gw, g.org, g.asset, g.key.public_key.to_base64(), T0))
    config = ProvenanceConfig(
        clock_jump_tolerance_ms=rng.choice([60_000, 120_000]),
    )
    subject = Subject.for_lot(GTIN, LOT)
    fast = answer_for_subject(source, subject, config, now)
    slow = answer_for_subject(source, subject, config, now, use_rollups=False)
    assert _comparable(fast.to_json()) == _comparable(slow.to_json())
    for a, b in zip(fast.intervals, slow.intervals, strict=True):
        assert a.counts == b.counts
        for q, s in a.analysis.stats.items():
            other = b.analysis.stats[q]
            assert (s.min, s.max) == (other.min, other.max)  # the very same readings
            assert math.isclose(s.total, other.total, rel_tol=1e-12, abs_tol=1e-9)
    assert fast.excursions() == slow.excursions()
    assert fast.verdict.lot == slow.verdict.lot
    # What the bundle must prove is proven either way: scans, gaps, extremes, excursions.
    needed = {
        (s.gw, s.seq) for i in slow.intervals for s in (i.custody.opened_by, *i.custody.events)
    }
    needed |= {(g.gw, g.seq) for g in slow.gaps}
    for i in slow.intervals:
        needed |= {(p.gw, p.seq) for s in i.analysis.stats.values() for p in (s.min, s.max) if p}
        for e in i.analysis.excursions[:50]:
            needed |= {(p.gw, p.seq) for p in (e.first, e.peak, e.last)}
    assert needed <= set(fast.proof_keys)


def test_rollups_stand_for_hours_without_a_checked_reading() -> None:
    """Not a vacuous equality: hours with only other quantities come from rollups, while
    every temperature reading is read (the verdict's MKT and gaps need each one)."""
    j = Journey()
    j.gateway("truck-gw", "carrier", "truck-1")
    j.scan("truck-gw", T0, "loading")
    for t in range(T0, T0 + 10 * HOUR, MIN):
        j.reading("truck-gw", t, 40.0 + (t // MIN) % 7, q="humidity")
    j.scan("truck-gw", T0 + 10 * HOUR, "unloading")
    source = j.publish_memory()
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), T0)
    (interval,) = answer.intervals
    assert interval.analysis.stats["humidity"].count == 600
    assert len(interval.points) < 100  # representatives, not 600 readings
    assert answer.verdict.status == "indeterminate"  # no thermometer travelled with it
    assert [r.code for r in answer.verdict.lot.reasons] == ["no-sensors"]


def _samples(rng: random.Random, n: int) -> list[Sample]:
    return [
        Sample(
            seq,
            T0 + rng.randint(0, HOUR - 1),
            rng.choice([1.0, 2.5, rng.uniform(-5, 12)]),
            rng.random() > 0.1,
            rng.choice(["a", "a", "b"]),
            rng.randint(0, 10**9),
        )
        for seq in rng.sample(range(1, 10 * n), n)
    ]


@pytest.mark.parametrize("seed", range(30))
def test_extending_a_rollup_in_order_equals_summarising_everything(seed: int) -> None:
    rng = random.Random(seed)
    key = SeriesKey("h", T0 // HOUR, "temperature", "gw", "probe")
    samples = sorted(_samples(rng, rng.randint(2, 60)), key=Sample.order)
    cut = rng.randint(1, len(samples) - 1)
    folded = extend(summarise(key, "CEL", samples[:cut]), samples[cut:])
    assert folded == summarise(key, "CEL", samples)
    # The definition, independently: extremes are the earliest of equal values.
    whole = summarise(key, "CEL", list(reversed(samples)))
    assert whole.n == len(samples) and whole.first == samples[0] and whole.last == samples[-1]
    assert whole.min == min(samples, key=lambda s: (s.val, s.t, s.seq))
    assert whole.max == min(samples, key=lambda s: (-s.val, s.t, s.seq))
    gaps = [b.t - a.t for a, b in itertools.pairwise(samples)]
    assert whole.max_gap_ms == max(gaps, default=0)
    assert whole.unsynced == sum(not s.sync for s in samples)
    assert whole.boot == (samples[0].boot if len({s.boot for s in samples}) == 1 else None)
    offsets = [s.offset_us for s in samples]
    assert (whole.offset_lo_us, whole.offset_hi_us) == (min(offsets), max(offsets))


def test_a_reading_before_the_last_one_is_refused_by_extend() -> None:
    rng = random.Random(7)
    key = SeriesKey("h", T0 // HOUR, "temperature", "gw", "probe")
    samples = sorted(_samples(rng, 10), key=Sample.order)
    assert extend(summarise(key, "CEL", samples[5:]), samples[:5]) is None
    with pytest.raises(ValueError):
        summarise(key, "CEL", [])
