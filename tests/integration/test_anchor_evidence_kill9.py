"""kill -9 while documents are attached and claims filed: after a restart every
acknowledged document has its entry and its file (the file is written first), every
acknowledged claim has its received event at a dense leaf of the claims log with a
receipt that verifies, and verify-ledger passes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from proofs.claims import verify_receipt
from support.anchor_process import start_anchor
from support.procs import free_port, stop_process
from support.provenance_fixtures import (
    GTIN,
    LOT,
    ingest_bodies,
    prepare_anchor,
    standard_journey,
)

pytestmark = pytest.mark.integration


def _multipart(parts: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"'.encode()
        + (b'; filename="f.pdf"' if k == "file" else b"")
        + b"\r\n\r\n" + v + b"\r\n"
        for k, v in parts.items()
    ) + f"--{boundary}--\r\n".encode()  # fmt: skip
    return body, f"multipart/form-data; boundary={boundary}"


def _post(base: str, path: str, parts: dict[str, Any], token: str | None = None) -> Any:
    body, ctype = _multipart(
        {k: v if isinstance(v, bytes) else v.encode() for k, v in parts.items()}
    )
    headers = {"Content-Type": ctype, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.load(resp)


def _get(base: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_sigkill_while_attaching_documents_and_filing_claims_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    journey = standard_journey(excursion=True)
    config, tokens = prepare_anchor(tmp_path / "data", journey)
    config_path = tmp_path / "anchor.toml"
    config_path.write_text(
        f'[anchor]\ndata_dir = "{config.data_dir}"\nlisten_host = "127.0.0.1"\n'
        "checkpoint_interval_s = 0.5\ndispositions_interval_s = 0\n"
        "claims_per_lot_per_day = 100000\nclaims_per_client_per_hour = 100000\n"
        "public_rate_per_s = 100000.0\npublic_burst_requests = 100000\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_anchor(config_path, port, tmp_path / "anchor.log")
    try:
        for org, body in ingest_bodies(journey):
            req = urllib.request.Request(
                base + "/v1/batches", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json",
                         "Authorization": f"Bearer {tokens[org]}"},
            )  # fmt: skip
            with urllib.request.urlopen(req, timeout=20) as resp:
                assert resp.status == 201
    finally:
        stop_process(proc)
    rng = random.Random(11)
    documents: dict[str, bytes] = {}
    claims: list[str] = []
    operator = tokens["fresh-farms:operator"]
    for cycle in range(3):
        proc = start_anchor(config_path, port, tmp_path / "anchor.log")
        killer = threading.Timer(rng.uniform(0.3, 1.0), os.kill, (proc.pid, signal.SIGKILL))
        killer.start()
        try:
            deadline = time.monotonic() + 6
            i = 0
            while time.monotonic() < deadline and proc.poll() is None:
                i += 1
                try:
                    if i % 2:
                        data = b"%PDF-1.4\n" + os.urandom(rng.randint(100, 40_000))
                        status, doc = _post(base, "/v1/documents", {
                            "file": data, "type": "inspection", "subject": "asset:coldroom-3",
                            "issuer": "Inspector", "valid_from": "2026-01-01",
                            "name": f"report-{cycle}-{i}.pdf"}, operator)  # fmt: skip
                        assert status == 201, doc
                        documents[doc["digest"]] = data
                    else:
                        status, claim = _post(base, f"/v1/lots/{GTIN}/{LOT}/claims",
                                              {"text": f"warm {cycle}/{i}".encode()})  # fmt: skip
                        assert status == 201, claim
                        claims.append(claim["id"])
                except (OSError, urllib.error.URLError):
                    break  # killed mid-request: that one was never acknowledged
        finally:
            killer.cancel()
            if proc.poll() is None:  # the test failed before the kill: do not leave it
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert len(documents) >= 2 and len(claims) >= 2, (len(documents), len(claims))
    proc = start_anchor(config_path, port, tmp_path / "anchor.log")
    try:
        for digest, data in documents.items():
            status, raw = _get(base, f"/v1/documents/{digest}/file", operator)
            assert status == 200 and raw == data, digest
        # No entry without its file, acknowledged or not.
        status, raw = _get(base, "/v1/documents?subject=asset:coldroom-3")
        for d in json.loads(raw)["documents"]:
            status, entry = _get(base, f"/v1/documents/{d['digest']}")
            assert json.loads(entry)["file_here"] is True
        status, raw = _get(base, f"/v1/claims/{claims[0]}/receipt")
        vkey = json.loads(raw)["log_vkey"]
        leaves = set()
        for cid in claims:
            status, raw = _get(base, f"/v1/claims/{cid}")
            assert status == 200 and json.loads(raw)["state"] == "received", cid
            status, raw = _get(base, f"/v1/claims/{cid}/receipt?n=1")
            report = verify_receipt(raw, [vkey])
            assert report.event.claim == cid and report.leaf_index not in leaves
            leaves.add(report.leaf_index)
        assert max(leaves) < report.tree_size  # the last receipt's log holds every leaf
    finally:
        stop_process(proc)
    done = subprocess.run(
        [sys.executable, "-m", "anchor.cli", "--config", str(config_path), "verify-ledger",
         "--quiet"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
