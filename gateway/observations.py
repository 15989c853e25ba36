"""What sources hand to the gateway core, before anything is signed.

Sources parse untrusted bytes into observations and pass them to a
:class:`Sink`. ``Sink.submit`` returns only once the resulting records are
durable in the spool, so a source acknowledges its device or broker (MQTT
PUBACK, for instance) after ``submit`` returns and never before.

A source whose transport redelivers (MQTT QoS 1 after a reconnect) can also hand
over the :class:`Delivery` identity of each message; a sink that implements
:class:`DeliverySink` records those identities in the same commit as the records,
so a redelivery of something already committed is recognised and not stored
twice (docs/adr/0210-mqtt-exactly-once.md). Serial sources have no redelivery
and use the plain :class:`Sink`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "NULL_VALUE",
    "BadInput",
    "Delivery",
    "DeliverySink",
    "Measurement",
    "Observation",
    "RecordedDelivery",
    "ScanEvent",
    "Sink",
    "Source",
]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value of one quantity from one sensor, e.g. temperature -18.2 CEL."""

    src: str  # sensor id as named in the device registry
    q: str  # temperature, humidity, ...
    val: float | int
    unit: str  # UN/ECE Rec 20 code: CEL, P1, ...
    dev_t: int | None = None  # the device's own timestamp in ms (None when absent or unusable)
    dev_seq: int | None = None  # the device's own counter (Ruuvi measurementSequenceNumber)


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """One barcode read by a scanner; the registry supplies read point and step."""

    src: str
    raw: str  # payload with the symbology id stripped; GS kept as \x1d
    sym: str  # "]C1", "]d2", ... or "" when absent
    gs1: dict[str, str] = field(default_factory=dict)  # AI -> value


@dataclass(frozen=True, slots=True)
class BadInput:
    """Input that yields no record of its own. It becomes a signed gap record with
    ``reason`` (``bad-frame``: could not be parsed; ``null-value``: the device sent a
    quantity the route wants without a value) and ``code: detail`` as its detail."""

    src: str
    code: str  # stable error code, e.g. "bad-checksum", "not-json", "unknown-symbology"
    detail: str  # a human sentence; never the whole untrusted payload
    reason: str = "bad-frame"  # a proofs.records.GAP_REASONS member


# Code and gap reason of a quantity reported without a value (JSON null, a
# "not available" sentinel): the reading is lost, and the loss is recorded.
NULL_VALUE = "null-value"


Observation = Measurement | ScanEvent | BadInput


@dataclass(frozen=True, slots=True)
class Delivery:
    """The transport identity of one message that may be redelivered (MQTT QoS 1).

    ``session`` names the broker session (client id @ broker host:port): packet ids
    are only unique within it. ``digest`` is SHA-256 over topic, NUL, payload.
    """

    source: str
    session: str
    packet_id: int  # 1..65535
    dup: bool  # the broker says it may have sent this before
    digest: bytes


@dataclass(frozen=True, slots=True)
class RecordedDelivery:
    """A delivery whose records are committed: the newest one per (session, packet id)."""

    digest: bytes
    ordinal: int  # 1, 2, 3 ... per session, in commit (= delivery) order


class Sink(Protocol):
    async def submit(self, observations: Sequence[Observation]) -> None:
        """Sign, spool and commit; return after the commit is durable."""


@runtime_checkable
class DeliverySink(Protocol):
    """A :class:`Sink` that also records delivery identities in the spool commit."""

    async def submit(
        self, observations: Sequence[Observation], deliveries: Sequence[Delivery] = ()
    ) -> None:
        """Like :meth:`Sink.submit`, recording ``deliveries`` in the same transaction
        (also when ``observations`` is empty: a message that yielded nothing)."""

    async def recorded_deliveries(
        self, session: str, packet_ids: Sequence[int]
    ) -> tuple[dict[int, RecordedDelivery], int]:
        """The committed deliveries for these packet ids, and the session's last ordinal
        (0 when none)."""

    def duplicates_dropped(self, source: str, count: int) -> None:
        """Count redeliveries recognised as already committed (and acked, not stored)."""


class Source(Protocol):
    name: str

    async def run(self, sink: Sink) -> None:
        """Read forever, reconnecting with backoff; return only when cancelled."""
