"""Documents behind verdicts: the signed entry in the ledger, the file beside it.

An operator registers a calibration certificate, a recorder class, a mapping report,
an inspection report or a certificate of analysis about a sensor, a gateway, an asset,
a lot or an organisation (:func:`register_document`). The file is written first,
content-addressed under ``<data_dir>/documents/sha256/ab/<digest>`` (atomically: a
temporary file, fsync, rename, fsync of the directory), then the entry is added with
the log key's attestation over its statement (proofs.documents). A crash in between
leaves a file no entry names, never an entry without its file. Files are read back
only through :meth:`DocumentFiles.read`, which checks the SHA-256, so a file changed on
disk is named, not served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

from anchor.errors import AnchorError
from anchor.ledger.model import StoredDocument
from anchor.ledger.ports import LedgerStore
from anchor.ledger.registry import Attest, document_statement
from proofs.documents import (
    DOCUMENT_TYPES,
    SUBJECT_KINDS,
    DocumentEntry,
    describe_file,
    sniff_media_type,
)
from proofs.errors import FormatError

__all__ = ["DocumentFiles", "new_document", "register_document", "subject_owner"]


class DocumentFiles:
    """The content-addressed file store of one node."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise AnchorError("malformed", "a document digest is 64 lower-case hex digits")
        return self.root / "sha256" / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` (a no-op if it is there); its SHA-256 hex."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.is_file() and self.read(digest) is not None:
            return digest
        target.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def read(self, digest: str) -> bytes | None:
        """The file, or None if it is not here; :class:`AnchorError` ``document-corrupt``
        if the bytes on disk no longer hash to ``digest``."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            raise AnchorError(
                "document-corrupt",
                f"the stored file of document {digest[:12]} no longer matches its digest",
            )
        return data


def subject_owner(store: LedgerStore, kind: str, subject: str) -> str | None:
    """The organisation a document's subject belongs to (None: a lot, which no one
    organisation owns, or an unknown subject)."""
    if kind == "organisation":
        return subject if store.organisation(subject) is not None else None
    if kind in ("gateway", "sensor"):
        gw = subject.rsplit("/", 1)[0] if kind == "sensor" else subject
        if kind == "sensor" and "/" not in subject:
            raise AnchorError("malformed", "a sensor is named gateway/source, e.g. gw-1/probe-a")
        g = store.gateway(gw)
        return g.org_id if g is not None else None
    if kind == "asset":
        p = store.place(subject)
        return p.org_id if p is not None else None
    return None


def new_document(
    store: LedgerStore,
    data: bytes,
    *,
    doc_type: str,
    subject_kind: str,
    subject: str,
    org_id: str,
    issuer: str,
    valid_from: int,
    valid_until: int,
    name: str,
    now: int,
) -> tuple[DocumentEntry, tuple[str, ...]]:
    """The entry for ``data`` and its chunk hashes, after every check: a known type and
    subject, an organisation that exists and owns the subject (a lot may be documented
    by any registered organisation), a PDF, PNG, JPEG or text file within the limit."""
    if doc_type not in DOCUMENT_TYPES:
        raise AnchorError("malformed", f"a document type is one of {', '.join(DOCUMENT_TYPES)}")
    if subject_kind not in SUBJECT_KINDS:
        raise AnchorError("malformed", f"a subject is one of {', '.join(SUBJECT_KINDS)}")
    if store.organisation(org_id) is None:
        raise AnchorError("unknown-organisation", f"no organisation {org_id!r} is registered")
    if subject_kind != "lot":
        owner = subject_owner(store, subject_kind, subject)
        if owner is None:
            raise AnchorError("unknown-subject", f"no {subject_kind} {subject!r} is registered")
        if owner != org_id:
            raise AnchorError(
                "forbidden",
                f"{subject_kind} {subject} belongs to {owner}; {org_id} cannot document it",
            )
    try:
        facts = describe_file(data)
        media_type = sniff_media_type(data)
        entry = DocumentEntry(
            digest=facts.digest, doc_type=doc_type, subject_kind=subject_kind,
            subject=subject, org_id=org_id, issuer=issuer, valid_from=valid_from,
            valid_until=valid_until, name=name, media_type=media_type, size=facts.size,
            chunk_size=facts.chunk_size, chunks_root=facts.chunks_root, registered_at=now,
        )  # fmt: skip
    except FormatError as e:
        raise AnchorError(e.code, e.message) from e
    return entry, facts.chunks


def register_document(
    store: LedgerStore,
    files: DocumentFiles,
    data: bytes,
    attest: Attest | None = None,
    **fields: object,
) -> tuple[StoredDocument, bool]:
    """Check, store and register ``data`` (fields as :func:`new_document`); returns the
    stored document and whether it is new (a file registered before keeps its first
    entry: one digest, one entry, ever)."""
    entry, chunks = new_document(store, data, **fields)  # type: ignore[arg-type]
    existing = store.document(entry.digest)
    if existing is not None:
        files.put(data)  # heal a lost file; the entry stands as first registered
        return existing, False
    doc = StoredDocument(entry, chunks)
    if attest is not None:
        doc = dataclasses.replace(doc, attestation=attest(document_statement(doc)))
    files.put(data)  # the file before the entry (see the module)
    with store.transaction() as tx:
        added = tx.add_document(doc)
    return doc, added
