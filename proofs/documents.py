"""Documents behind a verdict: the digest on the ledger, the file off it.

A calibration certificate, an EN 12830 recorder class, a temperature-mapping report, an
inspection report or a certificate of analysis is registered as a :class:`DocumentEntry`:
its SHA-256, its type, what it is about (a sensor, a gateway, an asset, a lot or an
organisation), who issued it and when it is valid, signed by the log key like every
registry row. The file itself is stored content-addressed beside the ledger, never in it.

Anyone holding the file can check it (:func:`check_file`) against the entries a bundle
carries. So that a changed file is not only "different" but shows *where*, an entry also
signs the RFC 6962 Merkle root of the file's fixed-size chunks (at most
:data:`MAX_CHUNKS` of them, :func:`chunk_size_for`), and carries the chunk hashes: a
file with one byte changed names the chunk (a byte range) that differs.

Pure: no I/O, typed strictly; the anchor (anchor.ledger.documents) and
``coldtrail-verify --document`` both use it.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .canonical import canonical_json
from .coldchain import Reason, Status
from .errors import FormatError, VerificationError
from .identifiers import check_identifier, check_name
from .merkle import leaf_hash, root

__all__ = [
    "CALIBRATION",
    "CALIBRATION_CODES",
    "DOCUMENT_TYPES",
    "MAX_CHUNKS",
    "MAX_DOCUMENT_BYTES",
    "MEDIA_TYPES",
    "STATEMENT_DOMAIN",
    "SUBJECT_KINDS",
    "BundleDocument",
    "DocumentEntry",
    "FileCheck",
    "FileFacts",
    "bundle_documents",
    "calibration_notes",
    "check_file",
    "chunk_size_for",
    "describe_file",
    "lot_subject",
    "sniff_media_type",
]

CALIBRATION = "calibration"
# What a document is: the words an auditor uses.
DOCUMENT_TYPES: Mapping[str, str] = {
    CALIBRATION: "calibration certificate",
    "recorder-class": "EN 12830 recorder class",
    "mapping": "temperature-mapping report",
    "inspection": "inspection report",
    "analysis": "certificate of analysis",
    "other": "document",
}
SUBJECT_KINDS = ("sensor", "gateway", "asset", "lot", "organisation")
# What a file may be: sniffed from its first bytes, never taken from a name or a header.
MEDIA_TYPES = ("application/pdf", "image/png", "image/jpeg", "text/plain")
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
MAX_CHUNKS = 256
MIN_CHUNK = 1024
# The registry statement's domain: the same bytes the anchor's registry rows sign.
STATEMENT_DOMAIN = b"coldtrail-registry/v1\n"
_HEX = frozenset("0123456789abcdef")
_MS_MAX = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def chunk_size_for(size: int) -> int:
    """The chunk size of a file of ``size`` bytes: a power of two from 1 KiB up, so
    that the file has at most :data:`MAX_CHUNKS` chunks."""
    chunk = MIN_CHUNK
    while chunk * MAX_CHUNKS < size:
        chunk *= 2
    return chunk


def sniff_media_type(data: bytes) -> str:
    """The media type of ``data`` from its magic bytes: PDF, PNG, JPEG, or UTF-8 text
    without control characters. Anything else is refused (``document-type``)."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text and all(c >= " " or c in "\t\r\n" for c in text):
        return "text/plain"
    raise FormatError(
        "a document must be a PDF, PNG, JPEG or plain UTF-8 text file", code="document-type"
    )


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What is signed about a file: its SHA-256, size, chunk size, chunk hashes and
    their Merkle root (hex)."""

    digest: str
    size: int
    chunk_size: int
    chunks: tuple[str, ...]
    chunks_root: str


def _chunk_hashes(data: bytes, chunk_size: int) -> list[bytes]:
    return [leaf_hash(data[i : i + chunk_size]) for i in range(0, max(len(data), 1), chunk_size)]


def describe_file(data: bytes) -> FileFacts:
    if len(data) > MAX_DOCUMENT_BYTES:
        raise FormatError(
            f"a document is at most {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB; this one is"
            f" {len(data)} bytes",
            code="document-too-large",
        )
    if not data:
        raise FormatError("the document is empty", code="document-empty")
    size = chunk_size_for(len(data))
    hashes = _chunk_hashes(data, size)
    return FileFacts(
        digest=hashlib.sha256(data).hexdigest(),
        size=len(data),
        chunk_size=size,
        chunks=tuple(h.hex() for h in hashes),
        chunks_root=root(hashes).hex(),
    )


def lot_subject(gtin: str, lot: str) -> str:
    """A lot as a document's subject: its GS1 Digital Link path, ``01/{gtin}/10/{lot}``."""
    return f"01/{gtin}/10/{lot}"


def _hexdigest(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise FormatError(f"{what} must be 64 lower-case hex digits", code="document-malformed")
    return value


def _ms(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MS_MAX:
        raise FormatError(f"{what} must be a time in ms since 1970", code="document-malformed")
    return value


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One registered document. ``valid_until`` 0 means no end; ``subject`` is an
    identifier (a sensor is ``gateway/source``, a lot :func:`lot_subject`)."""

    digest: str
    doc_type: str
    subject_kind: str
    subject: str
    org_id: str
    issuer: str
    valid_from: int
    valid_until: int
    name: str
    media_type: str
    size: int
    chunk_size: int
    chunks_root: str
    registered_at: int

    def __post_init__(self) -> None:
        _hexdigest(self.digest, "a document digest")
        _hexdigest(self.chunks_root, "a document's chunk root")
        if self.doc_type not in DOCUMENT_TYPES:
            raise FormatError(
                f"a document type is one of {', '.join(DOCUMENT_TYPES)}: {self.doc_type!r:.40}",
                code="document-malformed",
            )
        if self.subject_kind not in SUBJECT_KINDS:
            raise FormatError(
                f"a document is about one of {', '.join(SUBJECT_KINDS)}: {self.subject_kind!r:.40}",
                code="document-malformed",
            )
        check_identifier(self.subject, "a document's subject")
        check_identifier(self.org_id, "a document's organisation")
        check_name(self.issuer, "a document's issuer")
        check_name(self.name, "a document's name")
        if self.media_type not in MEDIA_TYPES:
            raise FormatError(
                f"a document's media type: {self.media_type!r:.40}", code="document-malformed"
            )
        _ms(self.valid_from, "valid_from")
        _ms(self.valid_until, "valid_until")
        _ms(self.registered_at, "registered_at")
        if self.valid_until and self.valid_until <= self.valid_from:
            raise FormatError(
                "a document's validity must end after it starts", code="document-malformed"
            )
        if not 0 < self.size <= MAX_DOCUMENT_BYTES or self.chunk_size != chunk_size_for(self.size):
            raise FormatError("a document's size or chunk size", code="document-malformed")

    @property
    def label(self) -> str:
        return DOCUMENT_TYPES[self.doc_type]

    def statement(self) -> bytes:
        """The bytes the log key signs (the anchor's registry statement of the row)."""
        body = self.to_dict()
        return STATEMENT_DOMAIN + canonical_json({"kind": "document", **body})

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "type": self.doc_type,
            "subject_kind": self.subject_kind,
            "subject": self.subject,
            "org": self.org_id,
            "issuer": self.issuer,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "name": self.name,
            "media_type": self.media_type,
            "size": self.size,
            "chunk_size": self.chunk_size,
            "chunks_root": self.chunks_root,
            "at": self.registered_at,
        }

    @classmethod
    def from_dict(cls, data: object) -> DocumentEntry:
        if not isinstance(data, dict):
            raise FormatError("a document entry must be an object", code="document-malformed")
        try:
            return cls(
                digest=data["digest"],
                doc_type=data["type"],
                subject_kind=data["subject_kind"],
                subject=data["subject"],
                org_id=data["org"],
                issuer=data["issuer"],
                valid_from=data["valid_from"],
                valid_until=data["valid_until"],
                name=data["name"],
                media_type=data["media_type"],
                size=data["size"],
                chunk_size=data["chunk_size"],
                chunks_root=data["chunks_root"],
                registered_at=data["at"],
            )
        except KeyError as e:
            raise FormatError(
                f"a document entry lacks {e.args[0]!r}", code="document-malformed"
            ) from e
        except TypeError as e:
            raise FormatError(f"a document entry: {e}", code="document-malformed") from e

    def status_at(self, t_ms: int) -> str:
        """``valid``, ``expired`` or ``not-yet-valid`` at ``t_ms``."""
        if t_ms < self.valid_from:
            return "not-yet-valid"
        if self.valid_until and t_ms >= self.valid_until:
            return "expired"
        return "valid"

    def covers(self, start_ms: int, end_ms: int) -> bool:
        """Valid over the whole of ``[start_ms, end_ms)``."""
        return self.valid_from <= start_ms and (not self.valid_until or end_ms <= self.valid_until)

    def check_chunks(self, chunks: Sequence[str]) -> tuple[str, ...]:
        """The chunk hashes a bundle carries, checked against the signed root."""
        if len(chunks) != -(-self.size // self.chunk_size) or not all(
            isinstance(c, str) and len(c) == 64 and set(c) <= _HEX for c in chunks
        ):
            raise FormatError(
                f"the chunk hashes of document {self.digest[:12]} are malformed",
                code="document-malformed",
            )
        if root([bytes.fromhex(c) for c in chunks]).hex() != self.chunks_root:
            raise FormatError(
                f"the chunk hashes of document {self.digest[:12]} are not the signed ones",
                code="document-malformed",
            )
        return tuple(chunks)


@dataclass(frozen=True, slots=True)
class FileCheck:
    """The outcome of checking a file: ``entry`` is the registered document it is (or,
    when ``ok`` is False, most resembles; None when it resembles none), ``differs`` the
    byte ranges ``[start, end)`` of the registered file that differ."""

    ok: bool
    entry: DocumentEntry | None
    size: int
    differs: tuple[tuple[int, int], ...] = ()

    def sentence(self) -> str:
        if self.entry is None:
            return "matches no document on the ledger"
        e = self.entry
        what = f"{e.label} {e.name!r} for {e.subject_kind} {e.subject}, issued by {e.issuer}"
        if self.ok:
            return f"is the registered {what} (SHA-256 {e.digest[:16]}...)"
        where = ", ".join(f"bytes {a}-{b - 1}" for a, b in self.differs[:5])
        more = f" and {len(self.differs) - 5} more range(s)" if len(self.differs) > 5 else ""
        size = (
            f"; it is {self.size} bytes, the registered file {e.size}"
            if self.size != e.size
            else ""
        )
        return f"is NOT the registered {what}: {where}{more} differ{size}"


def check_file(data: bytes, entries: Iterable[tuple[DocumentEntry, Sequence[str]]]) -> FileCheck:
    """Check ``data`` against registered documents (each with its checked chunk hashes).
    A file whose SHA-256 is registered is ``ok``; otherwise the document sharing the
    most chunks with it (at least one, or else of the same size) is named with the
    byte ranges that differ."""
    digest = hashlib.sha256(data).hexdigest()
    best: tuple[int, DocumentEntry, Sequence[str]] | None = None
    for entry, chunks in entries:
        if entry.digest == digest:
            return FileCheck(True, entry, len(data))
        mine = [c.hex() for c in _chunk_hashes(data, entry.chunk_size)]
        same = sum(1 for a, b in zip(mine, chunks, strict=False) if a == b)
        score = same * 2 + (1 if len(data) == entry.size else 0)
        if score > 0 and (best is None or score > best[0]):
            best = (score, entry, chunks)
    if best is None:
        return FileCheck(False, None, len(data))
    _, entry, chunks = best
    mine = [c.hex() for c in _chunk_hashes(data, entry.chunk_size)]
    ranges: list[tuple[int, int]] = []
    for i in range(max(len(mine), len(chunks))):
        if i < len(mine) and i < len(chunks) and mine[i] == chunks[i]:
            continue
        start = i * entry.chunk_size
        end = min((i + 1) * entry.chunk_size, max(entry.size, len(data)))
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return FileCheck(False, entry, len(data), tuple(ranges))


# --- what documents say about a verdict -------------------------------------------------

CALIBRATION_CODES = ("calibration-missing", "calibration-expired")


def _ms_words(t_ms: int) -> str:
    return datetime.datetime.fromtimestamp(t_ms / 1000, datetime.UTC).strftime("%Y-%m-%d")


def calibration_notes(
    spans: Mapping[str, tuple[int, int]],
    documents: Iterable[DocumentEntry],
    status: Status = "pass",
) -> list[Reason]:
    """What the calibration certificates say about the sensors a verdict uses.

    ``spans`` maps each sensor (``gw/src``) to the first and last time ``[first, last]``
    of the readings the verdict rests on. A sensor is covered by a calibration
    certificate about the sensor itself or about its gateway (a logger whose probes
    were calibrated as one) valid over the whole span. A sensor with no certificate
    gets ``calibration-missing``; one whose certificates do not cover the span
    (expired, or not yet valid) ``calibration-expired``. ``status`` is what such a note
    does to the verdict: ``pass`` (said, not judged) or ``indeterminate`` (an anchor
    that requires calibrated loggers). Sorted by sensor."""
    if status not in ("pass", "indeterminate"):
        raise FormatError("a calibration note is pass or indeterminate", code="malformed")
    certificates = [d for d in documents if d.doc_type == CALIBRATION]
    notes: list[Reason] = []
    for sensor in sorted(spans):
        first, last = spans[sensor]
        gw = sensor.rsplit("/", 1)[0] if "/" in sensor else sensor
        mine = [
            d
            for d in certificates
            if (d.subject_kind == "sensor" and d.subject == sensor)
            or (d.subject_kind == "gateway" and d.subject == gw)
        ]
        if not mine:
            notes.append(
                Reason(
                    "calibration-missing",
                    status,
                    f"{sensor}: no calibration certificate is on record for this logger",
                    sensor,
                )
            )
        elif not any(d.covers(first, last + 1) for d in mine):
            latest = max(mine, key=lambda d: (d.valid_until or _MS_MAX, d.valid_from))
            when = (
                f"valid until {_ms_words(latest.valid_until)}"
                if latest.valid_until and latest.valid_until <= last
                else f"valid from {_ms_words(latest.valid_from)}"
            )
            notes.append(
                Reason(
                    "calibration-expired",
                    status,
                    f"{sensor}: its calibration certificate ({latest.issuer}, {when}) does"
                    f" not cover its readings of {_ms_words(first)} to {_ms_words(last)}",
                    sensor,
                )
            )
    return notes


@dataclass(frozen=True, slots=True)
class BundleDocument:
    """A document as a bundle carries it: the entry, its chunk hashes (checked against
    the signed root) and the log key's signature over the entry's statement."""

    entry: DocumentEntry
    chunks: tuple[str, ...]
    attestation: str

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry.to_dict(), "chunks": list(self.chunks),
                "attestation": self.attestation}  # fmt: skip


def bundle_documents(subject: Mapping[str, Any]) -> list[BundleDocument]:
    """The documents a bundle's subject carries (``subject.documents``), each entry
    well-formed and its chunk hashes the signed ones; the attestations are checked by
    the caller, who holds the log key. An absent list is no documents."""
    raw = subject.get("documents", [])
    if not isinstance(raw, list):
        raise FormatError("the bundle's documents are a list", code="bad-bundle")
    out: list[BundleDocument] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("attestation"), str):
            raise FormatError("a bundle document is an object with an attestation",
                              code="bad-bundle")  # fmt: skip
        chunks = item.get("chunks")
        if not isinstance(chunks, list):
            raise FormatError("a bundle document lists its chunk hashes", code="bad-bundle")
        entry = DocumentEntry.from_dict(item.get("entry"))
        if entry.digest in seen:
            raise VerificationError(
                f"document {entry.digest[:12]} is listed twice", code="duplicate-document"
            )
        seen.add(entry.digest)
        out.append(BundleDocument(entry, entry.check_chunks(chunks), item["attestation"]))
    return out


def sensor_spans(verdict: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Each sensor a verdict (``LotVerdict.to_dict()``) uses and the span ``[first,
    last]`` of the custody legs it has readings in: what its calibration must cover."""
    spans: dict[str, tuple[int, int]] = {}
    legs = verdict.get("legs")
    if not isinstance(legs, list):
        raise FormatError("the verdict has no legs list", code="bad-bundle")
    for leg in legs:
        v = leg.get("verdict") if isinstance(leg, dict) else None
        custody = v.get("custody") if isinstance(v, dict) else None
        sensors = v.get("sensors") if isinstance(v, dict) else None
        if not isinstance(custody, dict) or not isinstance(sensors, list):
            raise FormatError("a leg of the verdict is malformed", code="bad-bundle")
        start, end = custody.get("start_ms"), custody.get("end_ms")
        if not isinstance(start, int) or not isinstance(end, int) or end <= start:
            raise FormatError("a leg's custody is malformed", code="bad-bundle")
        for s in sensors:
            if not isinstance(s, dict) or not isinstance(s.get("sensor"), str):
                raise FormatError("a sensor of the verdict is malformed", code="bad-bundle")
            if not isinstance(s.get("readings"), int) or s["readings"] <= 0:
                continue
            a, b = spans.get(s["sensor"], (start, end - 1))
            spans[s["sensor"]] = (min(a, start), max(b, end - 1))
    return spans


def check_calibration(
    verdict: Mapping[str, Any], documents: Sequence[DocumentEntry]
) -> list[Reason]:
    """The calibration notes a verdict must carry, given the documents beside it; a
    verdict whose notes say otherwise (a certificate claimed that is not there, or a
    missing one not said) is refused (``calibration-mismatch``). Returns the notes."""
    notes = verdict.get("notes")
    if not isinstance(notes, list):
        raise FormatError("the verdict has no notes list", code="bad-bundle")
    claimed = [
        (n.get("code"), n.get("status"), n.get("sensor"))
        for n in notes
        if isinstance(n, dict) and n.get("code") in CALIBRATION_CODES
    ]
    statuses = {c[1] for c in claimed}
    if len(statuses) > 1 or not statuses <= {"pass", "indeterminate"}:
        raise VerificationError(
            "the verdict's calibration notes disagree on what they do to it",
            code="calibration-mismatch",
        )
    status: Status = "indeterminate" if statuses == {"indeterminate"} else "pass"
    expected = calibration_notes(sensor_spans(verdict), documents, status)
    if [(n.code, n.status, n.sensor) for n in expected] != claimed:
        want = ", ".join(f"{n.code} {n.sensor}" for n in expected) or "none"
        got = ", ".join(f"{c[0]} {c[2]}" for c in claimed) or "none"
        raise VerificationError(
            f"the verdict's calibration notes ({got}) are not what the documents beside it"
            f" say ({want})",
            code="calibration-mismatch",
        )
    return expected
