"""What sources hand to the gateway core, before anything is signed.

Sources parse untrusted bytes into observations and pass them to a
:class:`Sink`. ``Sink.submit`` returns only once the resulting records are
durable in the spool, so a source acknowledges its device or broker (MQTT
PUBACK, for instance) after ``submit`` returns and never before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["BadInput", "Measurement", "Observation", "ScanEvent", "Sink", "Source"]


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
    """Input that could not be parsed. It becomes a signed ``bad-frame`` gap record."""

    src: str
    code: str  # stable error code, e.g. "bad-checksum", "not-json", "unknown-symbology"
    detail: str  # a human sentence; never the whole untrusted payload


Observation = Measurement | ScanEvent | BadInput


class Sink(Protocol):
    async def submit(self, observations: Sequence[Observation]) -> None:
        """Sign, spool and commit; return after the commit is durable."""


class Source(Protocol):
    name: str

    async def run(self, sink: Sink) -> None:
        """Read forever, reconnecting with backoff; return only when cancelled."""
