# Column lists are module constants; values always go through placeholders.
# ruff: noqa: S608
"""Registered documents (proofs.documents) in SQL for every driver: the signed entry,
the hex SHA-256 of each chunk of the file and the log key's attestation. Rows are added
once per digest and never changed; the file itself lives beside the ledger
(anchor.ledger.documents)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anchor.ledger.model import StoredDocument
from proofs.documents import DocumentEntry

__all__ = ["DocumentReads", "DocumentWrites"]

_COLS = (
    "digest, doc_type, subject_kind, subject, org_id, issuer, valid_from, valid_until, name,"
    " media_type, size, chunk_size, chunks_root, chunks, registered_at, attestation"
)


def _document(r: Sequence[Any]) -> StoredDocument:
    entry = DocumentEntry(
        digest=str(r[0]), doc_type=str(r[1]), subject_kind=str(r[2]), subject=str(r[3]),
        org_id=str(r[4]), issuer=str(r[5]), valid_from=int(r[6]), valid_until=int(r[7]),
        name=str(r[8]), media_type=str(r[9]), size=int(r[10]), chunk_size=int(r[11]),
        chunks_root=str(r[12]), registered_at=int(r[14]),
    )  # fmt: skip
    chunks = tuple(str(r[13]).split(",")) if r[13] else ()
    return StoredDocument(entry, chunks, str(r[15]))


class DocumentReads:
    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def document(self, digest: str) -> StoredDocument | None:
        row = self._one(f"SELECT {_COLS} FROM documents WHERE digest = ?", (digest,))
        return None if row is None else _document(row)

    def documents(
        self,
        subject_kind: str | None = None,
        subject: str | None = None,
        org_id: str | None = None,
    ) -> list[StoredDocument]:
        """Documents, oldest first, narrowed by subject and/or organisation."""
        where: list[str] = []
        args: list[str] = []
        for col, value in (("subject_kind", subject_kind), ("subject", subject),
                           ("org_id", org_id)):  # fmt: skip
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = f"SELECT {_COLS} FROM documents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_document(r) for r in self._all(sql + " ORDER BY registered_at, digest",
                                                tuple(args))]  # fmt: skip

    def documents_about(self, subjects: Sequence[tuple[str, str]]) -> list[StoredDocument]:
        """Documents about any of ``(subject_kind, subject)``, oldest first."""
        found: dict[str, StoredDocument] = {}
        for kind, subject in dict.fromkeys(subjects):
            for d in self.documents(kind, subject):
                found[d.entry.digest] = d
        return sorted(found.values(), key=lambda d: (d.entry.registered_at, d.entry.digest))


class DocumentWrites(DocumentReads):
    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def add_document(self, d: StoredDocument) -> bool:
        """Register a document; False (and nothing written) if its digest exists."""
        if self.document(d.entry.digest) is not None:
            return False
        e = d.entry
        self._many(
            f"INSERT INTO documents ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(e.digest, e.doc_type, e.subject_kind, e.subject, e.org_id, e.issuer,
              e.valid_from, e.valid_until, e.name, e.media_type, e.size, e.chunk_size,
              e.chunks_root, ",".join(d.chunks), e.registered_at, d.attestation)],
        )  # fmt: skip
        return True
