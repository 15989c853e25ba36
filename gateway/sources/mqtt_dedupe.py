"""Which MQTT QoS 1 redeliveries are already committed: exact rules, no I/O.

docs/adr/0210-mqtt-exactly-once.md explains why these rules are exact. In short,
for one broker session:

* the spool commits deliveries in the order they arrived and gives each committed
  QoS 1 delivery the next ``ordinal`` (1, 2, 3 ...), with one row per packet id
  holding the newest message that used it;
* the gateway sends PUBACKs in receive order, after the commit, so what the broker
  has seen acknowledged is a prefix of the delivery order, and "committed but not
  acknowledged" is a suffix of the committed deliveries: ordinals ``o..k`` where
  ``k`` is the session's last ordinal when the connection started;
* on session resumption the broker re-sends every unacknowledged PUBLISH, in the
  original order, with its original packet id and DUP=1, before new messages.

So a genuine duplicate is a DUP=1 message that starts, or continues, a run of
re-sends matching committed rows with consecutive ordinals that ends at ``k``.
A DUP=1 message matching a row outside such a run matches a *stale* row (the
broker reused the packet id after our PUBACK, for a byte-identical message that
the gateway did not commit) and is stored. A run that has not reached ``k`` yet
is held, neither stored nor acknowledged, until the next message decides it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.observations import Delivery, RecordedDelivery

__all__ = ["DedupePlan", "plan_deliveries"]


@dataclass(frozen=True, slots=True)
class DedupePlan:
    """What to do with a list of received messages, in receive order.

    ``drop[i]`` is True for a message already committed (acknowledge it, store
    nothing) and False for one to store; it covers the first ``decided`` messages.
    The rest (a run of re-sends not yet known to be duplicates, and whatever
    arrived after it) wait for more messages: ``resends_over`` is the phase to
    resume from after the decided ones.
    """

    drop: tuple[bool, ...]
    decided: int
    resends_over: bool


def plan_deliveries(
    deliveries: Sequence[Delivery | None],
    recorded: Mapping[int, RecordedDelivery],
    start_ordinal: int,
    resends_over: bool,
) -> DedupePlan:
    """Classify ``deliveries`` of one session (``None``: QoS 0 or retained, nothing
    to de-duplicate).

    ``recorded`` holds the committed rows for the packet ids of the DUP=1 messages;
    ``start_ordinal`` is the session's last committed ordinal when this connection
    started; ``resends_over`` is False until the connection's first message that is
    not a re-send of a committed one.
    """
    n = len(deliveries)
    drop = [False] * n
    earlier: dict[int, bytes] = {}  # packet id -> digest, for messages earlier in the list
    run: list[int] = []  # indices of an open run of re-sends of committed messages
    next_ordinal: int | None = None
    for i, d in enumerate(deliveries):
        if d is None:
            continue
        if d.dup and earlier.get(d.packet_id) == d.digest:
            # A copy of a message still unacknowledged in this list (a broker that re-sends
            # on the same connection): the packet id cannot have been reused meanwhile.
            drop[i] = True
            continue
        earlier[d.packet_id] = d.digest
        row = recorded.get(d.packet_id) if d.dup else None
        match = row is not None and row.digest == d.digest
        if row is not None and match and row.ordinal > start_ordinal:
            # Committed on this very connection, and the broker re-sent it before our
            # PUBACK reached it: a message reusing the id would have arrived before its
            # own DUP=1 copy and replaced the row.
            drop[i] = True
            continue
        if (
            row is not None
            and match
            and not resends_over
            and (next_ordinal is None or row.ordinal == next_ordinal)
        ):
            run.append(i)
            next_ordinal = row.ordinal + 1
            if row.ordinal == start_ordinal:
                # The run reached the last committed delivery: all of it was committed.
                for j in run:
                    drop[j] = True
                run = []
                resends_over = True
            continue
        # DUP=0, no row, another digest, or an ordinal out of line: store it. It ends
        # the re-sends of committed messages, and an open run was stale rows (stored too).
        run = []
        resends_over = True
    if run:
        return DedupePlan(tuple(drop[: run[0]]), run[0], False)
    return DedupePlan(tuple(drop), n, resends_over)
