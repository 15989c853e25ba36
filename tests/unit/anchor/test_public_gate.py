"""anchor.public: token buckets, the bounded cache, client identity and the busy queue."""

from __future__ import annotations

import asyncio
import threading
from ipaddress import ip_network
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from anchor.config import load_config
from anchor.errors import ConfigError
from anchor.http.limits import BoundedCache, Overloaded, PublicGate, PublicLimits, TokenBuckets
from anchor.metrics import AnchorMetrics


def test_a_bucket_allows_its_burst_then_paces_to_its_rate() -> None:
    b = TokenBuckets(rate_per_s=2.0, burst=3, clients_max=10)
    assert [b.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("a", 0.0) == pytest.approx(0.5)  # one token comes back in 1/rate
    assert b.take("b", 0.0) == 0.0  # another client has its own bucket
    assert b.take("a", 0.5) == 0.0


def test_buckets_are_bounded_in_number() -> None:
    b = TokenBuckets(rate_per_s=1.0, burst=1, clients_max=100)
    for i in range(10_000):
        b.take(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(b._buckets) == 100


def test_the_cache_is_bounded_by_entries_and_bytes() -> None:
    c: BoundedCache[int, str] = BoundedCache(max_entries=3, max_bytes=100)
    for i in range(5):
        c.put(i, str(i), 10)
    assert len(c) == 3 and c.get(0) is None and c.get(4) == "4"
    c.put(9, "big", 90)
    assert c.bytes <= 100 and c.get(9) == "big"
    c.put(10, "huge", 101)  # larger than the whole cache: not kept, nothing evicted
    assert c.get(10) is None and c.get(9) == "big"


def _request(peer: str, headers: dict[str, str] | None = None) -> web.Request:
    class _Transport:
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return (peer, 40000) if name == "peername" else default

    return make_mocked_request("GET", "/v1/provenance", headers=headers, transport=_Transport())


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    spoof = {"X-Forwarded-For": "203.0.113.9"}
    assert PublicGate.remote_of(_request("198.51.100.7", spoof), ()) == "198.51.100.7"
    proxy = (ip_network("10.0.0.0/8"),)
    assert PublicGate.remote_of(_request("198.51.100.7", spoof), proxy) == "198.51.100.7"
    chain = {"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.0.0.2"}
    # right-most hop that is not a trusted proxy: what the client could not forge
    assert PublicGate.remote_of(_request("10.0.0.1", chain), proxy) == "203.0.113.9"
    junk = {"X-Forwarded-For": "not-an-ip"}
    assert PublicGate.remote_of(_request("10.0.0.1", junk), proxy) == "10.0.0.1"


def test_token_ids_count_as_clients_only_once_verified() -> None:
    gate = PublicGate(PublicLimits(), AnchorMetrics())
    try:
        token = {"Authorization": "Bearer ct_0123456789abcdef_" + "s" * 43}
        assert gate.client_of(_request("192.0.2.1", token)) == "ip:192.0.2.1"
        gate.note_verified_token("0123456789abcdef")
        assert gate.client_of(_request("192.0.2.1", token)) == "token:0123456789abcdef"
    finally:
        gate.close()


async def test_a_full_queue_refuses_at_once_with_busy() -> None:
    gate = PublicGate(PublicLimits(workers=1, queue_max=2), AnchorMetrics())
    release = threading.Event()
    try:
        running = [asyncio.create_task(gate.run(release.wait, 10)) for _ in range(3)]
        await asyncio.sleep(0.05)  # one runs, two wait
        with pytest.raises(Overloaded) as e:
            await gate.run(lambda: None)
        assert e.value.code == "busy" and e.value.status == 429 and e.value.retry_after_s >= 1
        release.set()
        assert await asyncio.gather(*running) == [True, True, True]
    finally:
        release.set()
        gate.close()


def test_config_keys_for_the_public_side() -> None:
    config = load_config(None, env={}, trusted_proxies="10.0.0.1, 192.168.0.0/24")
    assert len(config.trusted_proxy_networks()) == 2
    assert config.trusted_proxies == "10.0.0.1, 192.168.0.0/24"
    assert load_config(None, env={}).trusted_proxy_networks() == ()
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_config(None, env={}, trusted_proxies="proxy.example")
    with pytest.raises(ConfigError, match="public_rate_per_s"):
        load_config(None, env={}, public_rate_per_s=0)
