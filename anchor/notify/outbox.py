"""What goes into the outbox, and the rules of sending it (pure but for the store)."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable, Sequence
from typing import Any

from anchor.ledger.model import Claim, Disposition, Notification
from anchor.ledger.ports import LedgerTx
from anchor.notify.config import NotifyConfig
from anchor.provenance.dispositions import disposition_json
from proofs.canonical import canonical_json
from proofs.claims import ClaimEvent

__all__ = [
    "backoff_ms",
    "claim_announcer",
    "claim_payload",
    "disposition_announcer",
    "disposition_payload",
    "enqueue",
    "idempotency_key",
    "signature_header",
    "verify_signature",
]


def idempotency_key(kind: str, subject: str, n: int, org: str, channel: str) -> str:
    """The same change told to the same organisation on the same channel: one key."""
    text = f"coldtrail-notification/v1\n{kind}\n{subject}\n{n}\n{org}\n{channel}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def disposition_payload(d: Disposition) -> dict[str, Any]:
    """The disposition as the API shows it (with the log key's signature), and the lot."""
    return {"event": "disposition", "gtin": d.gtin, "lot": d.lot, **disposition_json(d),
            "page": f"/01/{d.gtin}/10/{d.lot}"}  # fmt: skip


def claim_payload(c: Claim, e: ClaimEvent) -> dict[str, Any]:
    """Never the claimant's words or contact: the receiver fetches the claim with its
    operator token (GET /v1/claims/{id})."""
    return {
        "event": "claim",
        "claim": c.id,
        "n": e.n,
        "state": e.state,
        "by": e.by,
        "at": e.at,
        "gtin": c.gtin,
        "lot": c.lot,
        "routed_to": c.routed_to,
        "holder": c.holder,
        "route_reason": c.route_reason,
        "answer_due": c.answer_due,
        "resolve_due": c.resolve_due,
        "claim_url": f"/v1/claims/{c.id}",
    }


def enqueue(
    tx: LedgerTx,
    config: NotifyConfig,
    orgs: Sequence[str],
    kind: str,
    subject: str,
    n: int,
    payload: dict[str, Any],
    now: int,
) -> list[Notification]:
    """One row per organisation and channel it is subscribed on, in ``tx``."""
    rows = []
    for org in dict.fromkeys(o for o in orgs if o):
        for channel in config.channels(org):
            key = idempotency_key(kind, subject, n, org, channel)
            text = canonical_json({**payload, "to": org, "idempotency_key": key}).decode()
            row = Notification(key, org, channel, kind, subject, text, now, next_attempt_at=now)
            tx.add_notification(row)
            rows.append(row)
    return rows


def signature_header(secret: bytes, body: bytes, t: int) -> str:
    """``Coldtrail-Signature``: ``t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    mac = hmac.new(secret, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    secret: bytes, body: bytes, header: str, now: int, tolerance_s: int = 300
) -> bool:
    """What a receiver does (docs/notifications.md): the MAC over the time and the body,
    and a time within ``tolerance_s`` of its clock (a replayed old message is refused)."""
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = signature_header(secret, body, t).split("v1=", 1)[1]
    return abs(now - t) <= tolerance_s and hmac.compare_digest(expected, fields.get("v1", ""))


def backoff_ms(attempt: int, config: NotifyConfig, rng: random.Random | None = None) -> int:
    """Wait after failed attempt ``attempt`` (1-based): base * 2^(attempt-1), capped, plus
    up to a quarter more at random so that many receivers coming back are not hit at once."""
    base = min(config.retry_base_s * 2 ** (attempt - 1), config.retry_cap_s)
    jitter = (rng or random).uniform(0.0, 0.25)
    return int(base * (1 + jitter) * 1000)


def disposition_announcer(
    config: NotifyConfig,
) -> Callable[[LedgerTx, Disposition, Sequence[str]], None]:
    """The ``announce`` of anchor.provenance.dispositions: the custodian and the owner."""

    def announce(tx: LedgerTx, d: Disposition, orgs: Sequence[str]) -> None:
        enqueue(tx, config, orgs, "disposition", f"{d.gtin}/{d.lot}", d.n,
                disposition_payload(d), d.at)  # fmt: skip

    return announce


def claim_announcer(config: NotifyConfig) -> Callable[[LedgerTx, Claim, ClaimEvent], None]:
    """The ``announce`` of anchor.provenance.claims: the routed organisation and the
    lot's owner."""

    def announce(tx: LedgerTx, c: Claim, e: ClaimEvent) -> None:
        enqueue(tx, config, [c.routed_to, c.owner], "claim", c.id, e.n, claim_payload(c, e), e.at)

    return announce
