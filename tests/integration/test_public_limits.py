"""Issue 9 on a real anchor process: heavy public load is limited, cached, and never
stalls /healthz or a gateway's ingest (order and liveness, not speed)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import aiohttp

from support.provenance_fixtures import (
    GTIN,
    LOT,
    MIN,
    T0,
    ingest_bodies,
    running_anchor,
    standard_journey,
)

LOAD_REQUESTS = 200
CLIENTS = 4
# One public worker and a short queue: the load is bigger than both on purpose.
EXTRA = (
    "public_workers = 1\n"
    "public_queue_max = 12\n"
    "public_rate_per_s = 5.0\n"
    "public_burst_requests = 40\n"
    'trusted_proxies = "127.0.0.1"\n'
)


def _heavy_journey() -> Any:
    j = standard_journey()
    # ~14k truck readings: a sensor window over them is real work for the anchor.
    j.readings("truck-07-gw", T0 + 60 * MIN + 1, T0 + 300 * MIN, 1_000, lambda i, t: 4.0 + i % 7)
    # A gateway enrolled with the journey that has sent nothing yet: it ingests mid-load.
    j.gateway("late-gw", "fresh-farms", "dock-9")
    return j


async def _metric(session: aiohttp.ClientSession, base: str, name: str, **labels: str) -> float:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def test_public_load_is_limited_cached_and_does_not_stall_health_or_ingest(
    tmp_path: Path,
) -> None:
    journey = _heavy_journey()
    tokens: dict[str, str] = {}
    with running_anchor(
        tmp_path, journey, extra_toml=EXTRA, batch_size=1000, tokens_out=tokens
    ) as base:
        journey.readings("late-gw", T0, T0 + 5 * MIN, MIN, lambda i, t: 3.0)
        [(org, late_batch)] = [
            (o, b) for o, b in ingest_bodies(journey) if b["manifest"]["gw"] == "late-gw"
        ]
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            done: list[tuple[float, int, str | None]] = []

            async def public(i: int) -> None:
                await asyncio.sleep(i * 0.01)  # 200 requests over ~2 s
                # A distinct window each time: nothing for the cache, all real work.
                url = f"{base}/v1/provenance?sensor=probe-truck-07-gw&from={T0 + i}"
                headers = {"X-Forwarded-For": f"10.9.0.{i % CLIENTS + 1}"}
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    done.append((time.monotonic(), resp.status, resp.headers.get("Retry-After")))
                    if resp.status == 429:
                        problem = json.loads(await resp.read())
                        assert problem["code"] in ("rate-limited", "busy"), problem
                        assert resp.content_type == "application/problem+json"

            load = [asyncio.create_task(public(i)) for i in range(LOAD_REQUESTS)]
            await asyncio.sleep(0.3)  # the queue is full by now
            async with session.get(base + "/healthz") as resp:
                health_status = resp.status
                health_done = time.monotonic()
            async with session.post(
                base + "/v1/batches",
                json=late_batch,
                headers={"Authorization": f"Bearer {tokens[org]}"},
            ) as resp:
                ingest_status = resp.status
                ingest_body = await resp.text()
                ingest_done = time.monotonic()
            await asyncio.gather(*load)

            assert health_status == 200
            assert ingest_status == 201, ingest_body
            served = [t for t, status, _ in done if status == 200]
            refused = [(status, after) for _, status, after in done if status == 429]
            assert served, "some public queries must get through"
            # (a) over the limits: 429 with Retry-After, and some of them because the queue was full
            assert refused and all(after is not None and int(after) >= 1 for _, after in refused)
            # (b) health and ingest did not wait for the public backlog to drain
            assert health_done < max(served)
            assert ingest_done < max(served)
            assert len(done) == LOAD_REQUESTS

            # (c) the same query at the same log size comes from the cache
            before = await _metric(
                session, base, "coldtrail_anchor_answer_cache_hits_total", kind="page"
            )
            lot = f"{base}/01/{GTIN}/10/{LOT}?format=json"
            quiet = {"X-Forwarded-For": "10.9.1.1"}
            bodies = []
            for _ in range(3):
                async with session.get(lot, headers=quiet) as resp:
                    assert resp.status == 200
                    bodies.append(await resp.read())
            after = await _metric(
                session, base, "coldtrail_anchor_answer_cache_hits_total", kind="page"
            )
            assert after - before >= 2
            assert bodies[0] == bodies[1] == bodies[2]
            refused_total = await _metric(
                session, base, "coldtrail_anchor_public_refused_total", code="busy"
            )
            refused_total += await _metric(
                session, base, "coldtrail_anchor_public_refused_total", code="rate-limited"
            )
            assert refused_total == len(refused)
