"""Parsing the body of ``POST /v1/batches``: shape, sizes and fields, before any
signature is checked (docs/ingest-contract.md).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from anchor.errors import AnchorError
from proofs.errors import FormatError
from proofs.records import Manifest, manifest_from_dict

__all__ = [
    "IngestRequest",
    "parse_ingest_body",
]


@dataclass(frozen=True, slots=True)
class IngestRequest:
    manifest: Manifest
    records: list[Any]
    evicted: bool


_MANIFEST_FIELDS = {f.name for f in dataclasses.fields(Manifest)} | {"v", "type"}


def parse_ingest_body(body: bytes, max_records: int) -> IngestRequest:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise AnchorError("malformed", f"the body is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise AnchorError("malformed", "the body must be a JSON object")
    unknown = set(doc) - {"manifest", "records", "evicted"}
    if unknown:
        raise AnchorError("malformed", f"unknown fields: {', '.join(sorted(unknown))}")
    records = doc.get("records")
    if not isinstance(records, list):
        raise AnchorError("malformed", "'records' must be a list")
    if len(records) > max_records:
        raise AnchorError("too-large", f"{len(records)} records; at most {max_records} per batch")
    evicted = doc.get("evicted", False)
    if not isinstance(evicted, bool):
        raise AnchorError("malformed", "'evicted' must be true or false")
    raw_manifest = doc.get("manifest")
    if isinstance(raw_manifest, dict):
        # Unsigned extra fields would be dropped silently by the parser; refuse them.
        extra = set(raw_manifest) - _MANIFEST_FIELDS
        if extra:
            raise AnchorError("malformed", f"unknown manifest fields: {', '.join(sorted(extra))}")
    try:
        manifest = manifest_from_dict(raw_manifest)
    except FormatError as e:
        raise AnchorError("malformed", e.message) from e
    except (TypeError, ValueError) as e:
        raise AnchorError("malformed", f"manifest is malformed: {e}") from e
    if not manifest.sig:
        raise AnchorError("bad-signature", "the manifest is not signed")
    if manifest.count > max_records:
        raise AnchorError("too-large", f"manifest covers {manifest.count} records")
    if evicted and records:
        raise AnchorError("malformed", "an evicted batch carries no records")
    return IngestRequest(manifest, records, evicted)
