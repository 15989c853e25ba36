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
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .canonical import canonical_json
from .coldchain import (
    CHECKED_QUANTITY,
    RULES_VERSION,
    Leg,
    LotVerdict,
    Profile,
    Reason,
    celsius,
    lot_verdict,
    sensor_id,
)
from .documents import BundleDocument, bundle_documents, check_calibration
from .errors import FormatError, VerificationError
from .keys import PublicKey
from .merkle import MerkleTree, verify_inclusion
from .note import ALG_COSIGNATURE_V1, ALG_ED25519, Checkpoint, NoteVerifier, SignedNote
from .policy import Policy
from .policy_change import PolicyChange, follow
from .records import Gap, Manifest, Reading, Scan, manifest_from_dict, record_from_dict, verify

__all__ = [
    "BUNDLE_FORMAT",
    "BatchProof",
    "BundleReport",
    "build_batch_proof",
    "build_bundle",
    "effective_policy",
    "not_attested_sentence",
    "proven_digest",
    "summarize",
    "verify_bundle",
]

BUNDLE_FORMAT = "coldtrail-bundle/1"
# v1 signs subject, summary and checkpoint; v2 adds the set of proven records, so a
# record dropped from (or swapped into) an attested bundle breaks the attestation.
# v3 adds the log's trust statement (cosigners and quorum, the policy changes carried):
# with several cosigners a changed quorum that is still met would otherwise go unnoticed.
ATTESTATION_V1 = "coldtrail-attestation/v1"
ATTESTATION_V2 = "coldtrail-attestation/v2"
ATTESTATION_V3 = "coldtrail-attestation/v3"
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
    policy_changes: Sequence[dict[str, Any]] = (),
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
    if policy_changes:
        bundle["policy_changes"] = list(policy_changes)
    if attest is not None:
        bundle["attestation_format"] = ATTESTATION_V3
        message = _attested_bytes(bundle, records)
        bundle["attestation"] = base64.b64encode(attest(message)).decode()
    return bundle


def proven_digest(records: Iterable[Reading | Scan | Gap]) -> str:
    """SHA-256 over the sorted, concatenated leaf hashes of the proven records (hex)."""
    return hashlib.sha256(b"".join(sorted(r.leaf_hash() for r in records))).hexdigest()


def _attested_bytes(
    bundle: dict[str, Any], records: Sequence[Reading | Scan | Gap] | None = None
) -> bytes:
    """What the log key attests: the subject with its claims and the summary, bound to
    the checkpoint the proofs are against and (v2) to exactly the records proven.

    ``records`` are the bundle's records as verified; without them they are read from
    the bundle (a signer re-attesting a document it holds)."""
    fmt = bundle.get("attestation_format", ATTESTATION_V1)
    body: dict[str, Any] = {
        "subject": bundle.get("subject", {}),
        "summary": bundle.get("summary"),
        "checkpoint": bundle.get("checkpoint"),
    }
    if fmt == ATTESTATION_V1:
        return f"{ATTESTATION_V1}\n".encode() + canonical_json(body)
    if fmt not in (ATTESTATION_V2, ATTESTATION_V3):
        raise FormatError(f"unknown attestation format {fmt!r}", code="bad-attestation-format")
    if records is None:
        records = [
            record_from_dict(entry["record"])
            for b in bundle.get("batches", [])
            for entry in b.get("records", [])
        ]
    body["proven"] = {
        "batches": len(bundle.get("batches", [])),
        "records": len(records),
        "leaves": proven_digest(records),
    }
    if fmt == ATTESTATION_V3:
        body["log"] = bundle.get("log")
        body["policy_changes"] = bundle.get("policy_changes", [])
    return f"{fmt}\n".encode() + canonical_json(body)


@dataclass(slots=True)
class BundleReport:
    """What a verified bundle proves, for a person to read (``coldtrail-verify`` prints it)."""

    origin: str
    tree_size: int
    batches: int
    records: int
    log_signer: str
    cosigners: list[str] = field(default_factory=list)
    cosigned_at: list[int] = field(default_factory=list)
    pinned: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    root_hex: str = ""
    subject: dict[str, Any] = field(default_factory=dict)
    readings: int = 0
    scans: int = 0
    gaps: int = 0
    gateways: list[str] = field(default_factory=list)
    # The log key's signed statement over subject, verdict and (v2) the proven records.
    attested: bool = False
    attestation_format: str | None = None
    # How the cosignatures met the pinned policy, one line per group; empty if unpinned.
    policy: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The cold-chain verdict recomputed from the proven readings (None: none claimed, or
    # a partial bundle whose claim was only checked against the readings it proves).
    verdict: LotVerdict | None = None
    # The documents behind the subject (calibration certificates, ...), each signed by
    # the log key; a file is checked against them with ``coldtrail-verify --document``.
    documents: list[BundleDocument] = field(default_factory=list)


def _check_documents(
    subject: dict[str, Any], log_verifiers: Sequence[NoteVerifier]
) -> list[BundleDocument]:
    """The subject's documents, each the entry the log key signed, and the verdict's
    calibration notes what they say (proofs.documents.check_calibration)."""
    documents = bundle_documents(subject)
    for d in documents:
        try:
            sig = base64.b64decode(d.attestation, validate=True)
        except (ValueError, binascii.Error) as e:
            raise FormatError("a document's attestation is not base64", code="bad-bundle") from e
        for v in log_verifiers:
            try:
                v.public_key.verify(sig, d.entry.statement())
                break
            except VerificationError:
                continue
        else:
            raise VerificationError(
                f"document {d.entry.digest[:12]} ({d.entry.name}) is not the entry the log key"
                " signed",
                code="bad-document",
            )
    claim = subject.get("verdict")
    if isinstance(claim, dict):
        check_calibration(claim, [d.entry for d in documents])
    return documents


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


def _claimed_legs(claim: dict[str, Any]) -> list[tuple[str, int, int, set[str]]]:
    """``(holder, start, end, sensor ids)`` of each leg a claimed verdict names."""
    legs = claim.get("legs")
    if not isinstance(legs, list):
        raise FormatError("the claimed verdict has no legs", code="bad-bundle")
    out = []
    for leg in legs:
        try:
            v = leg["verdict"]
            start, end = v["custody"]["start_ms"], v["custody"]["end_ms"]
            sensors = {s["sensor"] for s in v["sensors"]}
            holder = leg["holder"]
        except (KeyError, TypeError) as e:
            raise FormatError("a leg of the claimed verdict is malformed", code="bad-bundle") from e
        if not (isinstance(start, int) and isinstance(end, int) and isinstance(holder, str)):
            raise FormatError("a leg's custody is integer ms and a holder", code="bad-bundle")
        if not all(isinstance(x, str) for x in sensors):
            raise FormatError("a leg's sensors are named by strings", code="bad-bundle")
        out.append((holder, start, end, sensors))
    return out


def _claimed_notes(claim: dict[str, Any]) -> list[Reason]:
    notes = claim.get("notes")
    if not isinstance(notes, list):
        raise FormatError("the claimed verdict has no notes list", code="bad-bundle")
    out = []
    for n in notes:
        if not isinstance(n, dict) or not all(
            isinstance(n.get(k), str) for k in ("code", "status", "message")
        ):
            raise FormatError("a note of the claimed verdict is malformed", code="bad-bundle")
        out.append(Reason(n["code"], n["status"], n["message"], n.get("sensor")))
    return out


def check_verdict(
    subject: dict[str, Any], records: Sequence[Reading | Scan | Gap]
) -> LotVerdict | None:
    """Recompute a bundle's claimed cold-chain verdict (``subject.verdict`` under
    ``subject.profile``, proofs.coldchain) from its proven readings and refuse it if it
    does not follow. A ``complete`` claim (the bundle proves every reading it rests on)
    must be reproduced exactly; a partial one (a sample of a large lot) must at least
    agree with every proven reading: one beyond what the profile allows makes it ``fail``.
    Readings are placed by their sensor (``gw/src``) and time in the legs the claim names;
    a proven reading stamped at a leg's holder in its window from a sensor the leg leaves
    out is refused too. Returns the recomputed verdict (None for a partial claim)."""
    claim = subject.get("verdict")
    if claim is None:
        return None
    if not isinstance(claim, dict):
        raise VerificationError(
            "the bundle's verdict is from an older anchor (a bare status); this verifier"
            " recomputes verdicts from coldtrail-coldchain rules only",
            code="verdict-legacy",
        )
    try:
        profile = Profile.from_dict(subject.get("profile"))
    except FormatError as e:
        raise FormatError(f"the bundle's profile: {e.message}", code="bad-bundle") from e
    named = claim.get("profile")
    if not isinstance(named, dict) or named.get("digest") != profile.digest():
        raise VerificationError(
            "the verdict names another profile than the one the bundle carries",
            code="verdict-mismatch",
        )
    if claim.get("rules") != RULES_VERSION:
        raise VerificationError(
            f"the verdict was made under rules {claim.get('rules')!r:.40}; this verifier knows"
            f" {RULES_VERSION}",
            code="verdict-rules-unknown",
        )
    legs = _claimed_legs(claim)
    notes = _claimed_notes(claim)
    readings: list[dict[str, list[tuple[int, float]]]] = [{} for _ in legs]
    for r in records:
        if not isinstance(r, Reading) or r.q != CHECKED_QUANTITY:
            continue
        value = celsius(r.val, r.unit)
        if value is None:
            continue
        sid = sensor_id(r.gw, r.src)
        for i, (holder, start, end, sensors) in enumerate(legs):
            if not start <= r.t < end:
                continue
            if sid in sensors:
                readings[i].setdefault(sid, []).append((r.t, value))
            elif r.asset == holder:
                raise VerificationError(
                    f"a proven reading of {sid} at {holder} is left out of the verdict",
                    code="verdict-mismatch",
                )
    if claim.get("complete") is not True:
        _check_partial(claim, profile, readings, notes)
        return None
    try:
        mine = lot_verdict(
            [Leg(h, a, b, rd) for (h, a, b, _), rd in zip(legs, readings, strict=True)],
            profile,
            [n for n in notes if n.code not in ("custody-gap", "no-custody")],
        )
    except FormatError as e:
        raise VerificationError(
            f"the verdict cannot be recomputed: {e.message}", code="verdict-mismatch"
        ) from e
    expected = mine.to_dict()
    got = {k: v for k, v in claim.items() if k not in ("complete", "readings")}
    if expected != got:
        raise VerificationError(
            f"the claimed verdict does not follow from the proven readings: recomputed"
            f" {mine.status}, claimed {claim.get('status')!r:.20}"
            + _first_difference(expected, got),
            code="verdict-mismatch",
        )
    return mine


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """Where two JSON values first differ, for the refusal's sentence."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f" (first difference at {path or 'the top'}: {a!r:.60} vs {b!r:.60})"


def _check_partial(
    claim: dict[str, Any],
    profile: Profile,
    readings: Sequence[dict[str, list[tuple[int, float]]]],
    notes: Sequence[Reason],
) -> None:
    """What a sample can settle: a proven reading beyond what the profile allows means
    ``fail``; a note is never worse than indeterminate, and an indeterminate one
    keeps the verdict from passing."""
    status = claim.get("status")
    if status not in ("pass", "fail", "indeterminate"):
        raise FormatError("the claimed verdict's status is malformed", code="bad-bundle")
    if any(n.status == "fail" for n in notes):
        raise VerificationError("a note of the verdict is 'fail'", code="bad-bundle")
    low = profile.allowed_low_c if profile.allowed_low_c is not None else profile.low_c
    high = profile.allowed_high_c if profile.allowed_high_c is not None else profile.high_c
    beyond = any(
        (low is not None and v < low) or (high is not None and v > high)
        for leg in readings
        for series in leg.values()
        for _, v in series
    )
    if beyond and status != "fail":
        raise VerificationError(
            f"a proven reading is beyond what the profile allows, yet the verdict is {status}",
            code="verdict-mismatch",
        )
    if status == "pass" and any(n.status != "pass" for n in notes):
        raise VerificationError(
            "a verdict with an indeterminate note cannot pass", code="verdict-mismatch"
        )


def _check_attestation(
    bundle: dict[str, Any],
    subject: dict[str, Any],
    records: Sequence[Reading | Scan | Gap],
    log_verifiers: Sequence[NoteVerifier],
) -> str | None:
    """Claims beyond GS1 keys (range, verdict) are the anchor's: they must carry its
    signature. Returns the attestation format that verified, or None if there is none."""
    attestation = bundle.get("attestation")
    if attestation is None:
        if set(subject) - set(_SUBJECT_AIS):
            raise VerificationError(
                "the subject's claims are not attested by the log key", code="unattested-subject"
            )
        if "attestation_format" in bundle:
            raise FormatError("'attestation_format' without an attestation", code="bad-bundle")
        return None
    if not isinstance(attestation, str):
        raise FormatError("'attestation' is a base64 signature", code="bad-bundle")
    try:
        sig = base64.b64decode(attestation, validate=True)
    except (ValueError, binascii.Error) as e:
        raise FormatError("'attestation' is not base64", code="bad-bundle") from e
    message = _attested_bytes(bundle, records)
    for v in log_verifiers:
        try:
            v.public_key.verify(sig, message)
            return str(bundle.get("attestation_format", ATTESTATION_V1))
        except VerificationError:
            continue
    raise VerificationError("the attestation is not signed by the log key", code="bad-attestation")


def effective_policy(
    trusted_log_vkeys: Sequence[str] = (),
    trusted_cosigner_vkeys: Sequence[str] = (),
    quorum: int | None = None,
    policy: Policy | None = None,
) -> Policy | None:
    """The verifier's own policy from its pins, or None when nothing is pinned.

    Pinned cosigners without a quorum need one of them (never the bundle's own
    ``quorum``, which an attacker writes); a quorum of 0 with pinned cosigners is
    refused rather than read as "no cosignature needed".
    """
    if policy is not None:
        if trusted_cosigner_vkeys or quorum is not None:
            raise FormatError(
                "a policy already names the cosigners and the quorum; do not add --cosigner "
                "or --quorum",
                code="conflicting-pins",
            )
        if trusted_log_vkeys:
            extra = tuple(NoteVerifier.from_vkey(v) for v in trusted_log_vkeys)
            policy = Policy(
                (*policy.logs, *(v for v in extra if v not in policy.logs)),
                policy.witnesses,
                policy.groups,
                policy.quorum,
                policy.log_urls,
            )
        if not policy.logs:
            raise FormatError(
                "the policy names no log; add a log line or --log-key", code="policy-no-log"
            )
        return policy
    if not trusted_cosigner_vkeys:
        # Only the log is pinned (or nothing is): the bundle's quorum is then checked as
        # the bundle's own claim, never as the verifier's policy.
        return Policy.pinned(trusted_log_vkeys, (), 0) if trusted_log_vkeys else None
    need = 1 if quorum is None else quorum
    if not 1 <= need <= len(trusted_cosigner_vkeys):
        raise FormatError(
            f"with {len(trusted_cosigner_vkeys)} pinned cosigner(s) the quorum is between 1 and "
            f"{len(trusted_cosigner_vkeys)}, not {need}; to accept no cosignatures, pin none",
            code="bad-quorum",
        )
    return Policy.pinned(trusted_log_vkeys, trusted_cosigner_vkeys, need)


def _check_unique(seen: set[Any], key: Any, message: str, code: str) -> None:
    # Repeating a batch or record would inflate the counts a reader trusts.
    if key in seen:
        raise VerificationError(message, code=code)
    seen.add(key)


def verify_bundle(
    bundle: Any,
    *,
    trusted_log_vkeys: Sequence[str] = (),
    trusted_cosigner_vkeys: Sequence[str] = (),
    quorum: int | None = None,
    policy: Policy | None = None,
    require_attestation: bool = False,
) -> BundleReport:
    """Verify a parsed bundle offline. Raises FormatError or VerificationError.

    Without any pin (log key, cosigners or ``policy``) the keys written in the bundle
    are used and the report says the result is *unpinned*: valid as a whole, but only
    as trustworthy as wherever the bundle came from. With pins, the pinned policy
    decides and the bundle can only make it stricter: its own ``quorum`` must hold
    too, but never replaces the pinned one. ``require_attestation`` refuses a bundle
    without the log key's attestation (``no-attestation``).
    """
    if not isinstance(bundle, dict):
        raise FormatError("a bundle is a JSON object", code="bad-bundle")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise FormatError(f"not a {BUNDLE_FORMAT} bundle", code="bad-bundle-format")
    pins = effective_policy(trusted_log_vkeys, trusted_cosigner_vkeys, quorum, policy)
    changes = bundle.get("policy_changes", [])
    if not isinstance(changes, list):
        raise FormatError("'policy_changes' is a list", code="bad-bundle")
    followed: list[str] = []
    if pins is not None and changes and pins.logs:
        # The pinned (genesis) policy, carried forward by changes its quorum signed.
        parsed = [PolicyChange.from_dict(c) for c in changes]
        pins, version = follow(pins, parsed, pins.logs[0].name)
        followed.append(
            f"followed {len(parsed)} signed change(s) to the policy in force (version {version})"
        )
    log = _need(bundle, "log", dict, "bundle")
    bundle_vkey = _need(log, "vkey", str, "log")
    bundle_log = NoteVerifier.from_vkey(bundle_vkey)
    pinned = pins is not None
    if pins is not None and not pins.logs:
        raise FormatError("pinned cosigners need a pinned log key too", code="policy-no-log")
    log_verifiers = list(pins.logs) if pins is not None else [bundle_log]
    if pinned and bundle_log not in log_verifiers:
        # The pin decides, but a bundle that names another log is not about this one.
        raise VerificationError(
            "the bundle names a log key that is not the pinned one", code="log-key-mismatch"
        )
    if any(v.alg != ALG_ED25519 for v in log_verifiers):
        raise FormatError("the log key must be an Ed25519 (0x01) verifier key", code="bad-vkey")
    bundle_cosigners = [NoteVerifier.from_vkey(v) for v in _need(log, "cosigners", list, "log")]
    if any(c.alg != ALG_COSIGNATURE_V1 for c in bundle_cosigners):
        raise FormatError("cosigner keys must be type 0x04 verifier keys", code="bad-vkey")
    pinned_witnesses = [w.verifier for w in pins.witnesses] if pins is not None else []
    if pinned_witnesses and any(c not in pinned_witnesses for c in bundle_cosigners):
        raise VerificationError(
            "the bundle names a cosigner that is not pinned", code="cosigner-mismatch"
        )
    bundle_quorum = _need(log, "quorum", int, "log")
    # Unpinned, an explicit quorum replaces the bundle's. Pinned, the bundle's claimed
    # quorum is still checked as a claim: it can raise the bar, never lower it.
    if quorum is not None and pins is None:
        claimed_quorum = quorum
    elif quorum is not None and not pinned_witnesses:  # log pinned, cosigners not
        claimed_quorum = max(quorum, bundle_quorum)
    else:
        claimed_quorum = bundle_quorum

    note = SignedNote.parse(_need(bundle, "checkpoint", str, "bundle"))
    checkpoint = Checkpoint.from_text(note.text)
    known = list(dict.fromkeys([*log_verifiers, *pinned_witnesses, *bundle_cosigners]))
    signed_by = note.verified_by(known)
    log_signer = next((v.name for v in signed_by if v in log_verifiers), None)
    if log_signer is None:
        raise VerificationError(
            "the checkpoint is not signed by the log key", code="no-log-signature"
        )
    if checkpoint.origin != log_signer:
        raise VerificationError(
            f"checkpoint origin {checkpoint.origin!r} is not the log's name {log_signer!r}",
            code="origin-mismatch",
        )
    cosigned_keys = [v for v in dict.fromkeys(signed_by) if v.alg == ALG_COSIGNATURE_V1]
    by_bundle = [v for v in cosigned_keys if v in bundle_cosigners]
    if len(by_bundle) < claimed_quorum:
        raise VerificationError(
            f"checkpoint has {len(by_bundle)} of the {claimed_quorum} cosignatures its policy "
            "needs",
            code="no-quorum",
        )
    policy_lines: list[str] = list(followed)
    if pins is not None:
        witnessed = pins.witnessed(cosigned_keys)
        policy_lines += pins.explain(witnessed)
        if not pins.satisfied(witnessed):
            raise VerificationError(
                f"the checkpoint's cosignatures do not meet the pinned policy: "
                f"{'; '.join(policy_lines)}",
                code="no-quorum",
            )
    cosigned = sorted({v.name for v in cosigned_keys})
    cosigned_at = [
        s.timestamp for s in note.signatures if s.name in cosigned and s.timestamp is not None
    ]

    gateways = _need(bundle, "gateways", dict, "bundle")
    batches = _need(bundle, "batches", list, "bundle")
    if not batches:
        raise FormatError("a bundle proves at least one batch", code="bad-bundle")
    all_records: list[Reading | Scan | Gap] = []
    seen_batches: set[Any] = set()
    seen_records: set[Any] = set()
    for bi, b in enumerate(batches):
        where = f"batch {bi}"
        manifest = manifest_from_dict(_need(b, "manifest", dict, where))
        _check_unique(
            seen_batches,
            (manifest.gw, manifest.batch_seq),
            f"{where}: batch {manifest.batch_seq} of {manifest.gw} appears twice",
            "duplicate-batch",
        )
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
        _check_unique(
            seen_batches,
            leaf_index,
            f"{where}: log leaf {leaf_index} is proven twice",
            "duplicate-batch",
        )
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
            for key in ((record.gw, record.seq), record.leaf_hash()):
                _check_unique(
                    seen_records,
                    key,
                    f"{rwhere}: record {record.gw} #{record.seq} appears twice",
                    "duplicate-record",
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
    verdict = check_verdict(subject, all_records)
    summary = summarize(all_records)
    if "summary" in bundle and not _same_summary(bundle["summary"], summary):
        raise VerificationError(
            "the bundle's summary does not match its records", code="summary-mismatch"
        )
    signers = [v for v in log_verifiers if v.name == log_signer]
    attested = _check_attestation(bundle, subject, all_records, signers)
    documents = _check_documents(subject, signers)
    warnings: list[str] = []
    if isinstance(subject.get("verdict"), dict) and verdict is None:
        warnings.append(
            "the bundle proves a sample of the readings, not all: the verdict was checked"
            " against the proven ones, not recomputed (fetch the lot's full bundle to)"
        )
    if attested is None:
        if require_attestation:
            raise VerificationError(
                f"{not_attested_sentence(len(all_records))}; pass --no-require-attestation "
                "to accept that",
                code="no-attestation",
            )
    elif attested == ATTESTATION_V1:
        warnings.append(
            "the attestation is coldtrail-attestation/v1: it signs the subject, verdict and "
            "summary but not which records are proven, so records with the same summary "
            "could have been swapped"
        )
    if pins is not None and not pins.requires_cosignatures:
        warnings.append(
            "no cosigner is pinned: the checkpoint's cosignatures were not held to a policy "
            "of yours (pin --cosigner or --policy)"
        )
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
        root_hex=checkpoint.root.hex(),
        subject=dict(subject),
        readings=sum(isinstance(r, Reading) for r in all_records),
        scans=sum(isinstance(r, Scan) for r in all_records),
        gaps=sum(isinstance(r, Gap) for r in all_records),
        gateways=sorted({r.gw for r in all_records}),
        attested=attested is not None,
        attestation_format=attested,
        policy=policy_lines,
        warnings=warnings,
        verdict=verdict,
        documents=documents,
    )


def not_attested_sentence(records: int) -> str:
    """The plain warning for a bundle without the log key's attestation."""
    return (
        f"NOT ATTESTED: this bundle proves only that these {records} records were logged; "
        "it does not prove they are all the records for this subject"
    )
