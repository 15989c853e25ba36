"""The OpenAPI 3.1 document served at ``/openapi.json``, kept as data next to the
routes it describes. tests/integration/test_anchor_openapi.py runs schemathesis
against the real app with it, so a drift between the two fails the build.
"""

from __future__ import annotations

import copy
from typing import Any

from anchor.errors import PROBLEM_TITLES

__all__ = ["openapi_document"]

_B64 = {"type": "string", "contentEncoding": "base64"}
_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_NONNEG = {"type": "integer", "minimum": 0}

_PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": sorted(PROBLEM_TITLES)},
        "instance": {"type": "string"},
    },
}

_BLOCK = {
    "type": "object",
    "required": ["height", "hash", "root", "size", "time", "entries", "cosignatures", "final"],
    "properties": {
        "height": _NONNEG,
        "hash": _HEX64,
        "root": _B64,
        "size": _NONNEG,
        "time": {**_NONNEG, "description": "ms since the Unix epoch"},
        "entries": {**_NONNEG, "description": "leaves added since the previous block"},
        "cosignatures": _NONNEG,
        "final": {"type": "boolean"},
        "note": {"type": "string", "description": "the C2SP signed note"},
    },
}

_MANIFEST = {
    "type": "object",
    "description": "a signed batch manifest (docs/formats.md)",
    "required": [
        "v",
        "type",
        "gw",
        "batch_seq",
        "prev",
        "first_seq",
        "last_seq",
        "count",
        "root",
        "opened",
        "closed",
        "key",
        "sig",
    ],
    "properties": {
        "v": {"type": "integer", "const": 1},
        "type": {"type": "string", "const": "manifest"},
        "gw": {"type": "string"},
        "batch_seq": _NONNEG,
        "prev": _HEX64,
        "first_seq": _NONNEG,
        "last_seq": _NONNEG,
        "count": {"type": "integer", "minimum": 1},
        "root": _HEX64,
        "opened": _NONNEG,
        "closed": _NONNEG,
        "key": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "sig": _B64,
    },
}

_BATCH = {
    "type": "object",
    "required": [
        "leaf_index",
        "gw",
        "batch_seq",
        "manifest_hash",
        "manifest",
        "records_evicted",
        "accepted_at",
    ],
    "properties": {
        "leaf_index": _NONNEG,
        "gw": {"type": "string"},
        "batch_seq": _NONNEG,
        "manifest_hash": _HEX64,
        "manifest": {"$ref": "#/components/schemas/Manifest"},
        "records_evicted": {"type": "boolean"},
        "accepted_at": _NONNEG,
    },
}

_RECEIPT = {
    "type": "object",
    "required": ["receipt", "sig"],
    "properties": {
        "receipt": {
            "type": "object",
            "required": [
                "gw",
                "batch_seq",
                "manifest_hash",
                "leaf_index",
                "log_proof",
                "checkpoint",
                "accepted_at",
            ],
            "properties": {
                "gw": {"type": "string"},
                "batch_seq": _NONNEG,
                "manifest_hash": _HEX64,
                "leaf_index": _NONNEG,
                "log_proof": {"type": "array", "items": _B64},
                "checkpoint": {"type": "string"},
                "accepted_at": _NONNEG,
            },
        },
        "sig": _B64,
    },
}

_BATCH_REQUEST = {
    "type": "object",
    "required": ["manifest", "records"],
    "additionalProperties": False,
    "properties": {
        "manifest": {"$ref": "#/components/schemas/Manifest"},
        "records": {
            "type": "array",
            "items": {"type": "object", "description": "a signed reading, scan or gap record"},
        },
        "evicted": {"type": "boolean", "default": False},
    },
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {
            "description": "; ".join(
                sorted(code for code, (st, _) in PROBLEM_TITLES.items() if st == s)
            ),
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for s in statuses
    }


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _q(name: str, required: bool, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
    }


def _p(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_INT_PATH = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}

_DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "coldtrail anchoring service",
        "version": "1",
        "description": "Verified ingest of signed gateway batches into an RFC 6962 log with"
        " C2SP checkpoints. Errors are RFC 9457 problem documents with a stable `code`.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Problem": _PROBLEM,
            "Block": _BLOCK,
            "Manifest": _MANIFEST,
            "Batch": _BATCH,
            "Receipt": _RECEIPT,
            "BatchRequest": _BATCH_REQUEST,
        },
    },
    "paths": {
        "/v1/batches": {
            "post": {
                "summary": "Ingest a signed batch (docs/ingest-contract.md)",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/BatchRequest"}
                        }
                    },
                },
                "responses": {
                    "201": _ok({"$ref": "#/components/schemas/Receipt"}, "Accepted and logged"),
                    "200": _ok(
                        {"$ref": "#/components/schemas/Receipt"},
                        "Already accepted: the stored receipt, verbatim",
                    ),
                    **_problems(400, 401, 403, 409, 413, 415, 422, 500),
                    "503": {
                        **_problems(503)["503"],
                        "headers": {
                            "Retry-After": {
                                "description": "seconds to wait before sending the same bytes",
                                "schema": {"type": "integer", "minimum": 0},
                            }
                        },
                    },
                },
            }
        },
        "/v1/log": {
            "get": {
                "summary": "The log's origin, verifier keys and quorum policy",
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["origin", "log_vkey", "cosigner_vkeys", "quorum", "size"],
                            "properties": {
                                "origin": {"type": "string"},
                                "log_vkey": {"type": "string"},
                                "cosigner_vkeys": {"type": "array", "items": {"type": "string"}},
                                "quorum": _NONNEG,
                                "size": _NONNEG,
                            },
                        }
                    )
                },
            }
        },
        "/v1/checkpoints/latest": {
            "get": {
                "summary": "The latest checkpoint: a signed note (text/plain) or JSON",
                "parameters": [
                    {
                        "name": "final",
                        "in": "query",
                        "required": False,
                        "description": "only a checkpoint that meets the quorum",
                        "schema": {"type": "string", "enum": ["0", "1", "true", "false"]},
                    },
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "note"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The checkpoint",
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"$ref": "#/components/schemas/Block"}},
                        },
                    },
                    **_problems(404),
                },
            }
        },
        "/v1/blocks": {
            "get": {
                "summary": "Checkpoints as blocks, newest first",
                "parameters": [
                    _q("limit", False, "at most this many (max 1000)"),
                    _q("before", False, "heights below this one"),
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["blocks"],
                            "properties": {
                                "blocks": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Block"},
                                }
                            },
                        }
                    ),
                    **_problems(400),
                },
            }
        },
        "/v1/blocks/{height}": {
            "get": {
                "summary": "One block, with its signed note",
                "parameters": [_p("height", _INT_PATH)],
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/Block"}),
                    **_problems(400, 404),
                },
            }
        },
        "/v1/log/inclusion": {
            "get": {
                "summary": "Inclusion proof of a leaf in the tree of a given size",
                "parameters": [
                    _q("leaf", True, "leaf index"),
                    _q("size", False, "tree size (default: the current size)"),
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["leaf_index", "tree_size", "leaf_hash", "root", "proof"],
                            "properties": {
                                "leaf_index": _NONNEG,
                                "tree_size": _NONNEG,
                                "leaf_hash": _B64,
                                "root": _B64,
                                "proof": {"type": "array", "items": _B64},
                            },
                        }
                    ),
                    **_problems(400),
                },
            }
        },
        "/v1/log/consistency": {
            "get": {
                "summary": "Consistency proof between two tree sizes",
                "parameters": [_q("from", True, "old size"), _q("to", True, "new size")],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["from", "to", "from_root", "to_root", "proof"],
                            "properties": {
                                "from": _NONNEG,
                                "to": _NONNEG,
                                "from_root": _B64,
                                "to_root": _B64,
                                "proof": {"type": "array", "items": _B64},
                            },
                        }
                    ),
                    **_problems(400),
                },
            }
        },
        "/v1/log/leaves/{index}": {
            "get": {
                "summary": "The manifest at a log leaf",
                "parameters": [_p("index", _INT_PATH)],
                "responses": {
                    "200": _ok({"$ref": "#/components/schemas/Batch"}),
                    **_problems(400, 404),
                },
            }
        },
        "/v1/consortium": {
            "get": {
                "summary": "The consortium as this member sees it: members, policy, each"
                " recent checkpoint's cosigners and finality, each member's last cosignature",
                "parameters": [_q("limit", False, "recent checkpoints (max 100)")],
                "responses": {
                    "200": _ok({"type": "object"}),
                    **_problems(400, 404),
                },
            }
        },
        "/tlog/checkpoint": {
            "get": {
                "summary": "The latest signed checkpoint (C2SP tlog-tiles), cacheable 2 s",
                "responses": {
                    "200": {
                        "description": "A signed note (C2SP tlog-checkpoint)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_problems(404),
                },
            }
        },
        "/tlog/tile/{level}/{index}": {
            "get": {
                "summary": "A hash tile or an entry bundle (C2SP tlog-tiles), immutable",
                "description": (
                    "level: 0-63 or 'entries'; index: x001/x234/067, with .p/W for a partial"
                    " tile. Only tiles within the latest checkpoint's tree are served."
                ),
                "parameters": [
                    _p("level", {"type": "string", "pattern": "^(0|[1-9][0-9]?|entries)$"}),
                    _p("index", {"type": "string"}),
                ],
                "responses": {
                    "200": {
                        "description": "256 (or W) hashes of 32 bytes, or uint16-prefixed entries",
                        "content": {
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    **_problems(404),
                },
            }
        },
        "/v1/gateways/{gw}/batches": {
            "get": {
                "summary": "A gateway and its batches, newest first",
                "parameters": [
                    _p("gw", {"type": "string", "minLength": 1, "maxLength": 128}),
                    _q("limit", False, "at most this many (max 1000)"),
                    _q("before", False, "batch_seq below this one"),
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["gateway", "batches"],
                            "properties": {
                                "gateway": {"type": "object"},
                                "batches": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Batch"},
                                },
                            },
                        }
                    ),
                    **_problems(400, 404),
                },
            }
        },
        "/v1/places": {
            "get": {
                "summary": "Assets and read points: owner and the gateways enrolled for each",
                "parameters": [
                    _q("org", False, "only this organisation's"),
                    _q("after", False, "ids after this one (paging)"),
                    _q("limit", False, "at most this many (max 1000)"),
                ],
                "responses": {
                    "200": _ok(
                        {
                            "type": "object",
                            "required": ["places", "next"],
                            "properties": {
                                "places": {"type": "array", "items": {"type": "object"}},
                                "next": {"type": ["string", "null"]},
                            },
                        }
                    ),
                    **_problems(400),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and ledger health",
                "responses": {
                    "200": _ok({"type": "object", "required": ["status"]}),
                    "503": _ok(
                        {"type": "object", "required": ["status", "cause"]},
                        "Failing: 'cause' is writer-stopped, ledger-unreadable or the commit"
                        " failure's problem code (disk-full, ...); 'storage' has its detail",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _ok({"type": "object"})},
            }
        },
    },
}


def openapi_document() -> dict[str, Any]:
    return copy.deepcopy(_DOC)
