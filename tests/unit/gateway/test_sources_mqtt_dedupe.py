"""MQTT QoS 1 exactly-once: the de-duplication rules, and the spool table behind them.

docs/adr/0210-mqtt-exactly-once.md. ``plan_deliveries`` is pure; the spool tests
use the real SQLite spool.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from gateway_twins import make_signer

from gateway.errors import SpoolError
from gateway.observations import Delivery, Measurement, RecordedDelivery
from gateway.sources.mqtt_dedupe import plan_deliveries
from gateway.spool import Spool

SESSION = "coldtrail-b@127.0.0.1:1883"


def digest(payload: str, topic: str = "sensors/p1") -> bytes:
    return hashlib.sha256(topic.encode() + b"\0" + payload.encode()).digest()


def d(packet_id: int, payload: str, dup: bool) -> Delivery:
    return Delivery("b", SESSION, packet_id, dup, digest(payload))


def rows(*entries: tuple[int, str, int]) -> dict[int, RecordedDelivery]:
    """(packet id, payload, ordinal) of committed deliveries."""
    return {pid: RecordedDelivery(digest(payload), ordinal) for pid, payload, ordinal in entries}


# --- the four rules of the brief ---------------------------------------------


def test_dup0_with_a_recorded_packet_id_is_stored() -> None:
    # A new message may reuse a packet id once the previous one was acknowledged.
    plan = plan_deliveries([d(7, "a", dup=False)], rows((7, "a", 5)), 5, False)
    assert plan.drop == (False,) and plan.decided == 1


def test_dup1_with_a_recorded_packet_id_is_dropped() -> None:
    plan = plan_deliveries([d(7, "a", dup=True)], rows((7, "a", 5)), 5, False)
    assert plan.drop == (True,) and plan.decided == 1


def test_dup1_without_a_row_is_stored() -> None:
    # Re-sent but never committed (the gateway died before the commit).
    plan = plan_deliveries([d(7, "a", dup=True)], {}, 5, False)
    assert plan.drop == (False,)


def test_dup1_with_another_digest_is_stored() -> None:
    # The row is for an older message with the same packet id.
    plan = plan_deliveries([d(7, "b", dup=True)], rows((7, "a", 5)), 5, False)
    assert plan.drop == (False,)


# --- order: what makes it exact when payloads repeat --------------------------


def test_a_run_of_resends_ending_at_the_last_commit_is_dropped_then_the_rest_stored() -> None:
    # Committed 3..5 were not acknowledged; 6 and 7 were received but not committed.
    got = [d(3, "c", True), d(4, "d", True), d(5, "e", True), d(6, "f", True), d(7, "g", True)]
    recorded = rows((3, "c", 3), (4, "d", 4), (5, "e", 5))
    plan = plan_deliveries(got, recorded, 5, False)
    assert plan.drop == (True, True, True, False, False)
    assert plan.resends_over


def test_a_stale_row_after_the_resends_is_not_a_duplicate() -> None:
    # Packet id 1 was committed long ago (ordinal 1) and acknowledged; the broker reused
    # it for a byte-identical reading the gateway received but did not commit.
    got = [d(5, "e", True), d(1, "same", True)]
    plan = plan_deliveries(got, rows((5, "e", 5), (1, "same", 1)), 5, False)
    assert plan.drop == (True, False)


def test_a_stale_row_before_any_committed_resend_is_held_then_stored() -> None:
    # The first re-send matches ordinal 2 of 5: either 2..5 all follow (duplicates) or
    # the row is stale. Nothing is decided, stored or acked until the next message says.
    recorded = rows((1, "same", 2), (2, "x", 3), (3, "y", 4), (4, "z", 5))
    first = plan_deliveries([d(1, "same", True)], recorded, 5, False)
    assert first.decided == 0 and first.drop == () and not first.resends_over
    # The next re-send is not ordinal 3: the row of packet id 1 was stale.
    plan = plan_deliveries([d(1, "same", True), d(9, "new", True)], recorded, 5, False)
    assert plan.drop == (False, False) and plan.decided == 2


def test_a_held_run_that_reaches_the_last_commit_is_dropped() -> None:
    recorded = rows((1, "a", 4), (2, "b", 5))
    assert plan_deliveries([d(1, "a", True)], recorded, 5, False).decided == 0
    plan = plan_deliveries([d(1, "a", True), d(2, "b", True), d(3, "c", False)], recorded, 5, False)
    assert plan.drop == (True, True, False)


def test_a_new_message_ends_the_resends() -> None:
    # The broker re-sends before it sends anything new: after a DUP=0 message, a match
    # is a stale row.
    plan = plan_deliveries([d(8, "n", False), d(5, "e", True)], rows((5, "e", 5)), 5, False)
    assert plan.drop == (False, False)
    later = plan_deliveries([d(5, "e", True)], rows((5, "e", 5)), 5, True)
    assert later.drop == (False,)


def test_resends_of_messages_committed_on_this_connection_are_dropped() -> None:
    # Ordinal 9 > 5 (the last one when the connection started): committed on this
    # connection, and re-sent on it before the PUBACK arrived.
    plan = plan_deliveries([d(2, "k", True)], rows((2, "k", 9)), 5, True)
    assert plan.drop == (True,)


def test_a_copy_within_one_batch_is_dropped() -> None:
    plan = plan_deliveries([d(4, "q", False), d(4, "q", True)], {}, 0, True)
    assert plan.drop == (False, True)


def test_qos0_and_retained_messages_are_neutral() -> None:
    plan = plan_deliveries([None, d(5, "e", True), None], rows((5, "e", 5)), 5, False)
    assert plan.drop == (False, True, False)


# --- the spool table -----------------------------------------------------------


async def test_spool_records_deliveries_in_the_commit_one_row_per_packet_id(
    tmp_path: Path,
) -> None:
    signer, _, _ = make_signer()
    path = tmp_path / "spool.sqlite3"
    spool = await Spool.open(path, signer, budget_bytes=10**9)
    reading = [Measurement("p1", "temperature", 1.5, "CEL")]
    await spool.append(signer.drafts(reading), [d(1, "a", False), d(2, "b", False)])
    # A message that yielded no records is still remembered as done.
    first, last = await spool.append([], [d(3, "c", False)])
    assert last == first - 1
    # A new message reusing packet id 1 replaces its row.
    await spool.append(signer.drafts(reading), [d(1, "a2", False)])
    found, last_ordinal = await spool.recorded_deliveries(SESSION, [1, 2, 3, 4])
    await spool.close()
    assert last_ordinal == 4
    assert found == {
        1: RecordedDelivery(digest("a2"), 4),
        2: RecordedDelivery(digest("b"), 2),
        3: RecordedDelivery(digest("c"), 3),
    }
    # Ordinals go on after a restart.
    spool = await Spool.open(path, signer, budget_bytes=10**9)
    await spool.append([], [d(9, "z", False)])
    found, last_ordinal = await spool.recorded_deliveries(SESSION, [9])
    other, other_last = await spool.recorded_deliveries("other@host:1883", [9])
    await spool.close()
    assert found[9].ordinal == last_ordinal == 5
    assert other == {} and other_last == 0
    conn = sqlite3.connect(path)
    n = conn.execute("SELECT COUNT(*) FROM mqtt_inflight").fetchone()[0]
    conn.close()
    assert n == 4


async def test_a_failed_submit_records_no_delivery(tmp_path: Path) -> None:
    signer, _, _ = make_signer()
    spool = await Spool.open(tmp_path / "s.db", signer, budget_bytes=10**9)
    bad = signer.drafts([Measurement("p1", "temperature", 1.5, "CEL")])
    object.__setattr__(bad[0], "val", float("nan"))  # JCS cannot carry it: signing fails
    with pytest.raises(SpoolError):
        await spool.append(bad, [d(1, "a", False)])
    found, last = await spool.recorded_deliveries(SESSION, [1])
    await spool.close()
    assert found == {} and last == 0
