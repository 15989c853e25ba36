"""Documents behind verdicts (proofs.documents): what is signed about a file, how a
changed byte is named, and what calibration certificates make a verdict say."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest

from bench.sample_bundle import CERTIFICATE, make_bundle, make_ledger
from proofs.bundle import _attested_bytes, verify_bundle
from proofs.documents import (
    MAX_DOCUMENT_BYTES,
    DocumentEntry,
    calibration_notes,
    check_file,
    chunk_size_for,
    describe_file,
    sensor_spans,
    sniff_media_type,
)
from proofs.errors import FormatError, VerificationError
from proofs.merkle import leaf_hash

DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def entry(data: bytes, **changes: Any) -> DocumentEntry:
    facts = describe_file(data)
    fields: dict[str, Any] = {
        "digest": facts.digest, "doc_type": "calibration", "subject_kind": "sensor",
        "subject": "gw-1/probe-a", "org_id": "acme", "issuer": "Lab Nord", "valid_from": T0,
        "valid_until": T0 + 365 * DAY, "name": "cert.pdf", "media_type": "application/pdf",
        "size": facts.size, "chunk_size": facts.chunk_size, "chunks_root": facts.chunks_root,
        "registered_at": T0,
    }  # fmt: skip
    fields.update(changes)
    return DocumentEntry(**fields)


def test_chunk_size_is_a_power_of_two_from_1_kib_with_at_most_256_chunks() -> None:
    assert chunk_size_for(1) == 1024
    assert chunk_size_for(256 * 1024) == 1024  # exactly 256 chunks of 1 KiB
    assert chunk_size_for(256 * 1024 + 1) == 2048
    assert chunk_size_for(MAX_DOCUMENT_BYTES) == 128 * 1024  # 160 chunks of 20 MiB


def test_what_is_signed_about_a_file_is_worked_out_by_hand() -> None:
    data = b"%PDF-" + b"a" * 2043 + b"b" * 10  # 2058 bytes: chunks of 1024, 1024, 10
    facts = describe_file(data)
    assert facts.digest == hashlib.sha256(data).hexdigest()
    assert facts.chunk_size == 1024 and facts.size == 2058
    leaves = [hashlib.sha256(b"\x00" + data[i : i + 1024]).digest() for i in (0, 1024, 2048)]
    assert list(facts.chunks) == [h.hex() for h in leaves]
    # RFC 6962 over three leaves: H(1 || H(1 || l0 || l1) || l2)
    left = hashlib.sha256(b"\x01" + leaves[0] + leaves[1]).digest()
    assert facts.chunks_root == hashlib.sha256(b"\x01" + left + leaves[2]).hexdigest()
    assert leaf_hash(data[:1024]) == leaves[0]


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0JFIF", "image/jpeg"),
        ("Kalibrierschein Nr. 12 — 4,0 °C\n".encode(), "text/plain"),
    ],
)
def test_media_types_are_sniffed_from_the_bytes(data: bytes, media_type: str) -> None:
    assert sniff_media_type(data) == media_type


@pytest.mark.parametrize(
    "data", [b"MZ\x90\x00", b"<html>\x00", b"\xfe\xff\x00t", b"#!/bin/sh\x1b[2J", b""]
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(FormatError) as e:
        sniff_media_type(data)
    assert e.value.code == "document-type"


def test_too_large_and_empty_files_are_refused() -> None:
    with pytest.raises(FormatError) as e:
        describe_file(b"x" * (MAX_DOCUMENT_BYTES + 1))
    assert e.value.code == "document-too-large"
    with pytest.raises(FormatError) as e:
        describe_file(b"")
    assert e.value.code == "document-empty"


@pytest.mark.parametrize(
    "changes",
    [
        {"doc_type": "selfie"},
        {"subject_kind": "planet"},
        {"subject": "../etc/passwd"},
        {"valid_until": T0},  # ends when it starts
        {"digest": "AB" * 32},
        {"size": 0},
        {"chunk_size": 2048},  # not the size's chunk size
        {"media_type": "text/html"},
        {"valid_from": -1},
        {"issuer": ""},
    ],
)
def test_malformed_entries_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(FormatError) as e:
        entry(CERTIFICATE, **changes)
    assert e.value.code in ("document-malformed", "bad-identifier", "bad-name")


def test_entries_round_trip_and_their_statement_is_the_registry_format() -> None:
    e = entry(CERTIFICATE)
    assert DocumentEntry.from_dict(e.to_dict()) == e
    assert e.statement().startswith(b"coldtrail-registry/v1\n{")
    assert b'"kind":"document"' in e.statement()
    with pytest.raises(FormatError):
        DocumentEntry.from_dict({k: v for k, v in e.to_dict().items() if k != "issuer"})


def test_status_and_cover_follow_the_validity_dates() -> None:
    e = entry(CERTIFICATE)
    assert e.status_at(T0 - 1) == "not-yet-valid"
    assert e.status_at(T0) == "valid"
    assert e.status_at(T0 + 365 * DAY) == "expired"
    assert e.covers(T0, T0 + 365 * DAY) and not e.covers(T0, T0 + 365 * DAY + 1)
    assert entry(CERTIFICATE, valid_until=0).covers(T0, 2**50)  # no end


def test_a_changed_byte_is_named_with_the_chunk_that_holds_it() -> None:
    e = entry(CERTIFICATE)
    chunks = describe_file(CERTIFICATE).chunks
    assert check_file(CERTIFICATE, [(e, chunks)]).ok
    changed = bytearray(CERTIFICATE)
    changed[1500] ^= 0x01
    result = check_file(bytes(changed), [(e, chunks)])
    assert not result.ok and result.entry == e
    assert result.differs == ((1024, 2048),)
    assert "bytes 1024-2047 differ" in result.sentence()
    # Two far-apart changes are two ranges; a truncated file names its missing tail.
    changed[50] ^= 0x01
    assert check_file(bytes(changed), [(e, chunks)]).differs == ((0, 2048),)
    short = check_file(CERTIFICATE[:1024], [(e, chunks)])
    assert short.differs == ((1024, len(CERTIFICATE)),)
    assert f"the registered file {len(CERTIFICATE)}" in short.sentence()
    # A file that shares nothing with any registered document resembles none.
    assert check_file(b"something else entirely", [(e, chunks)]).entry is None


def test_chunk_hashes_that_are_not_the_signed_ones_are_refused() -> None:
    e = entry(CERTIFICATE)
    chunks = list(describe_file(CERTIFICATE).chunks)
    assert e.check_chunks(chunks) == tuple(chunks)
    chunks[1] = "00" * 32
    with pytest.raises(FormatError, match="not the signed ones"):
        e.check_chunks(chunks)
    with pytest.raises(FormatError, match="malformed"):
        e.check_chunks(chunks[:2])


def _verdict(*legs: tuple[int, int, dict[str, int]]) -> dict[str, Any]:
    return {
        "legs": [
            {
                "holder": "h",
                "verdict": {
                    "custody": {"start_ms": a, "end_ms": b},
                    "sensors": [{"sensor": s, "readings": n} for s, n in sensors.items()],
                },
            }
            for a, b, sensors in legs
        ],
        "notes": [],
    }


def test_sensor_spans_cover_the_legs_a_sensor_has_readings_in() -> None:
    v = _verdict(
        (T0, T0 + DAY, {"gw-1/probe-a": 10, "gw-1/probe-b": 0}),
        (T0 + 2 * DAY, T0 + 3 * DAY, {"gw-1/probe-a": 5, "gw-2/p": 1}),
    )
    assert sensor_spans(v) == {
        "gw-1/probe-a": (T0, T0 + 3 * DAY - 1),
        "gw-2/p": (T0 + 2 * DAY, T0 + 3 * DAY - 1),
    }


def test_calibration_notes_by_sensor_or_its_gateway() -> None:
    spans = {"gw-1/probe-a": (T0 + DAY, T0 + 2 * DAY), "gw-2/p": (T0 + DAY, T0 + 2 * DAY),
             "gw-3/q": (T0 + DAY, T0 + 400 * DAY)}  # fmt: skip
    docs = [
        entry(b"%PDF-a", subject="gw-1/probe-a"),
        entry(b"%PDF-b", subject_kind="gateway", subject="gw-2"),  # the logger as a whole
        entry(b"%PDF-c", subject="gw-3/q"),  # runs out on day 365
        entry(b"%PDF-d", subject="gw-4/r"),  # about a sensor the verdict does not use
        entry(b"%PDF-e", subject="gw-3/q", doc_type="mapping", valid_until=0),  # not a cert
    ]
    notes = calibration_notes(spans, docs)
    assert [(n.code, n.status, n.sensor) for n in notes] == [
        ("calibration-expired", "pass", "gw-3/q")
    ]
    assert "valid until 2027-01-01" in notes[0].message
    strict = calibration_notes({**spans, "gw-9/z": (T0, T0)}, docs, "indeterminate")
    assert [(n.code, n.status, n.sensor) for n in strict] == [
        ("calibration-expired", "indeterminate", "gw-3/q"),
        ("calibration-missing", "indeterminate", "gw-9/z"),
    ]
    with pytest.raises(FormatError):
        calibration_notes(spans, docs, "fail")  # type: ignore[arg-type]


# --- in a bundle ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger():  # type: ignore[no-untyped-def]
    return make_ledger()


def _resign(ledger: Any, bundle: dict[str, Any]) -> dict[str, Any]:
    bundle["attestation"] = base64.b64encode(
        ledger.log_signer.key.sign(_attested_bytes(bundle))
    ).decode()
    return bundle


def test_a_bundle_carries_its_documents_and_the_report_lists_them(ledger: Any) -> None:
    report = verify_bundle(make_bundle(ledger))
    assert [d.entry.name for d in report.documents] == ["DKD-K-12345.pdf"]
    assert not any(r.code.startswith("calibration") for r in report.verdict.reasons)


def test_a_document_the_log_key_did_not_sign_is_refused_even_if_the_subject_is(
    ledger: Any,
) -> None:
    bundle = copy.deepcopy(make_bundle(ledger))
    doc = bundle["subject"]["documents"][0]
    doc["entry"]["valid_until"] += 10 * 365 * DAY  # an "extended" certificate
    with pytest.raises(VerificationError) as e:
        verify_bundle(_resign(ledger, bundle))
    assert e.value.code == "bad-document"


def test_dropping_a_certificate_without_saying_so_is_refused(ledger: Any) -> None:
    bundle = copy.deepcopy(make_bundle(ledger))
    bundle["subject"]["documents"] = []  # the verdict still says nothing is missing
    with pytest.raises(VerificationError) as e:
        verify_bundle(_resign(ledger, bundle))
    assert e.value.code == "calibration-mismatch"
    assert "calibration-missing truck-07/probe-1" in e.value.message
