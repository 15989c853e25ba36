"""Real signed cold-chain journeys for provenance tests: keys, records, batches, checkpoints.

A :class:`Journey` signs records the way a gateway does (per-gateway ``seq``,
clock evidence, salt), batches them into signed, chained manifests and publishes
them either into the in-memory twin (:class:`MemoryProvenanceSource`) or into the
ledger's SQLite store, so the same journey backs unit, web and browser tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchor.provenance.source import GatewayInfo
from proofs.keys import SigningKey
from proofs.merkle import MerkleTree
from proofs.note import ALG_COSIGNATURE_V1, NoteSigner
from proofs.records import (
    ZERO_HASH,
    ClockEvidence,
    Gap,
    Manifest,
    Reading,
    Scan,
    new_salt,
    sign,
)
from support.memory_source import MemoryProvenanceSource

GTIN = "09506000134352"
LOT = "LOT-2026-11A"
SSCC = "106141411234567897"
T0 = 1_795_000_000_000  # 2026-11-18 ~08:26 UTC
MIN = 60_000

Record = Reading | Scan | Gap


@dataclass
class _Gateway:
    id: str
    org: str
    asset: str
    key: SigningKey = field(default_factory=SigningKey.generate)
    seq: int = 0
    boot: str = "boot-1"
    boot_t: int = T0 - 3_600_000  # the wall clock when this boot's monotonic clock read 0
    records: list[Record] = field(default_factory=list)


class Journey:
    """Builds a signed journey. Times are wall-clock ms; monotonic clocks follow them
    unless a test makes the wall clock jump."""

    def __init__(self) -> None:
        self.gateways: dict[str, _Gateway] = {}
        self.log_key = SigningKey.generate()
        self.member_key = SigningKey.generate()
        self.log_signer = NoteSigner("coldtrail.test/log", self.log_key)
        self.member = NoteSigner("coldtrail.test/member", self.member_key, ALG_COSIGNATURE_V1)

    def gateway(self, gw: str, org: str, asset: str) -> None:
        self.gateways[gw] = _Gateway(gw, org, asset)

    def _common(
        self,
        gw: str,
        t: int,
        src: str,
        *,
        sync: bool = True,
        mono_t: int | None = None,
        boot: str | None = None,
    ) -> dict[str, Any]:
        g = self.gateways[gw]
        g.seq += 1
        mono_us = ((mono_t if mono_t is not None else t) - g.boot_t) * 1_000
        return {
            "gw": gw,
            "seq": g.seq,
            "src": src,
            "t": t,
            "clk": ClockEvidence(mono_us=max(0, mono_us), boot=boot or g.boot, sync=sync),
            "salt": new_salt(os.urandom(16)),
            "asset": g.asset,
        }

    def _add(self, gw: str, record: Record) -> Record:
        signed = sign(record, self.gateways[gw].key)
        self.gateways[gw].records.append(signed)
        return signed

    def scan(
        self,
        gw: str,
        t: int,
        step: str,
        *,
        gtin: str = GTIN,
        lot: str = LOT,
        rp: str = "",
        gs1: dict[str, str] | None = None,
        mono_t: int | None = None,
    ) -> Scan:
        gs1 = gs1 if gs1 is not None else {"01": gtin, "10": lot}
        raw = "".join(f"{ai}{value}" for ai, value in gs1.items())
        rec = Scan(
            **self._common(gw, t, "scanner-" + gw, mono_t=mono_t),
            raw=raw,
            sym="]C1",
            gs1=gs1,
            step=step,
            rp=rp or "urn:rp:" + self.gateways[gw].asset,
        )
        signed = self._add(gw, rec)
        assert isinstance(signed, Scan)
        return signed

    def reading(
        self,
        gw: str,
        t: int,
        val: float,
        *,
        src: str = "",
        q: str = "temperature",
        sync: bool = True,
        mono_t: int | None = None,
        boot: str | None = None,
    ) -> Reading:
        rec = Reading(
            **self._common(gw, t, src or "probe-" + gw, sync=sync, mono_t=mono_t, boot=boot),
            q=q,
            val=val,
            unit="CEL" if q == "temperature" else "P1",
        )
        signed = self._add(gw, rec)
        assert isinstance(signed, Reading)
        return signed

    def readings(self, gw: str, start: int, end: int, every: int, values: Any) -> None:
        """``values(i, t)`` gives the reading at step ``i``."""
        for i, t in enumerate(range(start, end, every)):
            self.reading(gw, t, values(i, t))

    def gap(self, gw: str, t: int, reason: str, detail: str = "") -> Gap:
        signed = self._add(gw, Gap(**self._common(gw, t, "gateway"), reason=reason, detail=detail))
        assert isinstance(signed, Gap)
        return signed

    # -- batching and publishing
    def batches(self, batch_size: int = 50) -> list[tuple[Manifest, list[Record], int]]:
        """Every gateway's records cut into signed, chained manifests, in close-time order."""
        out: list[tuple[Manifest, list[Record], int]] = []
        for g in self.gateways.values():
            prev = ZERO_HASH
            for n, i in enumerate(range(0, len(g.records), batch_size), start=1):
                chunk = g.records[i : i + batch_size]
                root = MerkleTree([r.leaf_hash() for r in chunk]).root().hex()
                m = sign(
                    Manifest(
                        gw=g.id,
                        batch_seq=n,
                        prev=prev,
                        first_seq=chunk[0].seq,
                        last_seq=chunk[-1].seq,
                        count=len(chunk),
                        root=root,
                        opened=min(r.t for r in chunk),
                        closed=max(r.t for r in chunk),
                        key=g.key.key_id,
                    ),
                    g.key,
                )
                prev = m.hash_hex()
                out.append((m, chunk, m.closed))
        out.sort(key=lambda b: (b[2], b[0].gw, b[0].batch_seq))
        return out

    def publish_memory(
        self, batch_size: int = 50, checkpoint: bool = True, quorum: int = 1
    ) -> MemoryProvenanceSource:
        source = MemoryProvenanceSource(self.log_signer, [self.member], quorum)
        for org in sorted({g.org for g in self.gateways.values()}):
            source.add_org(org, org.replace("-", " ").title())
        for g in self.gateways.values():
            source.add_gateway(GatewayInfo(g.id, g.org, g.asset, g.key.public_key.to_base64()))
        for manifest, records, closed in self.batches(batch_size):
            source.append_batch(manifest, records, closed + 1000)
        if checkpoint:
            source.sign_checkpoint(T0 + 24 * 3_600_000)
        return source


def standard_journey(*, excursion: bool = False, shipped: bool = True) -> Journey:
    """Packed at line 4, trucked on truck-07 (optionally too warm for 25 min), received into
    cold room 3 and shipped from there 3 h later (unless ``shipped`` is False: then it is
    still there, and its open custody is judged up to the time of the question). Readings
    every 5 minutes."""
    j = Journey()
    j.gateway("packhouse-gw", "fresh-farms", "line-4")
    j.gateway("truck-07-gw", "cool-logistics", "truck-07")
    j.gateway("coldroom-3-gw", "fresh-farms", "coldroom-3")
    j.readings(
        "packhouse-gw", T0 - 30 * MIN, T0 + 60 * MIN, 5 * MIN, lambda i, t: 3.5 + (i % 3) * 0.2
    )
    j.scan("packhouse-gw", T0, "packing")
    j.scan("truck-07-gw", T0 + 60 * MIN, "loading")

    def truck(i: int, t: int) -> float:
        if excursion and T0 + 150 * MIN <= t < T0 + 175 * MIN:
            return 9.5 + (i % 2) * 0.5
        return 4.0 + (i % 4) * 0.3

    j.readings("truck-07-gw", T0 + 60 * MIN, T0 + 300 * MIN, 5 * MIN, truck)
    j.scan("coldroom-3-gw", T0 + 300 * MIN, "unloading")
    j.scan("coldroom-3-gw", T0 + 305 * MIN, "receiving")
    j.readings(
        "coldroom-3-gw", T0 + 300 * MIN, T0 + 480 * MIN, 5 * MIN, lambda i, t: 2.8 + (i % 5) * 0.1
    )
    if shipped:
        j.scan("coldroom-3-gw", T0 + 480 * MIN, "shipping")
    return j


def records_of(source: MemoryProvenanceSource) -> Iterable[Record]:
    return source._all()


def prepare_anchor(
    data_dir: Any, journey: Journey, store_url: str = ""
) -> tuple[Any, dict[str, str]]:
    """An initialised anchor data directory with the journey's organisations and gateways
    enrolled; returns the config and a gateway-role token per organisation. The ledger is
    the data directory's SQLite file, or the PostgreSQL database ``store_url`` names."""
    from anchor.auth import issue_token
    from anchor.cli import init_node
    from anchor.config import load_config
    from anchor.storage import open_store
    from support.batches import node_attester, register_and_enroll

    config = load_config(
        None, env={}, data_dir=str(data_dir), checkpoint_interval_s=0.5, store=store_url
    )
    init_node(config)
    tokens: dict[str, str] = {}
    store = open_store(config)
    try:
        for org in sorted({g.org for g in journey.gateways.values()}):
            store.add_organisation(org, org.replace("-", " ").title(), T0)
            tokens[org] = issue_token(store, org, "gateway", T0)[0]
            tokens[org + ":auditor"] = issue_token(store, org, "auditor", T0)[0]
            tokens[org + ":operator"] = issue_token(store, org, "operator", T0)[0]
        for g in journey.gateways.values():
            named = {r.asset for r in g.records if r.asset} | {
                r.rp for r in g.records if isinstance(r, Scan)
            }
            register_and_enroll(
                store,
                g.id,
                g.org,
                g.key.public_key.to_base64(),
                g.asset,
                T0,
                sorted(named),
                node_attester(config),
            )
    finally:
        store.close()
    return config, tokens


def ingest_bodies(journey: Journey, batch_size: int = 40) -> list[tuple[str, dict[str, Any]]]:
    """(organisation, POST /v1/batches body) in an order that keeps every gateway's chain."""
    return [
        (
            journey.gateways[m.gw].org,
            {"manifest": m.to_dict(), "records": [r.to_dict() for r in recs], "evicted": False},
        )
        for m, recs, _ in journey.batches(batch_size)
    ]


@contextlib.contextmanager
def running_anchor(
    tmp: Path,
    journey: Journey,
    *,
    extra_toml: str = "",
    batch_size: int = 40,
    tokens_out: dict[str, str] | None = None,
) -> Iterator[str]:
    """``coldtrail-anchor serve`` on a free loopback port with the journey ingested through
    ``POST /v1/batches``; yields the base URL and stops the process by PID afterwards.

    ``extra_toml`` adds config lines; ``tokens_out`` receives the organisations' tokens
    (as :func:`prepare_anchor` names them) for requests the test makes itself."""
    from support.procs import free_port, stop_process, wait_for_port

    config, tokens = prepare_anchor(tmp / "data", journey)
    config_path = tmp / "anchor.toml"
    config_path.write_text(
        f'[anchor]\ndata_dir = "{config.data_dir}"\nlisten_host = "127.0.0.1"\n'
        "checkpoint_interval_s = 0.5\n" + extra_toml
    )
    if tokens_out is not None:
        tokens_out.update(tokens)
    port = free_port()
    with (tmp / "anchor.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anchor.cli", "--config", str(config_path), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLDTRAIL_ANCHOR_LISTEN_PORT": str(port)},
        )
    try:
        wait_for_port(port, timeout_s=30, proc=proc)
        base = f"http://127.0.0.1:{port}"
        for org, body in ingest_bodies(journey, batch_size):
            req = urllib.request.Request(
                base + "/v1/batches",
                data=json.dumps(body).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {tokens[org]}",
                },
            )
            with urllib.request.urlopen(req, timeout=20) as resp:
                assert resp.status == 201
        yield base
    finally:
        stop_process(proc)


async def serve_journey(
    aiohttp_client: Any, data_dir: Path, *, excursion: bool = False, **settings: Any
) -> tuple[Any, dict[str, str], Journey]:
    """The real app (``create_app``) on a fresh node, the standard journey ingested over
    HTTP: ``(client, tokens by org, journey)``. ``settings`` override the node's config."""
    import dataclasses

    from anchor.http.app import create_app

    journey = standard_journey(excursion=excursion)
    config, tokens = prepare_anchor(data_dir, journey)
    client = await aiohttp_client(create_app(dataclasses.replace(config, **settings)))
    for org, body in ingest_bodies(journey):
        resp = await client.post(
            "/v1/batches", json=body, headers={"Authorization": f"Bearer {tokens[org]}"}
        )
        assert resp.status == 201, await resp.text()
    return client, tokens, journey
