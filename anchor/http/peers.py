"""The consortium member's HTTP client (aiohttp): tlog-witness requests to the other
members and alerts to a webhook. The member logic (anchor.consortium.member) sees only
:class:`~anchor.consortium.member.PeerTransport`, so it imports no HTTP library."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

__all__ = ["AiohttpPeers"]

_log = logging.getLogger("coldtrail.anchor.consortium")


class AiohttpPeers:
    def __init__(self, timeout_s: float = 15.0) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def post_text(self, url: str, body: bytes) -> tuple[int, str, str]:
        """``(status, content type, text)``; raises OSError on a transport failure."""
        try:
            async with self._client().post(url, data=body) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), await resp.text()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise OSError(f"{url}: {e}") from e

    async def alert(self, url: str, payload: dict[str, Any], attempts: int = 5) -> bool:
        """POST ``payload`` as JSON, retried with backoff; whether it was taken."""
        for attempt in range(attempts):
            try:
                async with self._client().post(url, json=payload) as resp:
                    if resp.status < 300:
                        return True
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                _log.debug("alert to %s failed: %s", url, e)
            await asyncio.sleep(min(2**attempt, 30))
        return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
