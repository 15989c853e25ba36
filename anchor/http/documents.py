"""Documents over HTTP (anchor.ledger.documents).

- ``GET /v1/documents?subject=KIND:ID&org=ORG``: the entries (public: what stands
  behind a verdict is evidence anyone may read), each with its status now;
- ``GET /v1/documents/{digest}``: one entry with its chunk hashes and the log key's
  attestation, enough to check a file against it offline;
- ``GET /v1/documents/{digest}/file``: the file, for the organisation that attached it
  and auditors; sent as an attachment that no browser renders in this origin;
- ``POST /v1/documents``: an operator attaches a file (``multipart/form-data``: ``file``
  and the fields ``type``, ``subject`` = KIND:ID, ``issuer``, ``valid_from``,
  ``valid_until``, ``name``), for its own organisation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from aiohttp import BodyPartReader, web

from anchor.errors import AnchorError
from anchor.http.params import json_response
from anchor.http.problems import with_problems
from anchor.ledger.documents import DocumentFiles, register_document
from anchor.ledger.model import StoredDocument
from anchor.ledger.ports import LedgerStore
from anchor.ledger.registry import Attest
from anchor.provenance.answer import parse_gtin
from proofs.documents import MAX_DOCUMENT_BYTES, SUBJECT_KINDS, lot_subject
from proofs.errors import FormatError

__all__ = ["DOCUMENT_ATTEST", "DOCUMENT_FILES", "DOCUMENT_STORE", "setup_documents"]

DOCUMENT_FILES = web.AppKey("document_files", DocumentFiles)
DOCUMENT_STORE = web.AppKey("document_store", LedgerStore)
DOCUMENT_ATTEST: web.AppKey[Attest] = web.AppKey("document_attest")
_LIST_MAX = 500
_FIELD_MAX = 1_000


def entry_json(d: StoredDocument, now_ms: int, *, chunks: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        **d.entry.to_dict(),
        "label": d.entry.label,
        "status": d.entry.status_at(now_ms),
        "attestation": d.attestation,
        "file_url": f"/v1/documents/{d.entry.digest}/file",
    }
    if chunks:
        body["chunks"] = list(d.chunks)
    return body


def parse_subject(text: str) -> tuple[str, str]:
    """``KIND:ID`` (a lot as ``lot:GTIN/LOT``) as ``(kind, subject)``."""
    kind, sep, ident = text.partition(":")
    if not sep or kind not in SUBJECT_KINDS or not ident or len(text) > 300:
        raise AnchorError(
            "bad-parameter", f"subject is KIND:ID with KIND one of {', '.join(SUBJECT_KINDS)}"
        )
    if kind == "lot":
        gtin, slash, lot = ident.partition("/")
        if not slash or not lot:
            raise AnchorError("bad-parameter", "a lot subject is lot:GTIN/LOT")
        return kind, lot_subject(parse_gtin(gtin), lot)
    return kind, ident


def _day(text: str, what: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise AnchorError("bad-parameter", f"{what} is YYYY-MM-DD or an RFC 3339 time") from e
    return int((t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp() * 1000)


def _digest(request: web.Request) -> str:
    digest = request.match_info["digest"]
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise AnchorError("bad-parameter", "a document is named by its SHA-256 (64 hex digits)")
    return digest


async def _caller(request: web.Request) -> Any:
    from anchor.http.pages import CALLER_RESOLVER  # pages imports this module's app keys

    return await request.app[CALLER_RESOLVER](request)


async def list_documents(request: web.Request) -> web.StreamResponse:
    store = request.app[DOCUMENT_STORE]
    subject = request.query.get("subject")
    kind, ident = parse_subject(subject) if subject else (None, None)
    org = request.query.get("org")
    found = await asyncio.to_thread(store.documents, kind, ident, org)
    now = int(time.time() * 1000)
    return json_response(
        {
            "documents": [entry_json(d, now) for d in found[:_LIST_MAX]],
            "truncated": len(found) > _LIST_MAX,
        }
    )


async def get_document(request: web.Request) -> web.StreamResponse:
    d = await asyncio.to_thread(request.app[DOCUMENT_STORE].document, _digest(request))
    if d is None:
        raise AnchorError("not-found", "no document with this digest is registered")
    body = entry_json(d, int(time.time() * 1000), chunks=True)
    body["file_here"] = await asyncio.to_thread(request.app[DOCUMENT_FILES].has, d.entry.digest)
    return json_response(body)


async def get_document_file(request: web.Request) -> web.StreamResponse:
    digest = _digest(request)
    caller = await _caller(request)
    d = await asyncio.to_thread(request.app[DOCUMENT_STORE].document, digest)
    if d is None:
        raise AnchorError("not-found", "no document with this digest is registered")
    if not (caller.role == "auditor" or (caller.org is not None and caller.org == d.entry.org_id)):
        raise AnchorError(
            "forbidden" if caller.org else "unauthenticated",
            f"the file is for {d.entry.org_id} and auditors; anyone may check a copy they hold"
            f" against /v1/documents/{digest}",
        )
    data = await asyncio.to_thread(request.app[DOCUMENT_FILES].read, digest)
    if data is None:
        raise AnchorError("not-found", "this node does not hold the file (another member may)")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in d.entry.name)[:100]
    return web.Response(
        body=data,
        content_type=d.entry.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{safe or digest}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, max-age=3600, immutable",
        },
    )


async def post_document(request: web.Request) -> web.StreamResponse:
    caller = await _caller(request)
    if caller.role != "operator" or caller.org is None:
        raise AnchorError("forbidden", "only an operator token may attach a document")
    attest = request.app.get(DOCUMENT_ATTEST)
    if attest is None:
        raise AnchorError(
            "forbidden",
            "a consortium member attaches documents through the ordering stream: use"
            " `coldtrail-anchor document add` on the member's node",
        )
    if not request.content_type.startswith("multipart/form-data"):
        raise AnchorError("unsupported-media-type", "send multipart/form-data with a file part")
    fields: dict[str, str] = {}
    data = b""
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise AnchorError("malformed", "nested multipart bodies are not accepted")
        if part.name == "file":
            chunks: list[bytes] = []
            size = 0
            while chunk := await part.read_chunk(65_536):
                size += len(chunk)
                if size > MAX_DOCUMENT_BYTES:
                    raise AnchorError(
                        "document-too-large",
                        f"a document is at most {MAX_DOCUMENT_BYTES >> 20} MiB",
                    )
                chunks.append(chunk)
            data = b"".join(chunks)
            fields.setdefault("name", part.filename or "")
        elif part.name in ("type", "subject", "issuer", "valid_from", "valid_until", "name"):
            value = await part.read(decode=True)
            if len(value) > _FIELD_MAX:
                raise AnchorError("malformed", f"the field {part.name} is too long")
            try:
                fields[part.name] = value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise AnchorError("malformed", f"the field {part.name} is not UTF-8") from e
        else:
            raise AnchorError("malformed", f"unknown field {str(part.name)[:40]!r}")
    for need in ("type", "subject", "issuer", "valid_from"):
        if not fields.get(need):
            raise AnchorError("malformed", f"the field {need} is required")
    if not data:
        raise AnchorError("document-empty", "the file part is missing or empty")
    kind, ident = parse_subject(fields["subject"])
    now = int(time.time() * 1000)
    try:
        doc, new = await asyncio.to_thread(
            register_document,
            request.app[DOCUMENT_STORE],
            request.app[DOCUMENT_FILES],
            data,
            attest,
            doc_type=fields["type"],
            subject_kind=kind,
            subject=ident,
            org_id=caller.org,
            issuer=fields["issuer"],
            valid_from=_day(fields["valid_from"], "valid_from"),
            valid_until=_day(fields["valid_until"], "valid_until")
            if fields.get("valid_until")
            else 0,
            name=fields.get("name") or "document",
            now=now,
        )
    except FormatError as e:
        raise AnchorError("malformed", e.message) from e
    return json_response(entry_json(doc, now, chunks=True), status=201 if new else 200)


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3.1 path items of these routes (merged into ``/openapi.json``)."""
    problem = {
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    }

    def problems(*statuses: int) -> dict[str, Any]:
        return {str(s): {"description": "Refused", **problem} for s in statuses}

    obj = {"content": {"application/json": {"schema": {"type": "object"}}}}
    digest = {
        "name": "digest",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    }
    return {
        "/v1/documents": {
            "get": {
                "summary": "Documents behind verdicts (calibration certificates, ...)",
                "parameters": [
                    {
                        "name": "subject",
                        "in": "query",
                        "required": False,
                        "description": "KIND:ID, e.g. sensor:gw-1/probe-a or lot:GTIN/LOT",
                        "schema": {"type": "string"},
                    },
                    {"name": "org", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "entries", **obj}, **problems(400)},
            },
            "post": {
                "summary": "Attach a document (operator token; multipart/form-data)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    **{
                                        k: {"type": "string"}
                                        for k in (
                                            "type",
                                            "subject",
                                            "issuer",
                                            "valid_from",
                                            "valid_until",
                                            "name",
                                        )
                                    },
                                },
                                "required": ["file", "type", "subject", "issuer", "valid_from"],
                            }
                        }
                    },
                },
                "responses": {
                    "201": {"description": "registered", **obj},
                    "200": {"description": "registered before", **obj},
                    **problems(400, 401, 403, 413, 415, 422),
                },
            },
        },
        "/v1/documents/{digest}": {
            "get": {
                "summary": "One document's signed entry and chunk hashes",
                "parameters": [digest],
                "responses": {"200": {"description": "entry", **obj}, **problems(400, 404)},
            }
        },
        "/v1/documents/{digest}/file": {
            "get": {
                "summary": "The file (its organisation and auditors)",
                "parameters": [digest],
                "responses": {
                    "200": {"description": "the file, as an attachment"},
                    **problems(400, 401, 403, 404),
                },
            }
        },
    }


def setup_documents(app: web.Application) -> None:
    from anchor.http.keys import OPENAPI

    doc = app.get(OPENAPI)
    if doc is not None:
        doc["paths"].update(openapi_paths())
    app.router.add_routes(
        [
            web.get("/v1/documents", with_problems(list_documents)),
            web.post("/v1/documents", with_problems(post_document)),
            web.get("/v1/documents/{digest}", with_problems(get_document)),
            web.get("/v1/documents/{digest}/file", with_problems(get_document_file)),
        ]
    )
