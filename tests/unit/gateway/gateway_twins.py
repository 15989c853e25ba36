"""In-memory twins and fixtures shared by the gateway unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.clock import Clock, ClockReading
from gateway.errors import UplinkError
from gateway.registry import DeviceRegistry, ScannerEntry, SensorEntry
from gateway.signer import Signer
from gateway.uplink import AnchorReply
from proofs.keys import SigningKey
from proofs.records import ClockEvidence, Manifest
from support.standin_anchor import StandinAnchor

BOOT = "11111111-2222-3333-4444-555555555555"


class ScriptedClock(Clock):
    """Wall and monotonic clocks that a test moves by hand."""

    def __init__(self, wall_ms: int = 1_763_769_600_000, mono_us: int = 10**6) -> None:
        self.wall_ms = wall_ms
        self.mono_us = mono_us
        self.synced = True

    def advance(self, seconds: float) -> None:
        self.wall_ms += int(seconds * 1000)
        self.mono_us += int(seconds * 1e6)

    def read(self) -> ClockReading:
        return ClockReading(self.wall_ms, ClockEvidence(self.mono_us, BOOT, self.synced))


def registry() -> DeviceRegistry:
    return DeviceRegistry(
        {"probe-1": SensorEntry("probe-1", "truck-07/reefer", {"temperature": -0.5})},
        {"dock-scanner": ScannerEntry("dock-scanner", "dock-1", "loading", "truck-07")},
    )


def make_signer(
    gw: str = "truck-07", key: SigningKey | None = None
) -> tuple[Signer, SigningKey, ScriptedClock]:
    key = key or SigningKey.generate()
    clock = ScriptedClock()
    counter: Iterator[int] = iter(range(10**9))

    def entropy(n: int) -> bytes:  # distinct, predictable 16-byte salts
        return b"".join(next(counter).to_bytes(16, "big") for _ in range(n // 16))

    signer = Signer(gw, key, clock, registry, entropy=entropy)
    return signer, key, clock


@dataclass
class MemoryBatchStore:
    """The batcher's view of a spool, in memory: records are just counted."""

    unbatched: int = 0
    sealed_unsent: int = 0
    max_records: int = 10
    sealed: list[int] = field(default_factory=list)
    records_added: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, n: int) -> None:
        self.unbatched += n
        self.records_added.set()

    async def seal_batch(self) -> Manifest | None:
        if not self.unbatched:
            return None
        n = min(self.unbatched, self.max_records)
        self.unbatched -= n
        self.sealed.append(n)
        return None


class StandinTransport:
    """The uplink's ``AnchorTransport`` in memory: hands each POST to a stand-in anchor
    (tests/support/standin_anchor.py) without HTTP. While ``down`` it fails as an
    unreachable anchor does; with ``lose_reply`` the anchor takes the batch and the
    answer is lost on the way back."""

    def __init__(self, anchor: StandinAnchor) -> None:
        self.anchor = anchor
        self.down = False
        self.lose_reply = False
        self.posts = 0

    async def post_batch(self, payload: bytes) -> AnchorReply:
        self.posts += 1
        if self.down:
            raise UplinkError("anchor unreachable: connection refused", code="transport-error")
        status, body, headers = self.anchor.answer(payload, f"Bearer {self.anchor.token}")
        if self.lose_reply:
            raise UplinkError("anchor unreachable: connection reset", code="transport-error")
        retry_after = headers.get("Retry-After")
        return AnchorReply(status, body, None if retry_after is None else float(retry_after))
