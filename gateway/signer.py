"""Observations -> signed records: the one place the gateway key signs.

Signing happens in two steps so that ``seq`` is allocated inside the spool's
write transaction (no reuse, no holes): :meth:`Signer.drafts` turns
observations into unsigned records with ``seq=0`` and the clock evidence of the
moment they arrived; :meth:`Signer.seal` gives a draft its
``seq``, signs it and returns the canonical bytes that are stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from proofs import records as rec
from proofs.errors import FormatError
from proofs.identifiers import is_identifier
from proofs.keys import SigningKey
from proofs.plausibility import implausible
from proofs.records import Gap, Manifest, Reading, Scan

from .clock import Clock, ClockReading
from .observations import BadInput, Measurement, Observation, ScanEvent
from .registry import DeviceRegistry

__all__ = ["CLOCK_SRC", "GATEWAY_SRC", "SPOOL_SRC", "Draft", "Signer"]

Draft = Reading | Scan | Gap
# ``src`` of gap records the gateway makes about itself (docs/formats.md)
GATEWAY_SRC = "gateway"  # restarts
CLOCK_SRC = "clock"  # clock jumps
SPOOL_SRC = "spool"  # evictions (budget, free space) and records a full disk refused
_SALTS_PER_DRAW = 256


class Signer:
    def __init__(
        self,
        gw: str,
        key: SigningKey,
        clock: Clock,
        registry: Callable[[], DeviceRegistry],
        *,
        clock_jump_threshold_s: float = 2.0,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.gw = gw
        self._key = key
        self._clock = clock
        self._registry = registry
        self._jump_ms = clock_jump_threshold_s * 1000.0
        self._entropy = entropy
        self._last: ClockReading | None = None
        self._pool = b""
        self._pool_at = 0
        self._dev_seq: dict[str, int] = {}

    @property
    def key_id(self) -> str:
        return self._key.key_id

    # --- drafts ---------------------------------------------------------------

    def _now(self) -> tuple[ClockReading, list[Draft]]:
        """Read the clock; a wall clock that moved against the monotonic one yields a gap."""
        now = self._clock.read()
        extra: list[Draft] = []
        last = self._last
        if last is not None and last.evidence.boot == now.evidence.boot:
            wall_delta = now.wall_ms - last.wall_ms
            mono_delta = (now.evidence.mono_us - last.evidence.mono_us) / 1e3
            if abs(wall_delta - mono_delta) > self._jump_ms:
                extra.append(
                    self._gap_draft(
                        now,
                        CLOCK_SRC,
                        "clock-jump",
                        f"wall clock moved {wall_delta} ms while the monotonic clock moved"
                        f" {mono_delta:.0f} ms",
                        count=0,
                    )
                )
        self._last = now
        return now, extra

    def _salt(self) -> str:
        # One getrandom() per 256 salts rather than per record: salts are published
        # with their records anyway, what matters is that nobody can guess them first.
        at = self._pool_at
        if at + rec.SALT_SIZE > len(self._pool):
            self._pool, at = self._entropy(rec.SALT_SIZE * _SALTS_PER_DRAW), 0
        self._pool_at = at + rec.SALT_SIZE
        return rec.new_salt(self._pool[at : at + rec.SALT_SIZE])

    def _gap_draft(
        self, now: ClockReading, src: str, reason: str, detail: str, count: int = 1
    ) -> Gap:
        return Gap(
            gw=self.gw,
            seq=0,
            src=src if is_identifier(src) else GATEWAY_SRC,
            t=now.wall_ms,
            clk=now.evidence,
            salt=self._salt(),
            reason=reason,
            # Never refused: a lone surrogate from a device's JSON is written escaped.
            detail=detail[:1024].encode("utf-8", "backslashreplace").decode("utf-8"),
            count=count,
        )

    def gap_draft(self, src: str, reason: str, detail: str, count: int = 1) -> Gap:
        now, _ = self._now()
        return self._gap_draft(now, src, reason, detail, count)

    def drafts(self, observations: Sequence[Observation]) -> list[Draft]:
        """Unsigned records for ``observations``, in order, plus any gaps they reveal."""
        now, out = self._now()
        registry = self._registry()
        for obs in observations:
            try:
                out.extend(self._draft(obs, now, registry))
            except FormatError as e:
                # Valid JSON from a source can still break record rules (a unit code that is
                # not UN/ECE, a NaN): the loss is recorded, never dropped.
                out.append(self._gap_draft(now, obs.src, "bad-frame", f"unusable observation: {e}"))
        return out

    def _draft(self, obs: Observation, now: ClockReading, registry: DeviceRegistry) -> list[Draft]:
        gw, t, clk = self.gw, now.wall_ms, now.evidence
        if isinstance(obs, Measurement):
            out: list[Draft] = []
            sensor = registry.sensor(obs.src)
            if obs.dev_seq is not None:
                previous = self._dev_seq.get(obs.src)
                self._dev_seq[obs.src] = obs.dev_seq
                if previous is not None and obs.dev_seq > previous + 1:
                    missing = obs.dev_seq - previous - 1
                    out.append(
                        self._gap_draft(
                            now,
                            obs.src,
                            "silent-sensor",
                            f"device counter jumped from {previous} to {obs.dev_seq}",
                            count=missing,
                        )
                    )
            value = sensor.calibrate(obs.q, obs.val) if sensor else obs.val
            reading = Reading(
                gw=gw,
                seq=0,
                t=t,
                clk=clk,
                src=obs.src,
                salt=self._salt(),
                asset=sensor.asset if sensor else None,
                q=obs.q,
                val=value,
                unit=obs.unit,
                dev_t=obs.dev_t,
            )
            # Every source's readings pass here, so this is the one plausibility check:
            # the value as it would be signed (after calibration), which is what the
            # anchor checks too. The anchor refuses a batch holding an implausible
            # reading, so the gateway never signs one; it signs the loss instead. The
            # Reading is built first so that what the record format refuses (NaN, a unit
            # that is no UN/ECE code) stays a bad-frame gap, as before.
            why = implausible(obs.q, value, obs.unit)
            if why is not None:
                raw = "" if value == obs.val else f" (reported {obs.val:g} before calibration)"
                out.append(
                    self._gap_draft(
                        now, obs.src, "implausible-value", f"sensor {obs.src}: {why}{raw}"
                    )
                )
            else:
                out.append(reading)
            return out
        if isinstance(obs, ScanEvent):
            scanner = registry.scanner(obs.src)
            return [
                Scan(
                    gw=gw,
                    seq=0,
                    t=t,
                    clk=clk,
                    src=obs.src,
                    salt=self._salt(),
                    asset=scanner.asset if scanner else None,
                    raw=obs.raw,
                    sym=obs.sym,
                    gs1=dict(obs.gs1),
                    step=scanner.step if scanner else "inspecting",
                    rp=scanner.read_point if scanner else "",
                )
            ]
        if isinstance(obs, BadInput):
            return [self._gap_draft(now, obs.src, obs.reason, f"{obs.code}: {obs.detail}")]
        raise TypeError(f"not an observation: {type(obs).__name__}")

    # --- signing --------------------------------------------------------------

    def seal(self, draft: Draft, seq: int) -> bytes:
        """``draft`` numbered ``seq`` and signed, as canonical bytes (called inside the
        spool transaction): what the spool stores, the uplink sends and the anchor hashes."""
        return rec.seal(draft, seq, self._key)

    def evicted_gap(self, seq: int, lost_from: int, lost_to: int, count: int, detail: str) -> Gap:
        """The signed record that says the spool dropped ``lost_from..lost_to`` (budget or
        free space, docs/adr/0203 and 0213)."""
        return self.spool_gap(seq, "evicted", count, detail, (lost_from, lost_to))

    def spool_gap(
        self,
        seq: int,
        reason: str,
        count: int,
        detail: str,
        lost: tuple[int, int] | None = None,
    ) -> Gap:
        """A signed gap the spool writes inside its own transaction (it owns ``seq``):
        ``evicted`` with the seq range ``lost``, or ``disk-full`` (records that never got
        a seq because the filesystem was full, docs/adr/0213)."""
        now = self._clock.read()
        gap = Gap(
            gw=self.gw,
            seq=seq,
            src=SPOOL_SRC,
            t=now.wall_ms,
            clk=now.evidence,
            salt=self._salt(),
            reason=reason,
            detail=detail[:1024],
            lost_from=None if lost is None else lost[0],
            lost_to=None if lost is None else lost[1],
            count=count,
        )
        return rec.sign(gap, self._key)

    def sign_manifest(self, manifest: Manifest) -> Manifest:
        return rec.sign(manifest, self._key)

    def now_ms(self) -> int:
        return self._clock.read().wall_ms
