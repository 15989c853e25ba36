"""The delivery loop: due outbox rows are leased, sent and settled.

Every ``interval_s`` the loop reads the due rows, takes each with a lease (so of several
anchor processes one sends it; a process killed mid-send leaves a lease that runs out,
and the row is sent again: at least once, under the same ``Idempotency-Key``), sends it
with at most ``concurrency`` in flight and a timeout, and records the attempt. Nothing
here blocks ingest: the store calls run in threads, the sends are bounded.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
from dataclasses import dataclass, field

import aiohttp
import paho.mqtt.publish as mqtt_publish

from anchor.ledger.model import Notification, NotificationAttempt
from anchor.ledger.ports import LedgerStore
from anchor.notify.config import NotifyConfig
from anchor.notify.outbox import backoff_ms, signature_header

__all__ = ["Deliverer"]

log = logging.getLogger(__name__)


@dataclass
class Deliverer:
    store: LedgerStore
    config: NotifyConfig
    interval_s: float = 0.5
    concurrency: int = 8
    batch: int = 64
    owner: str = field(default_factory=lambda: secrets.token_hex(8))
    sent: int = 0
    failed_attempts: int = 0

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self.run_once(session)
                except Exception:  # the next pass retries: rows stay pending
                    log.exception("notification pass failed")
                await asyncio.sleep(self.interval_s)

    async def run_once(self, session: aiohttp.ClientSession) -> int:
        """One pass: the due rows this process could lease, sent; how many were tried."""
        now = int(time.time() * 1000)
        due = await asyncio.to_thread(self.store.due_notifications, now, self.batch)
        gate = asyncio.Semaphore(self.concurrency)
        lease_ms = int(self.config.timeout_s * 1000) * 3

        async def one(n: Notification) -> bool:
            async with gate:
                if not await asyncio.to_thread(self._lease, n.key, now, now + lease_ms):
                    return False
                ok, status = await self._send(session, n)
                await asyncio.to_thread(self._settle, n, ok, status)
                return True

        tried = await asyncio.gather(*(one(n) for n in due))
        return sum(tried)

    def _lease(self, key: str, now: int, until: int) -> bool:
        with self.store.transaction() as tx:
            return tx.lease_notification(key, self.owner, now, until)

    def _settle(self, n: Notification, ok: bool, status: str) -> None:
        at = int(time.time() * 1000)
        attempt = NotificationAttempt(n.key, n.attempts + 1, n.channel, status[:300], ok, at)
        give_up = not ok and attempt.n >= self.config.max_attempts
        next_at = at + (0 if ok else backoff_ms(attempt.n, self.config))
        with self.store.transaction() as tx:
            tx.finish_attempt(n, attempt, next_at, give_up)
        if ok:
            self.sent += 1
        else:
            self.failed_attempts += 1
            log.warning(
                "notification %s to %s by %s: attempt %d failed (%s)%s",
                n.key, n.org_id, n.channel, attempt.n, status[:120],
                "; giving up" if give_up else "",
            )  # fmt: skip

    async def _send(self, session: aiohttp.ClientSession, n: Notification) -> tuple[bool, str]:
        if n.channel == "webhook":
            return await self._webhook(session, n)
        if n.channel == "mqtt":
            return await asyncio.to_thread(self._mqtt, n)
        return False, f"unknown channel {n.channel!r}"

    async def _webhook(self, session: aiohttp.ClientSession, n: Notification) -> tuple[bool, str]:
        hook = self.config.webhook(n.org_id)
        if hook is None:
            return False, "the organisation has no webhook any more"
        body = n.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": n.key,
            "Coldtrail-Event": n.kind,
            "Coldtrail-Signature": signature_header(hook.secret, body, int(time.time())),
            "User-Agent": "coldtrail-anchor",
        }
        try:
            async with session.post(hook.url, data=body, headers=headers) as resp:
                await resp.read()
                return 200 <= resp.status < 300, f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return False, f"{type(e).__name__}: {e}"[:300]

    def _mqtt(self, n: Notification) -> tuple[bool, str]:
        target = self.config.mqtt
        if target is None or n.org_id not in target.orgs:
            return False, "the organisation has no MQTT subscription any more"
        # A context from create_default_context verifies the broker's certificate and name.
        tls = ssl.create_default_context(cafile=target.ca_file or None) if target.tls else None
        try:
            mqtt_publish.single(
                f"{target.topic_prefix}/{n.org_id}/{n.kind}",
                n.payload,
                qos=1,
                hostname=target.host,
                port=target.port,
                client_id=f"coldtrail-notify-{self.owner}",
                tls=tls,  # type: ignore[arg-type]  # paho accepts an SSLContext (tls_set_context)
                keepalive=int(self.config.timeout_s) + 5,
            )
        except (OSError, ValueError) as e:
            return False, f"{type(e).__name__}: {e}"[:300]
        return True, "published"
