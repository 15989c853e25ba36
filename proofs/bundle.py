"""Proof bundles: everything an auditor needs to check provenance offline.

A bundle (JSON, ``"format": "coldtrail-bundle/1"``, see docs/bundle.md) carries
signed records, each record's inclusion proof in its batch's Merkle root, the
signed batch manifests, each manifest's inclusion proof in the anchor's log,
and the log checkpoint with its cosignatures. :func:`verify_bundle` checks all
of it with no network and returns a :class:`BundleReport` or raises.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .canonical import canonical_json
from .errors import FormatError, VerificationError
from .keys import PublicKey
from .merkle import MerkleTree, verify_inclusion
from .note import ALG_COSIGNATURE_V1, ALG_ED25519, Checkpoint, NoteVerifier, SignedNote
from .records import Gap, Manifest, Reading, Scan, manifest_from_dict, record_from_dict, verify

__all__ = [
    "BUNDLE_FORMAT",
    "BatchProof",
    "BundleReport",
    "build_batch_proof",
    "build_bundle",
    "summarize",
    "verify_bundle",
]

BUNDLE_FORMAT = "coldtrail-bundle/1"
ATTESTATION_DOMAIN = b"coldtrail-attestation/v1\n"
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


def _b64list(items: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(x).decode() for x in items]


def _unb64list(items: Any, where: str) -> list[bytes]:
    if not isinstance(items, list) or len(items) > 64:
        raise FormatError(f"{where} must be a list of at most 64 hashes", code="bad-bundle")
    try:
        return [base64.b64decode(x, validate=True) for x in items]
    except (TypeError, ValueError, binascii.Error) as e:
        raise FormatError(f"{where} holds a hash that is not base64", code="bad-bundle") from e


@dataclass(frozen=True, slots=True)
class BatchProof:
    """One batch in a bundle: its manifest, where it sits in the log, and chosen records."""

    manifest: Manifest
    leaf_index: int
    log_proof: list[bytes]
    records: list[tuple[Reading | Scan | Gap, int, list[bytes]]]  # (record, index, proof)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest.to_dict(),
            "leaf_index": self.leaf_index,
            "log_proof": _b64list(self.log_proof),
            "records": [
                {"record": r.to_dict(), "index": i, "proof": _b64list(p)}
                for r, i, p in self.records
            ],
        }


def build_batch_proof(
    manifest: Manifest,
    batch_records: Sequence[Reading | Scan | Gap],
    chosen_seqs: Iterable[int],
    leaf_index: int,
    log_proof: list[bytes],
) -> BatchProof:
    """Prove ``chosen_seqs`` of a batch whose full, seq-ordered records are given."""
    tree = MerkleTree([r.leaf_hash() for r in batch_records])
    by_seq = {r.seq: i for i, r in enumerate(batch_records)}
    chosen = []
    for seq in sorted(set(chosen_seqs)):
        i = by_seq[seq]
        chosen.append((batch_records[i], i, tree.inclusion_proof(i)))
    return BatchProof(manifest, leaf_index, log_proof, chosen)


def summarize(records: Iterable[Reading | Scan | Gap]) -> dict[str, Any]:
    """Aggregates a bundle's readings per quantity; recomputed by the verifier."""
    per_q: dict[str, dict[str, Any]] = {}
    gaps = 0
    for r in records:
        if isinstance(r, Gap):
            gaps += 1
        if not isinstance(r, Reading):
            continue
        agg = per_q.setdefault(r.q, {"unit": r.unit, "count": 0, "min": math.inf, "max": -math.inf})
        agg["count"] += 1
        agg["min"] = min(agg["min"], r.val)
        agg["max"] = max(agg["max"], r.val)
    return {"quantities": per_q, "gaps": gaps}


def build_bundle(
    *,
    log_vkey: str,
    checkpoint_note: str,
    batches: Sequence[BatchProof],
    gateway_keys: dict[str, str],
    cosigner_vkeys: Sequence[str] = (),
    quorum: int = 0,
    subject: dict[str, Any] | None = None,
    attest: Callable[[bytes], bytes] | None = None,
) -> dict[str, Any]:
    """Assemble a bundle. ``attest`` signs with the log key; it is required when the
    subject carries claims beyond GS1 keys (the anchor's range and verdict)."""
    records = [r for b in batches for r, _, _ in b.records]
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "subject": subject or {},
        "log": {"vkey": log_vkey, "cosigners": list(cosigner_vkeys), "quorum": quorum},
        "checkpoint": checkpoint_note,
        "gateways": dict(gateway_keys),
        "batches": [b.to_dict() for b in batches],
        "summary": summarize(records),
    }
    if attest is not None:
        bundle["attestation"] = base64.b64encode(attest(_attested_bytes(bundle))).decode()
    return bundle


def _attested_bytes(bundle: dict[str, Any]) -> bytes:
    """What the log key attests: the subject with its claims and the summary, bound to
    the checkpoint the proofs are against."""
    body = {
        "subject": bundle.get("subject", {}),
        "summary": bundle.get("summary"),
        "checkpoint": bundle.get("checkpoint"),
    }
    return ATTESTATION_DOMAIN + canonical_json(body)


@dataclass(slots=True)
class BundleReport:
    origin: str
    tree_size: int
    batches: int
    records: int
    log_signer: str
    cosigners: list[str] = field(default_factory=list)
    cosigned_at: list[int] = field(default_factory=list)
    pinned: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


def _need(d: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise FormatError(f"{where}: '{key}' is missing", code="bad-bundle")
    value = d[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"{where}: '{key}' has the wrong type", code="bad-bundle")
    return value


def _same_summary(claimed: Any, actual: dict[str, Any]) -> bool:
    # Round-trip through JSON so float infinities of empty aggregates never appear
    # and both sides compare as the numbers a JSON reader sees.
    def norm(x: Any) -> Any:
        return json.loads(json.dumps(x, sort_keys=True, allow_nan=True))

    return bool(norm(claimed) == norm(actual))


_SUBJECT_AIS = {"gtin": "01", "lot": "10", "serial": "21", "sscc": "00"}
_VERDICTS = {"pass", "fail", "incomplete", "no-data"}


def _check_subject(subject: Any, records: Sequence[Reading | Scan | Gap]) -> None:
    """The identifiers a bundle claims to be about must be in one of its signed scans."""
    if not isinstance(subject, dict):
        raise FormatError("bundle 'subject' must be an object", code="bad-bundle")
    wanted = {ai: subject[k] for k, ai in _SUBJECT_AIS.items() if k in subject}
    if not wanted:
        return
    for r in records:
        if isinstance(r, Scan) and all(r.gs1.get(ai) == v for ai, v in wanted.items()):
            return
    raise VerificationError(
        "no signed scan in the bundle names the bundle's subject", code="subject-not-proven"
    )


def _check_verdict(subject: dict[str, Any], records: Sequence[Reading | Scan | Gap]) -> None:
    """A claimed verdict must agree with the proven readings: 'fail' needs a proven reading
    outside the range, 'pass' and 'incomplete' allow none, 'no-data' has no readings."""
    if "verdict" not in subject and "range" not in subject:
        return
    verdict, rng = subject.get("verdict"), subject.get("range")
    if verdict not in _VERDICTS or not isinstance(rng, dict):
        raise FormatError("subject verdict/range are malformed", code="bad-bundle")
    low, high = rng.get("low"), rng.get("high")
    q, unit = rng.get("q", "temperature"), rng.get("unit", "CEL")
    for bound in (low, high):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
            raise FormatError("subject range bounds are numbers or null", code="bad-bundle")
    values = [r.val for r in records if isinstance(r, Reading) and r.q == q and r.unit == unit]
    out = any((low is not None and v < low) or (high is not None and v > high) for v in values)
    if (verdict == "fail") != out or (verdict == "no-data" and values):
        raise VerificationError(
            f"the claimed verdict '{verdict}' contradicts the proven readings",
            code="verdict-mismatch",
        )


def _check_attestation(
    bundle: dict[str, Any], subject: dict[str, Any], log_verifiers: Sequence[NoteVerifier]
) -> None:
    """Claims beyond GS1 keys (range, verdict) are the anchor's: they must carry its signature."""
    attestation = bundle.get("attestation")
    if attestation is None:
        if set(subject) - set(_SUBJECT_AIS):
            raise VerificationError(
                "the subject's claims are not attested by the log key", code="unattested-subject"
            )
        return
    if not isinstance(attestation, str):
        raise FormatError("'attestation' is a base64 signature", code="bad-bundle")
    try:
        sig = base64.b64decode(attestation, validate=True)
    except (ValueError, binascii.Error) as e:
        raise FormatError("'attestation' is not base64", code="bad-bundle") from e
    message = _attested_bytes(bundle)
    for v in log_verifiers:
        try:
            v.public_key.verify(sig, message)
            return
        except VerificationError:
            continue
    raise VerificationError("the attestation is not signed by the log key", code="bad-attestation")


def verify_bundle(
    bundle: Any,
    *,
    trusted_log_vkeys: Sequence[str] = (),
    trusted_cosigner_vkeys: Sequence[str] = (),
    quorum: int | None = None,
) -> BundleReport:
    """Verify a parsed bundle offline. Raises FormatError or VerificationError.

    Without ``trusted_log_vkeys`` the log key written in the bundle is used and
    the report says the result is *unpinned*: valid as a whole, but only as
    trustworthy as wherever the bundle came from.
    """
    if not isinstance(bundle, dict):
        raise FormatError("a bundle is a JSON object", code="bad-bundle")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise FormatError(f"not a {BUNDLE_FORMAT} bundle", code="bad-bundle-format")
    log = _need(bundle, "log", dict, "bundle")
    bundle_vkey = _need(log, "vkey", str, "log")
    pinned = bool(trusted_log_vkeys)
    log_verifiers = [NoteVerifier.from_vkey(v) for v in (trusted_log_vkeys or [bundle_vkey])]
    if pinned and NoteVerifier.from_vkey(bundle_vkey) not in log_verifiers:
        # The pin decides, but a bundle that names another log is not about this one.
        raise VerificationError(
            "the bundle names a log key that is not the pinned one", code="log-key-mismatch"
        )
    if any(v.alg != ALG_ED25519 for v in log_verifiers):
        raise FormatError("the log key must be an Ed25519 (0x01) verifier key", code="bad-vkey")
    bundle_cosigners = _need(log, "cosigners", list, "log")
    cosigner_vkeys = list(trusted_cosigner_vkeys) or bundle_cosigners
    cosigners = [NoteVerifier.from_vkey(v) for v in cosigner_vkeys]
    if trusted_cosigner_vkeys and any(
        NoteVerifier.from_vkey(v) not in cosigners for v in bundle_cosigners
    ):
        raise VerificationError(
            "the bundle names a cosigner that is not pinned", code="cosigner-mismatch"
        )
    if any(c.alg != ALG_COSIGNATURE_V1 for c in cosigners):
        raise FormatError("cosigner keys must be type 0x04 verifier keys", code="bad-vkey")
    need = quorum if quorum is not None else _need(log, "quorum", int, "log")

    note = SignedNote.parse(_need(bundle, "checkpoint", str, "bundle"))
    checkpoint = Checkpoint.from_text(note.text)
    log_names = {v.name for v in log_verifiers}
    signed_by = note.verify([*log_verifiers, *cosigners])
    log_signer = next((n for n in signed_by if n in log_names), None)
    if log_signer is None:
        raise VerificationError(
            "the checkpoint is not signed by the log key", code="no-log-signature"
        )
    if checkpoint.origin != log_signer:
        raise VerificationError(
            f"checkpoint origin {checkpoint.origin!r} is not the log's name {log_signer!r}",
            code="origin-mismatch",
        )
    cosigned = sorted({n for n in signed_by if n in {c.name for c in cosigners}})
    if len(cosigned) < need:
        raise VerificationError(
            f"checkpoint has {len(cosigned)} of the {need} cosignatures its policy needs",
            code="no-quorum",
        )
    cosigned_at = [
        s.timestamp for s in note.signatures if s.name in cosigned and s.timestamp is not None
    ]

    gateways = _need(bundle, "gateways", dict, "bundle")
    batches = _need(bundle, "batches", list, "bundle")
    if not batches:
        raise FormatError("a bundle proves at least one batch", code="bad-bundle")
    all_records: list[Reading | Scan | Gap] = []
    for bi, b in enumerate(batches):
        where = f"batch {bi}"
        manifest = manifest_from_dict(_need(b, "manifest", dict, where))
        key_b64 = gateways.get(manifest.gw)
        if not isinstance(key_b64, str):
            raise FormatError(f"{where}: no key for gateway {manifest.gw!r}", code="bad-bundle")
        gw_key = PublicKey.from_base64(key_b64)
        if gw_key.key_id != manifest.key:
            raise VerificationError(
                f"{where}: manifest names key {manifest.key}, bundle has {gw_key.key_id}",
                code="key-mismatch",
            )
        verify(manifest, gw_key)
        leaf_index = _need(b, "leaf_index", int, where)
        log_proof = _unb64list(_need(b, "log_proof", list, where), f"{where}.log_proof")
        try:
            verify_inclusion(
                manifest.leaf_hash(), leaf_index, checkpoint.size, log_proof, checkpoint.root
            )
        except VerificationError as e:
            raise VerificationError(
                f"{where}: manifest is not in the checkpointed log: {e.message}", code=e.code
            ) from e
        batch_root = bytes.fromhex(manifest.root)
        for ri, entry in enumerate(_need(b, "records", list, where)):
            rwhere = f"{where} record {ri}"
            record = record_from_dict(_need(entry, "record", dict, rwhere))
            if (
                record.gw != manifest.gw
                or not manifest.first_seq <= record.seq <= manifest.last_seq
            ):
                raise VerificationError(
                    f"{rwhere}: seq {record.seq} of {record.gw} is not in this batch",
                    code="record-not-in-batch",
                )
            verify(record, gw_key)
            index = _need(entry, "index", int, rwhere)
            if index != record.seq - manifest.first_seq:
                raise VerificationError(f"{rwhere}: index does not match seq", code="bad-index")
            proof = _unb64list(_need(entry, "proof", list, rwhere), f"{rwhere}.proof")
            try:
                verify_inclusion(record.leaf_hash(), index, manifest.count, proof, batch_root)
            except VerificationError as e:
                raise VerificationError(
                    f"{rwhere}: record is not in its batch root: {e.message}", code=e.code
                ) from e
            all_records.append(record)
    _check_subject(bundle.get("subject", {}), all_records)
    subject = bundle.get("subject", {})
    _check_verdict(subject, all_records)
    summary = summarize(all_records)
    if "summary" in bundle and not _same_summary(bundle["summary"], summary):
        raise VerificationError(
            "the bundle's summary does not match its records", code="summary-mismatch"
        )
    _check_attestation(bundle, subject, [v for v in log_verifiers if v.name == log_signer])
    return BundleReport(
        origin=checkpoint.origin,
        tree_size=checkpoint.size,
        batches=len(batches),
        records=len(all_records),
        log_signer=log_signer,
        cosigners=cosigned,
        cosigned_at=cosigned_at,
        pinned=pinned,
        summary=summary,
    )
