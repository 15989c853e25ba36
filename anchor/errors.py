"""The error family of the anchoring service.

Every refusal the service makes is an :class:`AnchorError` with a stable,
kebab-case ``code`` (never renamed once published: gateways count refusals by
it), the HTTP status it maps to, a short title and a human sentence.
``anchor.http.problems`` turns them into RFC 9457 problem responses.
"""

from __future__ import annotations

from proofs.errors import CodedError

__all__ = [
    "PROBLEM_TITLES",
    "AnchorError",
    "ConfigError",
    "LedgerCorrupt",
    "StoreConflict",
]

# code -> (HTTP status, title). The ingest contract (docs/ingest-contract.md)
# fixes the first block; the rest are the service's own.
PROBLEM_TITLES: dict[str, tuple[int, str]] = {
    "malformed": (400, "Malformed request"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "too-large": (413, "Request too large"),
    "unauthenticated": (401, "Unauthenticated"),
    "forbidden": (403, "Forbidden"),
    "unknown-gateway": (403, "Unknown gateway"),
    "revoked": (403, "Gateway revoked"),
    "bad-signature": (422, "Bad signature"),
    "root-mismatch": (422, "Root mismatch"),
    "key-mismatch": (422, "Key mismatch"),
    "broken-chain": (409, "Broken chain"),
    "seq-gap": (409, "Sequence gap"),
    "seq-overlap": (409, "Sequence overlap"),
    "batch-replay": (409, "Batch replay"),
    "batch-too-far-ahead": (409, "Batch too far ahead"),
    "foreign-asset": (403, "Asset not in the gateway's enrolment"),
    "foreign-read-point": (403, "Read point not in the gateway's enrolment"),
    "implausible-value": (422, "Implausible value"),
    # the ledger could not commit: nothing was stored, send the same bytes again
    # after Retry-After (anchor/storage/health.py)
    "disk-full": (503, "Ledger disk full"),
    "storage-unavailable": (503, "Ledger storage unavailable"),
    "ledger-busy": (503, "Ledger busy"),
    "commit-failed": (503, "Commit failed"),
    # service codes
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "Not acceptable"),
    "bad-parameter": (400, "Bad parameter"),
    "unavailable": (503, "Service unavailable"),
    # public reads over their per-client limit, or while their queue is full (Retry-After)
    "rate-limited": (429, "Too many requests"),
    "busy": (429, "Busy"),
    "internal": (500, "Internal error"),
    # provenance queries, Digital Link pages and the explorer
    "bad-gtin": (400, "Bad GTIN"),
    "bad-lot": (400, "Bad lot"),
    "bad-serial": (400, "Bad serial"),
    "bad-sscc": (400, "Bad SSCC"),
    "path-traversal": (400, "Path traversal"),
    "bad-cursor": (400, "Bad cursor"),
    "bad-digital-link": (404, "Not a Digital Link"),
    "no-proof-yet": (404, "No proof yet"),
    # documents (anchor.ledger.documents)
    "unknown-organisation": (422, "Unknown organisation"),
    "unknown-subject": (422, "Unknown subject"),
    "document-type": (415, "Not a PDF, PNG, JPEG or text file"),
    "document-too-large": (413, "Document too large"),
    "document-empty": (400, "Empty document"),
    "document-malformed": (400, "Malformed document entry"),
    "document-corrupt": (500, "Stored document corrupt"),
    # claims (anchor.provenance.claims)
    "claim-malformed": (400, "Malformed claim"),
    "claim-too-large": (413, "Claim too large"),
    "claim-photo-type": (415, "Not a JPEG or PNG photo"),
    "claim-state": (409, "Claim state does not allow this"),
}


class AnchorError(CodedError):
    """A refusal with a stable code; ``status`` and ``title`` come from the code.

    The one error family of the service (on ``proofs``' :class:`CodedError`, as the
    gateway's is): ingest, the ledger, provenance queries and pages all raise it, and
    :mod:`anchor.http.problems` is the one place it becomes an RFC 9457 response.
    ``retry_after_s`` (a transient 503) becomes the response's ``Retry-After``.
    """

    def __init__(self, code: str, detail: str, *, retry_after_s: int | None = None) -> None:
        if code not in PROBLEM_TITLES:
            raise ValueError(f"unknown problem code {code!r}")  # a programming error
        super().__init__(detail, code=code)
        self.detail = detail
        self.retry_after_s = retry_after_s
        self.status, self.title = PROBLEM_TITLES[code]

    def __str__(self) -> str:
        return f"{self.detail} [{self.code}]"

    def __reduce__(self) -> tuple[type[AnchorError], tuple[str, str]]:
        # Worker processes raise these; pickling must rebuild them from code and detail.
        # (Verification refusals carry no retry_after_s: only the writer sets it.)
        return (AnchorError, (self.code, self.detail))


class StoreConflict(Exception):
    """A write lost a race (another writer moved the gateway's chain head first)."""


class LedgerCorrupt(Exception):
    """The stored ledger contradicts itself; ``verify-ledger`` names what and where."""


class ConfigError(Exception):
    """The configuration file or an environment override is unusable."""
