"""Documents behind a verdict on a real anchor: a calibration certificate attached with
the CLI and a mapping report uploaded over HTTP stand behind the lot; the verdict says
which loggers have none; the bundle carries the signed entries, and ``coldtrail-verify
--document`` accepts the real file and names the bytes of a changed one. Files go only
to their organisation and auditors; one changed on disk is refused, not served; a row
edited in the database is named by ``verify-ledger``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.anchor_http import call, form
from support.provenance_fixtures import GTIN, LOT, running_anchor, standard_journey

pytestmark = pytest.mark.integration

TRUCK_SENSOR = "truck-07-gw/probe-truck-07-gw"
CERT = b"%PDF-1.4\n% Kalibrierschein 0815 for " + TRUCK_SENSOR.encode() + b"\n" + b"%%" * 2500
REPORT = "Temperature mapping of cold room 3\n15 probes, 72 h, 2.1..6.8 °C\n".encode() * 40


def _request(
    base: str,
    path: str,
    token: str | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    return call(base, path, token, data, headers)


def _json(base: str, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    status, body, _ = call(base, path, token)
    return status, json.loads(body)


def _upload(
    base: str, token: str | None, data: bytes, filename: str, **fields: str
) -> tuple[int, dict[str, Any]]:
    body, content_type = form({**fields, "file": data}, files={"file": filename})
    status, raw, _ = call(base, "/v1/documents", token, body, {"Content-Type": content_type})
    return status, json.loads(raw)


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anchor.cli", "--config", str(tmp / "anchor.toml"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("documents")
    tokens: dict[str, str] = {}
    with running_anchor(tmp, standard_journey(excursion=True), tokens_out=tokens) as base:
        cert = tmp / "kalibrierschein-0815.pdf"
        cert.write_bytes(CERT)
        done = _cli(tmp, "document", "add", str(cert), "--type", "calibration",
                    "--subject", f"sensor:{TRUCK_SENSOR}", "--org", "cool-logistics",
                    "--issuer", "Kalibrierlabor Nord GmbH", "--valid-from", "2020-01-01",
                    "--valid-until", "2099-01-01")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "registered: sha256" in done.stdout
        yield base, tokens, tmp


def test_an_operator_uploads_a_document_for_its_own_places_only(anchor) -> None:
    base, tokens, _ = anchor
    fields = {"type": "mapping", "subject": "asset:coldroom-3", "issuer": "Cold Audit Ltd",
              "valid_from": "2025-06-01", "valid_until": "2030-06-01"}  # fmt: skip
    status, doc = _upload(base, tokens["fresh-farms:operator"], REPORT, "mapping.txt", **fields)
    assert status == 201, doc
    assert (doc["type"], doc["subject"], doc["org"], doc["media_type"]) == (
        "mapping", "coldroom-3", "fresh-farms", "text/plain"
    )  # fmt: skip
    assert doc["status"] == "valid" and doc["attestation"] and len(doc["chunks"]) == 3
    again, same = _upload(base, tokens["fresh-farms:operator"], REPORT, "x.txt", **fields)
    assert again == 200 and same["digest"] == doc["digest"] and same["name"] == "mapping.txt"
    refusals = [
        (tokens["cool-logistics:operator"], REPORT + b".", fields, 403, "forbidden"),
        (tokens["fresh-farms:auditor"], REPORT + b".", fields, 403, "forbidden"),
        (None, REPORT + b".", fields, 403, "forbidden"),
        (tokens["fresh-farms:operator"], b"MZ\x90\x00\x03", fields, 415, "document-type"),
        (tokens["fresh-farms:operator"], b"x", {**fields, "subject": "asset:nowhere"}, 422,
         "unknown-subject"),
        (tokens["fresh-farms:operator"], b"x", {**fields, "subject": "planet:mars"}, 400,
         "bad-parameter"),
        (tokens["fresh-farms:operator"], b"x", {**fields, "valid_from": "soon"}, 400,
         "bad-parameter"),
        (tokens["fresh-farms:operator"], b"x", {**fields, "type": "selfie"}, 400, "malformed"),
        (tokens["fresh-farms:operator"], b"x", {**fields, "valid_until": "2024-01-01"}, 400,
         "document-malformed"),
    ]  # fmt: skip
    for token, data, fields_, want_status, want_code in refusals:
        status, problem = _upload(base, token, data, "f", **fields_)
        assert (status, problem["code"]) == (want_status, want_code), (fields_, problem)
        assert problem["detail"]
    status, listing = _json(base, "/v1/documents?subject=asset:coldroom-3")
    assert status == 200 and [d["digest"] for d in listing["documents"]] == [doc["digest"]]


def test_files_go_to_their_organisation_and_auditors_and_never_render_here(anchor) -> None:
    base, tokens, _ = anchor
    _, listing = _json(base, f"/v1/documents?subject=sensor:{TRUCK_SENSOR}")
    (cert,) = listing["documents"]
    assert cert["issuer"] == "Kalibrierlabor Nord GmbH" and cert["org"] == "cool-logistics"
    path = f"/v1/documents/{cert['digest']}/file"
    assert _request(base, path)[0] == 401
    assert _request(base, path, tokens["fresh-farms:operator"])[0] == 403
    for who in ("cool-logistics:operator", "fresh-farms:auditor"):
        status, body, headers = _request(base, path, tokens[who])
        assert status == 200 and body == CERT, who
        assert headers["Content-Type"] == "application/pdf"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in headers["Content-Security-Policy"]
    status, entry = _json(base, f"/v1/documents/{cert['digest']}")
    assert status == 200 and entry["file_here"] is True and len(entry["chunks"]) == 5
    assert _json(base, "/v1/documents/" + "0" * 64)[0] == 404
    assert _json(base, "/v1/documents/not-a-digest")[0] == 400


def test_the_verdict_names_the_loggers_without_a_certificate(anchor) -> None:
    base, _, _ = anchor
    _, doc = _json(base, f"/v1/provenance?gtin={GTIN}&lot={LOT}")
    missing = {r["sensor"] for r in doc["verdict"]["reasons"] if r["code"] == "calibration-missing"}
    assert TRUCK_SENSOR not in missing
    assert missing == {"packhouse-gw/probe-packhouse-gw", "coldroom-3-gw/probe-coldroom-3-gw"}
    assert doc["verdict"]["status"] == "fail"  # said beside the excursion, not instead
    names = {(d["type"], d["subject"]) for d in doc["documents"]}
    assert names == {("calibration", TRUCK_SENSOR), ("mapping", "coldroom-3")}


def test_the_bundle_checks_the_real_file_and_names_a_changed_byte(anchor) -> None:
    base, _, tmp = anchor
    status, raw, _ = _request(base, f"/v1/provenance/bundle?gtin={GTIN}&lot={LOT}")
    assert status == 200
    bundle = tmp / "bundle.json"
    bundle.write_bytes(raw)
    assert {d["entry"]["type"] for d in json.loads(raw)["subject"]["documents"]} == {
        "calibration",
        "mapping",
    }
    good = tmp / "copy-of-cert.pdf"
    good.write_bytes(CERT)
    changed = bytearray(CERT)
    changed[3000] = ord("X")  # e.g. a calibration point edited after the fact
    bad = tmp / "edited-cert.pdf"
    bad.write_bytes(bytes(changed))
    verify = [sys.executable, "-m", "proofs.verify_cli", str(bundle), "--document"]
    ok = subprocess.run([*verify, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "DOCUMENT OK" in ok.stdout and "calibration certificate" in ok.stdout
    assert "document:   calibration certificate 'kalibrierschein-0815.pdf'" in ok.stdout
    no = subprocess.run([*verify, str(bad)], capture_output=True, text=True, timeout=60)
    assert no.returncode == 1
    assert "is NOT the registered calibration certificate" in no.stdout
    assert "bytes 2048-3071 differ" in no.stdout


def test_the_consumer_page_lists_the_documents_and_checks_a_file_on_the_device(
    anchor, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from support.browser import launch_chromium

    base, _, _ = anchor
    good = tmp_path / "cert.pdf"
    good.write_bytes(CERT)
    changed = bytearray(CERT)
    changed[100] = ord("Z")
    bad = tmp_path / "cert-edited.pdf"
    bad.write_bytes(bytes(changed))
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 412, "height": 915})
        page = context.new_page()
        uploads: list[str] = []
        page.on("request", lambda r: uploads.append(r.method) if r.method != "GET" else None)
        page.goto(f"{base}/01/{GTIN}/10/{LOT}")
        docs = page.locator("#documents li")
        expect(docs).to_have_count(2)
        expect(docs.first).to_contain_text("Calibration certificate")
        expect(page.locator('[data-reason="calibration-missing"]')).to_contain_text("2 logger(s)")
        page.set_input_files("#doc-file", str(good))
        result = page.locator("#doc-result")
        expect(result).to_have_attribute("data-state", "ok", timeout=20_000)
        expect(result).to_contain_text("is the registered calibration certificate")
        page.set_input_files("#doc-file", str(bad))
        expect(result).to_have_attribute("data-state", "differs", timeout=20_000)
        expect(result).to_contain_text("NOT the registered calibration certificate")
        expect(result).to_contain_text("bytes 0–1023 differ")
        shot = tmp_path / "documents.png"
        page.locator("section.documents").screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 2_000
        assert uploads == []  # the file never left the device
        context.close()


def test_a_file_changed_on_disk_is_refused_and_an_edited_row_is_named(anchor) -> None:
    base, tokens, tmp = anchor
    _, listing = _json(base, f"/v1/documents?subject=sensor:{TRUCK_SENSOR}")
    digest = listing["documents"][0]["digest"]
    stored = tmp / "data" / "documents" / "sha256" / digest[:2] / digest
    stored.chmod(0o600)
    stored.write_bytes(stored.read_bytes().replace(b"0815", b"0816"))
    status, problem = _json(base, f"/v1/documents/{digest}/file", tokens["fresh-farms:auditor"])
    assert (status, problem["code"]) == (500, "document-corrupt")
    assert _cli(tmp, "verify-ledger", "--quiet").returncode == 0  # the rows are intact
    db = sqlite3.connect(tmp / "data" / "ledger.sqlite3")
    with db:
        db.execute("UPDATE documents SET valid_until = valid_until + 1 WHERE digest = ?",
                   (digest,))  # fmt: skip
    db.close()
    done = _cli(tmp, "verify-ledger", "--quiet")
    assert done.returncode != 0
    assert "is not the entry the log key signed" in done.stderr + done.stdout
