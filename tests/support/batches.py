"""Signed records, manifests and ingest bodies for anchor tests, built with ``proofs``.

:class:`GatewaySim` plays one gateway: it numbers records, chains manifests and
signs everything with its own key, exactly as docs/ingest-contract.md expects.
:func:`make_node` sets up an anchor data directory (keys, ledger, an
organisation, an enrolled gateway, tokens) the way the CLI does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proofs.keys import SigningKey
from proofs.merkle import MerkleTree
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

T0 = 1_763_769_600_000  # 2025-11-22T00:00:00Z in ms

Record = Reading | Scan | Gap


@dataclass
class GatewaySim:
    gw: str = "truck-07"
    asset: str | None = "truck-07"
    key: SigningKey = field(default_factory=SigningKey.generate)
    seq: int = 0
    batch_seq: int = 0
    prev: str = ZERO_HASH
    t: int = T0
    boot: str = "boot-1"

    @property
    def public_key_b64(self) -> str:
        return self.key.public_key.to_base64()

    def _common(self, src: str) -> dict[str, Any]:
        self.seq += 1
        self.t += 1000
        return {
            "gw": self.gw,
            "seq": self.seq,
            "src": src,
            "t": self.t,
            "clk": ClockEvidence(mono_us=(self.t - T0) * 1_000, boot=self.boot, sync=True),
            "salt": new_salt(os.urandom(16)),
            "asset": self.asset,
        }

    def reading(
        self, val: float = 4.0, q: str = "temperature", unit: str = "CEL", src: str = "probe-1"
    ) -> Reading:
        return sign(Reading(**self._common(src), q=q, val=val, unit=unit), self.key)

    def scan(
        self,
        gtin: str = "09506000134352",
        lot: str = "LOT42",
        step: str = "loading",
        rp: str = "dock-3",
        sscc: str | None = None,
        serial: str | None = None,
        src: str = "scanner-1",
    ) -> Scan:
        gs1 = {"01": gtin, "10": lot}
        if sscc is not None:
            gs1["00"] = sscc
        if serial is not None:
            gs1["21"] = serial
        raw = "".join(f"{k}{v}" for k, v in gs1.items())
        return sign(
            Scan(**self._common(src), raw=raw, sym="]C1", gs1=gs1, step=step, rp=rp), self.key
        )

    def gap(
        self,
        reason: str = "evicted",
        lost_from: int | None = None,
        lost_to: int | None = None,
        src: str = "spool",
    ) -> Gap:
        common = self._common(src)
        count = 1 if lost_from is None or lost_to is None else lost_to - lost_from + 1
        return sign(
            Gap(**common, reason=reason, lost_from=lost_from, lost_to=lost_to, count=count),
            self.key,
        )

    def skip(self, n: int) -> tuple[int, int]:
        """Records ``n`` seqs that are lost before any manifest covered them."""
        first = self.seq + 1
        self.seq += n
        return first, self.seq

    def manifest(
        self, records: list[Record], *, first_seq: int | None = None, count: int | None = None
    ) -> Manifest:
        self.batch_seq += 1
        first = records[0].seq if records else (first_seq or 1)
        n = count if count is not None else len(records)
        root = MerkleTree([r.leaf_hash() for r in records]).root().hex()
        m = sign(
            Manifest(
                gw=self.gw,
                batch_seq=self.batch_seq,
                prev=self.prev,
                first_seq=first,
                last_seq=first + n - 1,
                count=n,
                root=root,
                opened=records[0].t if records else self.t,
                closed=records[-1].t if records else self.t,
                key=self.key.key_id,
            ),
            self.key,
        )
        self.prev = m.hash_hex()
        return m

    def batch(self, records: list[Record]) -> tuple[Manifest, dict[str, Any]]:
        m = self.manifest(records)
        return m, body(m, records)

    def readings_batch(self, n: int = 3, val: float = 4.0) -> tuple[Manifest, dict[str, Any]]:
        return self.batch([self.reading(val=val + i / 10) for i in range(n)])

    def evicted_batch(self, n: int) -> tuple[Manifest, dict[str, Any]]:
        """A batch whose records the gateway evicted: manifest only."""
        records = [self.reading() for _ in range(n)]
        m = self.manifest(records)
        return m, body(m, [], evicted=True)


def body(manifest: Manifest, records: list[Record], evicted: bool = False) -> dict[str, Any]:
    return {
        "manifest": manifest.to_dict(),
        "records": [r.to_dict() for r in records],
        "evicted": evicted,
    }


@dataclass
class Node:
    """An initialised anchor data directory with one organisation and gateway."""

    config: Any  # anchor.config.AnchorConfig
    log_vkey: str
    gateway_token: str
    operator_token: str
    auditor_token: str
    gateway: GatewaySim


def register_and_enroll(
    store: Any,
    gw: str,
    org: str,
    public_key_b64: str,
    asset: str | None,
    now: int,
    places: Iterable[str] = (),
    attest: Any = None,
) -> Any:
    """Register ``org``'s places that are not registered yet, then enrol the gateway
    for ``asset`` (its home) and ``places`` (docs/adr/0311). ``attest``
    (``anchor.registry.attester(log key)``) signs the rows as the CLI does."""
    from anchor.auth import enroll_gateway, register_place

    scope = [p for p in dict.fromkeys([*([asset] if asset else []), *places])]
    for place in scope:
        if store.place(place) is None:
            register_place(store, place, org, "asset", now, attest=attest)
    return enroll_gateway(store, gw, org, public_key_b64, asset, now, scope, attest)


def node_attester(config: Any) -> Any:
    """The registry attester of an initialised node (what its CLI signs rows with)."""
    from anchor.http.app import open_signer
    from anchor.ledger.registry import attester

    return attester(open_signer(config).log_key)


def make_node(
    tmp: Path, gateway: GatewaySim | None = None, org: str = "acme", **overrides: Any
) -> Node:
    from anchor.auth import issue_token
    from anchor.cli import init_node
    from anchor.config import load_config
    from anchor.storage import open_store

    # overrides may name the store (store="postgresql://..."); the default is SQLite.
    config = load_config(None, env={}, data_dir=str(tmp / "anchor"), **overrides)
    log_vkey, _ = init_node(config)
    gateway = gateway or GatewaySim()
    store = open_store(config)
    try:
        store.add_organisation(org, org.title(), T0)
        register_and_enroll(
            store,
            gateway.gw,
            org,
            gateway.public_key_b64,
            gateway.asset,
            T0,
            ["dock-3"],
            node_attester(config),
        )
        tokens = [
            issue_token(store, org, role, T0)[0] for role in ("gateway", "operator", "auditor")
        ]
    finally:
        store.close()
    return Node(config, log_vkey, tokens[0], tokens[1], tokens[2], gateway)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
