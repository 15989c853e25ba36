"""A small but honest stand-in for the anchor's ingest endpoint (docs/ingest-contract.md).

A real aiohttp server on a free loopback port. It checks what the contract says
the anchor checks (token, enrollment, key id, signatures, root, chain, seq and
evicted-hole rules, idempotency; batches may arrive out of batch_seq order and
each link is checked once both of its batches are stored, docs/adr/0310),
appends accepted manifests to an in-memory RFC 6962 log, signs checkpoints (C2SP
note) and receipts with its log key. Tests can stop and restart it on the same
port, make it refuse (everything, or chosen batch_seqs), or make it hand out bad
receipts.

Several stand-ins with one ``origin`` and their own log keys are the member nodes
of a consortium (docs/adr/0214). :meth:`StandinAnchor.answer` is the ingest without
HTTP, for in-memory transports. Run as a script (``python standin_anchor.py --help``)
it is a process of its own that a test can kill -9; it then appends every batch it
accepts to a journal file before it answers, so the test can see afterwards what it
took (tests/support/standin_process.py starts it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web

from proofs.canonical import canonical_json
from proofs.errors import FormatError, ProofsError, VerificationError
from proofs.keys import PublicKey, SigningKey
from proofs.keystore import load_signing_key
from proofs.merkle import MerkleTree, leaf_hash
from proofs.note import Checkpoint, NoteSigner, SignedNote
from proofs.receipt import Receipt, sign_receipt
from proofs.records import ZERO_HASH, Gap, Manifest, record_from_dict, verify

__all__ = ["Accepted", "StandinAnchor"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Problem(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass
class Accepted:
    manifest: Manifest
    manifest_json: bytes
    records: list[dict[str, Any]]
    evicted: bool
    receipt: dict[str, Any]
    parsed: list[Any] = field(default_factory=list)  # the records as proofs objects


@dataclass
class _Chain:
    by_batch: dict[int, Accepted] = field(default_factory=dict)

    def neighbours(self, n: int) -> tuple[Manifest | None, Manifest | None]:
        lower = max((b for b in self.by_batch if b < n), default=None)
        higher = min((b for b in self.by_batch if b > n), default=None)
        return (
            None if lower is None else self.by_batch[lower].manifest,
            None if higher is None else self.by_batch[higher].manifest,
        )


def _evicted_gaps(records: list[Any]) -> set[tuple[int, int]]:
    return {
        (r.lost_from, r.lost_to)
        for r in records
        if isinstance(r, Gap) and r.reason == "evicted" and r.lost_from is not None
    }


def _check_link(
    gw: str, lower: Manifest | None, upper: Manifest, upper_records: list[Any], incoming: str
) -> None:
    """``upper`` directly follows ``lower`` (None: ``upper`` is batch 1)."""
    prev = ZERO_HASH if lower is None else lower.hash_hex()
    lower_n = 0 if lower is None else lower.batch_seq
    if upper.prev != prev:
        raise _Problem(
            409,
            "broken-chain",
            f"batch {upper.batch_seq} of {gw} does not chain to batch {lower_n}"
            f" (the new batch is the {incoming} one)",
        )
    expected = 1 if lower is None else lower.last_seq + 1
    if upper.first_seq < expected:
        raise _Problem(409, "seq-overlap", f"first_seq {upper.first_seq} was already used")
    if upper.first_seq > expected and (
        (expected, upper.first_seq - 1) not in _evicted_gaps(upper_records)
    ):
        raise _Problem(409, "seq-gap", f"seq {expected}..{upper.first_seq - 1} missing")


def _check_apart(gw: str, lower: Manifest, upper: Manifest) -> None:
    if upper.first_seq <= lower.last_seq or (
        upper.first_seq - lower.last_seq - 1 < upper.batch_seq - lower.batch_seq - 1
    ):
        raise _Problem(
            409,
            "seq-overlap",
            f"batches {lower.batch_seq} and {upper.batch_seq} of {gw} overlap or leave no room",
        )


class StandinAnchor:
    def __init__(
        self,
        *,
        origin: str = "standin.coldtrail.test/log",
        token: str = "gw-token",
        log_key: SigningKey | None = None,
        port: int | None = None,
        journal: BinaryIO | None = None,
    ) -> None:
        self.origin = origin
        self.token = token
        self.log_key = log_key or SigningKey.generate()
        self._signer = NoteSigner(origin, self.log_key)
        self.vkey = self._signer.verifier.to_vkey()
        self.port = port or _free_port()
        self._journal = journal
        self.gateways: dict[str, PublicKey] = {}
        self.leaves: list[bytes] = []
        self.chains: dict[str, _Chain] = {}
        self.accepted: list[Accepted] = []  # in log order
        self.requests: list[tuple[int, int, bool]] = []  # (batch_seq, status, evicted)
        self.refuse_with: tuple[int, str] | None = None  # (status, code) for every request
        self.retry_after: str | None = None  # a Retry-After header on every problem answer
        self.refuse_batches: dict[int, tuple[int, str]] = {}  # batch_seq -> (status, code)
        self.receipt_mode = "honest"  # or "forged" (wrong key) or "other-batch"
        self._runner: web.AppRunner | None = None
        self._forger = SigningKey.generate()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enroll(self, gw: str, public_key: PublicKey) -> None:
        self.gateways[gw] = public_key

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v1/batches", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandinAnchor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- views for assertions -----------------------------------------------

    def records_of(self, gw: str) -> list[dict[str, Any]]:
        """The records of ``gw`` in batch_seq (chain) order, whatever order they came in."""
        chain = self.chains.get(gw, _Chain())
        return [r for n in sorted(chain.by_batch) for r in chain.by_batch[n].records]

    def evicted_of(self, gw: str) -> list[Manifest]:
        return [a.manifest for a in self.accepted if a.manifest.gw == gw and a.evicted]

    # --- ingest ---------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        status, body, headers = self.answer(
            await request.read(), request.headers.get("Authorization"), request.content_type
        )
        return web.Response(body=body, status=status, headers=headers)

    def answer(
        self, payload: bytes, authorization: str | None, content_type: str = "application/json"
    ) -> tuple[int, bytes, dict[str, str]]:
        """One ``POST /v1/batches``, without HTTP: (status, body, headers)."""
        batch_seq = -1
        evicted = False
        try:
            if self.refuse_with is not None:
                status, code = self.refuse_with
                raise _Problem(status, code, f"stand-in told to refuse with {code}")
            if authorization != f"Bearer {self.token}":
                raise _Problem(401, "unauthenticated", "missing or wrong bearer token")
            if content_type != "application/json":
                raise _Problem(415, "unsupported-media-type", "send application/json")
            try:
                body = json.loads(payload)
                manifest = Manifest.from_dict(body["manifest"])
                raw_records = body["records"]
                evicted = body["evicted"]
                if not isinstance(raw_records, list) or not isinstance(evicted, bool):
                    raise ValueError("records must be a list and evicted a boolean")
                records = [record_from_dict(r) for r in raw_records]
            except (ValueError, KeyError, TypeError, FormatError) as e:
                raise _Problem(400, "malformed", f"unreadable batch: {e}") from e
            batch_seq = manifest.batch_seq
            status, reply = self._ingest(manifest, records, raw_records, evicted)
        except _Problem as p:
            self.requests.append((batch_seq, p.status, evicted))
            problem = {
                "type": f"https://coldtrail.dev/problems/{p.code}",
                "title": p.code.replace("-", " ").capitalize(),
                "status": p.status,
                "detail": p.detail,
                "code": p.code,
            }
            headers = {"Content-Type": "application/problem+json"}
            if self.retry_after is not None:
                headers["Retry-After"] = self.retry_after
            return p.status, json.dumps(problem).encode(), headers
        self.requests.append((batch_seq, status, evicted))
        return status, json.dumps(reply).encode(), {"Content-Type": "application/json"}

    def _ingest(
        self,
        manifest: Manifest,
        records: list[Any],
        raw_records: list[dict[str, Any]],
        evicted: bool,
    ) -> tuple[int, dict[str, Any]]:
        gw = manifest.gw
        key = self.gateways.get(gw)
        if key is None:
            raise _Problem(403, "unknown-gateway", f"gateway {gw} is not enrolled")
        if manifest.key != key.key_id:
            raise _Problem(422, "key-mismatch", f"manifest key {manifest.key} is not {gw}'s key")
        try:
            verify(manifest, key)
        except VerificationError as e:
            raise _Problem(422, "bad-signature", f"manifest of {gw}: {e}") from e
        chain = self.chains.setdefault(gw, _Chain())
        earlier = chain.by_batch.get(manifest.batch_seq)
        if earlier is not None:
            if earlier.manifest_json == manifest.to_json():
                return 200, self._reply(earlier.receipt, manifest)
            raise _Problem(409, "batch-replay", f"batch {manifest.batch_seq} was already used")
        if manifest.batch_seq < 1:
            raise _Problem(409, "broken-chain", "batch_seq starts at 1")
        if manifest.batch_seq in self.refuse_batches:
            status, code = self.refuse_batches[manifest.batch_seq]
            raise _Problem(status, code, f"stand-in told to refuse batch {manifest.batch_seq}")
        for r in records:
            if r.gw != gw:
                raise _Problem(422, "bad-signature", f"record seq {r.seq} is from {r.gw}")
            try:
                verify(r, key)
            except VerificationError as e:
                raise _Problem(422, "bad-signature", f"record seq {r.seq} of {gw}: {e}") from e
        if evicted:
            if records:
                raise _Problem(400, "malformed", "an evicted batch carries no records")
        else:
            seqs = [r.seq for r in records]
            if seqs != list(range(manifest.first_seq, manifest.last_seq + 1)):
                raise _Problem(422, "root-mismatch", "records are not first_seq..last_seq")
            root = MerkleTree([leaf_hash(canonical_json(d)) for d in raw_records]).root().hex()
            if root != manifest.root:
                raise _Problem(422, "root-mismatch", "records do not reproduce the root")
        n = manifest.batch_seq
        lower, higher = chain.neighbours(n)
        if lower is None and n == 1:
            _check_link(gw, None, manifest, records, "upper")
        elif lower is not None and lower.batch_seq == n - 1:
            _check_link(gw, lower, manifest, records, "upper")
        else:
            genesis = Manifest(
                gw=gw,
                batch_seq=0,
                prev=ZERO_HASH,
                first_seq=0,
                last_seq=0,
                count=1,
                root=ZERO_HASH,
                opened=0,
                closed=0,
                key=manifest.key,
            )
            _check_apart(gw, lower or genesis, manifest)
        if higher is not None:
            if higher.batch_seq == n + 1:
                _check_link(gw, manifest, higher, chain.by_batch[n + 1].parsed, "lower")
            else:
                _check_apart(gw, manifest, higher)
        index = len(self.leaves)
        self.leaves.append(manifest.leaf_hash())
        tree = MerkleTree(self.leaves)
        checkpoint = Checkpoint(self.origin, tree.size, tree.root())
        note = SignedNote.sign(checkpoint.to_text(), self._signer)
        receipt = sign_receipt(
            Receipt(
                gw=gw,
                batch_seq=manifest.batch_seq,
                manifest_hash=manifest.hash_hex(),
                leaf_index=index,
                log_proof=tuple(tree.inclusion_proof(index)),
                checkpoint=note.to_text(),
                accepted_at=time.time_ns() // 1_000_000,
            ),
            self.log_key,
        ).to_dict()
        accepted = Accepted(manifest, manifest.to_json(), raw_records, evicted, receipt, records)
        chain.by_batch[manifest.batch_seq] = accepted
        self.accepted.append(accepted)
        if self._journal is not None:
            # Before the answer: once the gateway may have a receipt, the journal has it.
            entry = {
                "manifest": manifest.to_json().decode(),
                "records": raw_records,
                "evicted": evicted,
                "receipt": receipt,
            }
            self._journal.write(json.dumps(entry).encode() + b"\n")
            self._journal.flush()
        return 201, self._reply(receipt, manifest)

    def _reply(self, receipt: dict[str, Any], manifest: Manifest) -> dict[str, Any]:
        """The stored receipt, or a deliberately bad one when a test asks for it."""
        if self.receipt_mode == "forged":
            body = dict(receipt["receipt"])
            return sign_receipt(_receipt_from_body(body), self._forger).to_dict()
        if self.receipt_mode == "other-batch":
            body = dict(receipt["receipt"])
            body["batch_seq"] = manifest.batch_seq + 1000
            return sign_receipt(_receipt_from_body(body), self.log_key).to_dict()
        return receipt


def _receipt_from_body(body: dict[str, Any]) -> Receipt:
    try:
        return Receipt.from_dict({"receipt": body, "sig": ""})
    except ProofsError as e:  # pragma: no cover - built from our own receipt
        raise AssertionError(e) from e


async def _serve(anchor: StandinAnchor) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with anchor:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the stand-in anchor as a process of its own")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--log-key-file", type=Path, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument(
        "--enroll-file", type=Path, required=True, help='JSON {"gw id": "base64 public key"}'
    )
    parser.add_argument("--journal", type=Path, required=True, help="accepted batches, appended")
    args = parser.parse_args(argv)
    with args.journal.open("ab") as journal:
        anchor = StandinAnchor(
            origin=args.origin,
            token=args.token,
            log_key=load_signing_key(args.log_key_file),
            port=args.port,
            journal=journal,
        )
        for gw, public_b64 in json.loads(args.enroll_file.read_text()).items():
            anchor.enroll(gw, PublicKey.from_base64(public_b64))
        asyncio.run(_serve(anchor))


if __name__ == "__main__":
    main()
