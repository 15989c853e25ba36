"""Shared pieces of the anchor benches: a node directory, the real server, signed batches.

Batches are built the way a gateway builds them (``proofs.records.sign`` per record, a
Merkle root, a signed manifest chained to the previous one) and serialised to the exact
request bodies *before* any timing starts. The service runs as ``coldtrail-anchor serve``
in its own process on a free loopback port and is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proofs.keys import SigningKey
from proofs.merkle import MerkleTree
from proofs.records import ZERO_HASH, ClockEvidence, Manifest, Reading, Scan, new_salt, sign

VENV_BIN = Path(sys.executable).parent
ORG = "bench-org"
GTIN = "09506000134352"
DAY_MS = 86_400_000


def quick() -> bool:
    return bool(os.environ.get("COLDTRAIL_BENCH_QUICK"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def openssl_verify_limit(cores: int = 2, seconds: int = 3) -> float:
    """Ed25519 verifies/s of ``openssl speed -multi <cores>``: this machine's limit."""
    exe = shutil.which("openssl")
    if exe is None:
        raise SystemExit("openssl is not installed: apt-get install openssl")
    out = subprocess.run(
        [exe, "speed", "-seconds", str(seconds), "-multi", str(cores), "ed25519"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"Ed25519\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if not m:
        raise SystemExit(f"cannot read openssl speed output:\n{out}")
    return float(m.group(2))


# --------------------------------------------------------------------------------------
# A node directory and the running service
# --------------------------------------------------------------------------------------


@dataclass
class Node:
    root: Path
    config_path: Path
    config: Any  # anchor.config.AnchorConfig
    token: str  # role gateway
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def make_node(root: Path, **settings: Any) -> Node:
    """``coldtrail-anchor init`` in-process, plus one organisation and a gateway token."""
    from anchor.auth import issue_token
    from anchor.cli import init_node
    from anchor.config import load_config
    from anchor.storage import open_store

    port = free_port()
    values = {
        "data_dir": str(root / "anchor"),
        "listen_port": port,
        "log_level": "WARNING",
        **settings,
    }
    lines = ["[anchor]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    config_path = root / "anchor.toml"
    config_path.write_text("\n".join(lines) + "\n")
    config = load_config(config_path, env={})
    init_node(config)
    store = open_store(config)
    try:
        store.add_organisation(ORG, "Bench", int(time.time() * 1000))
        token, _ = issue_token(store, ORG, "gateway", int(time.time() * 1000))
    finally:
        store.close()
    return Node(root, config_path, config, token, port)


@contextlib.contextmanager
def serve(node: Node) -> Iterator[subprocess.Popen[bytes]]:
    log = open(node.root / "anchor.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(VENV_BIN / "coldtrail-anchor"), "--config", str(node.config_path), "serve"],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"anchor exited ({proc.returncode}); see {node.root}/anchor.log")
            if time.monotonic() > deadline:
                raise RuntimeError("anchor did not listen within 60 s")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", node.port)):
                break
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


# --------------------------------------------------------------------------------------
# Signed records and batches, built like a gateway builds them
# --------------------------------------------------------------------------------------


@dataclass
class GatewaySim:
    gw: str
    asset: str
    seq: int = 0
    batch_seq: int = 0
    prev: str = ZERO_HASH
    t: int = 0
    step_ms: int = 60_000
    probes: int = 20  # readings go round this many sensors, half temperature, half humidity

    def __post_init__(self) -> None:
        self.key = SigningKey.generate()
        if not self.t:
            self.t = int(time.time() * 1000) - 30 * DAY_MS
        self._t0 = self.t  # the boot: the monotonic clock runs with the wall clock from here

    @property
    def public_key_b64(self) -> str:
        return self.key.public_key.to_base64()

    def _common(self, src: str) -> dict[str, Any]:
        self.seq += 1
        self.t += self.step_ms
        return {
            "gw": self.gw,
            "seq": self.seq,
            "src": src,
            "t": self.t,
            "clk": ClockEvidence(mono_us=(self.t - self._t0) * 1000, boot="bench", sync=True),
            "salt": new_salt(os.urandom(16)),
            "asset": self.asset,
        }

    def reading(self, i: int, val: float | None = None) -> Reading:
        """The ``i``-th reading: a chilled load between 3.5 and 6.5 °C (or ``val``)."""
        q, unit = "temperature", "CEL"
        val = 5.0 + 1.5 * math.sin(i / 50.0) if val is None else val
        if i % 2:
            q, unit, val = "humidity", "P1", 55.0 + (i % 100) / 10
        src = f"probe-{i % self.probes}"
        return sign(Reading(**self._common(src), q=q, val=val, unit=unit), self.key)

    def scan(self, lot: str, step: str) -> Scan:
        gs1 = {"01": GTIN, "10": lot}
        return sign(
            Scan(
                **self._common("dock-scanner"),
                raw=f"01{GTIN}10{lot}",
                sym="]C1",
                gs1=gs1,
                step=step,
                rp="urn:bench:dock-1",
            ),
            self.key,
        )

    def body(self, records: Sequence[Reading | Scan]) -> bytes:
        """The exact ``POST /v1/batches`` body for ``records`` as the next batch."""
        self.batch_seq += 1
        m = sign(
            Manifest(
                gw=self.gw,
                batch_seq=self.batch_seq,
                prev=self.prev,
                first_seq=records[0].seq,
                last_seq=records[-1].seq,
                count=len(records),
                root=MerkleTree([r.leaf_hash() for r in records]).root().hex(),
                opened=records[0].t,
                closed=records[-1].t,
                key=self.key.key_id,
            ),
            self.key,
        )
        self.prev = m.hash_hex()
        doc = {"manifest": m.to_dict(), "records": [r.to_dict() for r in records]}
        return json.dumps(doc, separators=(",", ":")).encode()

    def readings_bodies(self, batches: int, per_batch: int) -> list[bytes]:
        out = []
        for _ in range(batches):
            out.append(self.body([self.reading(self.seq) for _ in range(per_batch)]))
        return out


def _build_chain(gw: str, asset: str, batches: int, per_batch: int) -> tuple[str, list[bytes]]:
    sim = GatewaySim(gw, asset)
    return sim.public_key_b64, sim.readings_bodies(batches, per_batch)


def build_chains(
    gws: Sequence[str], batches: int, per_batch: int, asset: str = "truck-07"
) -> list[tuple[str, str, list[bytes]]]:
    """Signed chains for several gateways, built on both cores: (gw, pubkey, bodies)."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_build_chain, gw, asset, batches, per_batch) for gw in gws]
        return [(gw, *f.result()) for gw, f in zip(gws, futures, strict=True)]


def enroll_keys(node: Node, chains: Sequence[tuple[str, str, list[bytes]]], asset: str) -> None:
    from anchor.auth import enroll_gateway, register_place
    from anchor.http.app import open_signer
    from anchor.ledger.registry import attester
    from anchor.storage import open_store

    store = open_store(node.config)
    attest = attester(open_signer(node.config).log_key)
    places = ["dock-3", "urn:bench:dock-1"]
    try:
        now = int(time.time() * 1000)
        for place in (asset, *places):
            if store.place(place) is None:
                register_place(store, place, ORG, "asset", now, attest=attest)
        for gw, pub, _ in chains:
            enroll_gateway(store, gw, ORG, pub, asset, now, places, attest)
    finally:
        store.close()


# --------------------------------------------------------------------------------------
# Posting
# --------------------------------------------------------------------------------------


async def post_chains(
    url: str | Sequence[str], token: str, chains: Sequence[Sequence[bytes]]
) -> tuple[float, list[dict[str, Any]]]:
    """Post each chain's bodies in order, the chains concurrently; (seconds, receipts).

    Several ``url``s (workers): chain ``i`` goes to ``url[i % len(url)]``."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    receipts: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        urls = [url] if isinstance(url, str) else list(url)

        async def one_chain(bodies: Sequence[bytes], base: str) -> None:
            for b in bodies:
                async with session.post(f"{base}/v1/batches", data=b) as resp:
                    text = await resp.read()
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"ingest refused: HTTP {resp.status}: {text[:500]!r}")
                    receipts.append(json.loads(text))

        start = time.perf_counter()
        await asyncio.gather(*(one_chain(c, urls[i % len(urls)]) for i, c in enumerate(chains)))
        elapsed = time.perf_counter() - start
    return elapsed, receipts


def post_chains_sync(
    url: str | Sequence[str], token: str, chains: Sequence[Sequence[bytes]]
) -> tuple[float, list[dict[str, Any]]]:
    return asyncio.run(post_chains(url, token, chains))
