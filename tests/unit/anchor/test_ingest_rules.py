"""The chain and seq rules of the ingest contract, as pure functions (docs/adr/0310)."""

from __future__ import annotations

import json

import pytest

from anchor.errors import AnchorError
from anchor.ingest.parse import parse_ingest_body
from anchor.ledger.chain import check_chain, link_of
from anchor.ledger.model import ChainLink
from proofs.records import Manifest
from support.batches import GatewaySim


def _link(m: Manifest) -> ChainLink:
    return link_of(m, m.hash_hex(), leaf_index=0)


def _check(
    m: Manifest,
    lower: Manifest | None = None,
    higher: Manifest | None = None,
    gaps: list[tuple[int, int]] | None = None,
    higher_gaps: list[tuple[int, int]] | None = None,
    lookahead: int | None = None,
) -> None:
    check_chain(
        m,
        m.hash_hex(),
        None if lower is None else _link(lower),
        None if higher is None else _link(higher),
        [] if gaps is None else gaps,
        [] if higher_gaps is None else higher_gaps,
        max_lookahead=lookahead,
    )


def _code(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(AnchorError) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value.code


def test_first_batch_starts_the_chain() -> None:
    sim = GatewaySim()
    m, _ = sim.readings_batch(2)
    _check(m)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda s: setattr(s, "prev", "ab" * 32), "broken-chain"),
        (lambda s: setattr(s, "seq", s.seq - 1), "seq-overlap"),
        (lambda s: s.skip(3), "seq-gap"),
    ],
    ids=["wrong-prev", "overlap", "hole"],
)
def test_link_to_the_stored_predecessor(mutate: object, code: str) -> None:
    sim = GatewaySim()
    first, _ = sim.readings_batch(2)
    mutate(sim)  # type: ignore[operator]
    m, _ = sim.readings_batch(1)
    assert _code(_check, m, lower=first) == code


def test_batch_zero_and_a_first_batch_with_a_prev_are_broken_chains() -> None:
    sim = GatewaySim(prev="cd" * 32)
    m, _ = sim.readings_batch(1)
    assert _code(_check, m) == "broken-chain"


def test_out_of_order_then_both_links_checked() -> None:
    sim = GatewaySim()
    one, _ = sim.readings_batch(2)
    two, _ = sim.readings_batch(2)
    three, _ = sim.readings_batch(2)
    _check(one)
    _check(three, lower=one)  # n+2 before n+1: only the seq room is judged
    _check(two, lower=one, higher=three)  # then n+1 is checked against both


def test_broken_link_to_a_stored_successor_names_it() -> None:
    sim = GatewaySim()
    one, _ = sim.readings_batch(2)
    honest = GatewaySim(key=sim.key, seq=sim.seq, batch_seq=sim.batch_seq, prev=sim.prev)
    liar, _ = sim.readings_batch(2, val=9.0)  # another batch 2 with the same seqs
    _two, _ = honest.readings_batch(2)
    three, _ = honest.readings_batch(2)  # chains to the honest batch 2, not to the liar
    with pytest.raises(AnchorError) as info:
        _check(liar, lower=one, higher=three)
    assert info.value.code == "broken-chain"
    assert "successor, batch 3" in info.value.detail


def test_successor_seq_overlap_and_gap() -> None:
    sim = GatewaySim()
    one, _ = sim.readings_batch(2)
    two, _ = sim.readings_batch(3)
    sim.seq -= 1  # batch 3 starts inside batch 2
    three, _ = sim.readings_batch(2)
    assert _code(_check, two, lower=one, higher=three) == "seq-overlap"

    sim = GatewaySim()
    one, _ = sim.readings_batch(2)
    two, _ = sim.readings_batch(2)
    lost = sim.skip(3)
    three, _ = sim.batch([sim.gap("evicted", *lost)])
    assert _code(_check, two, lower=one, higher=three) == "seq-gap"
    _check(two, lower=one, higher=three, higher_gaps=[lost])  # the successor's gap covers it


def test_overlap_with_distant_neighbours_and_room_for_missing_batches() -> None:
    sim = GatewaySim()
    one, _ = sim.readings_batch(3)
    sim.readings_batch(1)  # batch 2 not stored
    sim.seq -= 2  # batch 3 claims seqs batch 1 already covers
    three, _ = sim.readings_batch(2)
    assert _code(_check, three, lower=one) == "seq-overlap"

    sim = GatewaySim()
    one, _ = sim.readings_batch(3)
    sim.batch_seq += 1  # batch 2 skipped without any seq left for it
    three, _ = sim.readings_batch(2)
    assert _code(_check, three, lower=one) == "seq-overlap"

    sim = GatewaySim()
    sim.batch_seq = 4
    sim.seq = 10
    five, _ = sim.readings_batch(2)  # seqs 11..12
    sim2 = GatewaySim(key=sim.key, batch_seq=2, seq=9)
    three, _ = sim2.readings_batch(3)  # seqs 10..12 overlap batch 5
    assert _code(_check, three, higher=five) == "seq-overlap"


def test_a_hole_covered_by_an_evicted_gap_record_is_accepted() -> None:
    sim = GatewaySim()
    first, _ = sim.readings_batch(2)
    lost = sim.skip(3)
    m, _ = sim.batch([sim.gap("evicted", *lost)])
    _check(m, lower=first, gaps=[lost])
    assert _code(_check, m, lower=first, gaps=[(lost[0], lost[1] - 1)]) == "seq-gap"
    # Not judged while the batch's own records are not verified yet.
    check_chain(m, m.hash_hex(), _link(first), None, None, None)


def test_lookahead_bound() -> None:
    sim = GatewaySim()
    one, _ = sim.readings_batch(1)
    sim.batch_seq = 11
    sim.seq = 20
    far, _ = sim.readings_batch(1)  # batch 12, 11 ahead of batch 1
    assert _code(_check, far, lower=one, lookahead=10) == "batch-too-far-ahead"
    _check(far, lower=one, lookahead=11)


def test_parse_refuses_unsigned_extra_fields() -> None:
    sim = GatewaySim()
    _, body = sim.readings_batch(1)
    body["manifest"]["extra"] = 1
    with pytest.raises(AnchorError) as info:
        parse_ingest_body(json.dumps(body).encode(), 10)
    assert info.value.code == "malformed"


def test_check_scope_names_only_the_gateways_own_places() -> None:
    from anchor.errors import AnchorError
    from anchor.ledger.chain import check_scope
    from anchor.ledger.model import Gateway, NewRecord, ScanEvent

    gw = Gateway("gw-1", "acme", "k", "id", "truck-07", 0, places=frozenset({"truck-07", "d-1"}))

    def rec(asset: str | None, rp: str | None = None) -> NewRecord:
        scan = None if rp is None else ScanEvent("gw-1", 1, 0, "s", asset, rp, "loading",
                                                 None, None, None, None)  # fmt: skip
        return NewRecord("gw-1", 1, "scan" if scan else "reading", "s", asset, 0, b"{}",
                         scan=scan)  # fmt: skip

    check_scope(gw, [rec("truck-07"), rec(None), rec("truck-07", "d-1"), rec(None, "")])
    for record, code in (
        (rec("cold-room-3"), "foreign-asset"),
        (rec(None, "north-dock"), "foreign-read-point"),
        (rec("cold-room-3", "d-1"), "foreign-asset"),
    ):
        with pytest.raises(AnchorError) as e:
            check_scope(gw, [record])
        assert e.value.code == code
