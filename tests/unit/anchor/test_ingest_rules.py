"""The chain and seq rules of the ingest contract, as a pure function."""

from __future__ import annotations

import pytest

from anchor.errors import AnchorError
from anchor.ingest import check_chain, parse_ingest_body
from anchor.store import GatewayHead
from support.batches import GatewaySim


def _head(sim: GatewaySim, leaf: int = 0) -> GatewayHead:
    return GatewayHead(sim.gw, sim.batch_seq, sim.prev, sim.seq, leaf)


def test_first_batch_starts_the_chain() -> None:
    sim = GatewaySim()
    m, _ = sim.readings_batch(2)
    check_chain(m, None, [])


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda s: setattr(s, "batch_seq", s.batch_seq + 1), "broken-chain"),
        (lambda s: setattr(s, "batch_seq", s.batch_seq - 1), "batch-replay"),
        (lambda s: setattr(s, "prev", "ab" * 32), "broken-chain"),
        (lambda s: setattr(s, "seq", s.seq - 1), "seq-overlap"),
        (lambda s: s.skip(3), "seq-gap"),
    ],
    ids=["skipped-batch", "reused-batch-seq", "wrong-prev", "overlap", "hole"],
)
def test_chain_violations_have_their_codes(mutate: object, code: str) -> None:
    sim = GatewaySim()
    sim.readings_batch(2)
    head = _head(sim)
    mutate(sim)  # type: ignore[operator]
    m, _ = sim.readings_batch(1)
    with pytest.raises(AnchorError) as info:
        check_chain(m, head, [])
    assert info.value.code == code


def test_a_hole_covered_by_an_evicted_gap_record_is_accepted() -> None:
    sim = GatewaySim()
    sim.readings_batch(2)
    head = _head(sim)
    lost = sim.skip(3)
    m, _ = sim.batch([sim.gap("evicted", *lost)])
    check_chain(m, head, [lost])
    with pytest.raises(AnchorError):
        check_chain(m, head, [(lost[0], lost[1] - 1)])


def test_parse_refuses_unsigned_extra_fields() -> None:
    sim = GatewaySim()
    _, body = sim.readings_batch(1)
    body["manifest"]["extra"] = 1
    import json

    with pytest.raises(AnchorError) as info:
        parse_ingest_body(json.dumps(body).encode(), 10)
    assert info.value.code == "malformed"
