"""Changes to a consortium's tlog-policy, signed by the quorum of the policy they replace.

The consortium starts from a genesis policy (version 0) that every member installs and
auditors pin. A change replaces the policy in force with a new one; it is valid only if
it names the next version and the hash of the policy it replaces, and carries signatures
by the replaced policy's witnesses (their cosigning keys) that meet the replaced policy's
quorum. So no member alone, and no set of members short of the quorum in force, can add
or remove a member or lower the quorum; and anyone holding the genesis policy can follow
the chain of changes to the policy in force today (:func:`follow`), offline.

A signature is Ed25519 over::

    coldtrail-policy-change/v1
    <origin of the log>
    <version>
    <hex SHA-256 of the replaced policy's canonical text>
    <hex SHA-256 of the new policy's canonical text>

made with the witness's tlog-cosignature key (the domain line keeps it apart from any
cosignature). The change travels as JSON (:meth:`PolicyChange.to_dict`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import FormatError, ProofsError, VerificationError
from .keys import SigningKey
from .policy import MAX_POLICY_BYTES, Policy, parse_policy

__all__ = [
    "MAX_CHANGES",
    "PolicyChange",
    "follow",
    "policy_hash",
    "sign_change",
    "verify_change",
]

DOMAIN = "coldtrail-policy-change/v1"
MAX_CHANGES = 1000  # a chain longer than this in one bundle is refused, not walked
_MAX_SIGNATURES = 64


def policy_hash(policy: Policy) -> str:
    """Hex SHA-256 of the policy's canonical text (comments and spacing do not count)."""
    return hashlib.sha256(policy.to_text().encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyChange:
    origin: str
    version: int  # the new policy's version: the replaced one's plus one
    previous: str  # policy_hash of the replaced policy
    policy: str  # the new policy's text (tlog-policy)
    signatures: tuple[tuple[str, str], ...] = ()  # (witness name in the replaced policy, b64)

    def statement(self) -> bytes:
        """What the signatures sign (the new policy must parse: FormatError otherwise)."""
        return (
            f"{DOMAIN}\n{self.origin}\n{self.version}\n{self.previous}\n"
            f"{policy_hash(parse_policy(self.policy))}\n"
        ).encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "version": self.version,
            "previous": self.previous,
            "policy": self.policy,
            "signatures": [{"witness": n, "sig": s} for n, s in self.signatures],
        }

    @classmethod
    def from_dict(cls, d: Any) -> PolicyChange:
        if not isinstance(d, dict):
            raise FormatError("a policy change is a JSON object", code="bad-policy-change")
        origin, version, previous, policy = (
            d.get("origin"), d.get("version"), d.get("previous"), d.get("policy"),
        )  # fmt: skip
        if not isinstance(origin, str) or not isinstance(policy, str):
            raise FormatError(
                "a policy change names its origin and policy", code="bad-policy-change"
            )
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise FormatError(
                "a policy change's version is an integer >= 1", code="bad-policy-change"
            )
        if not isinstance(previous, str) or len(previous) != 64:
            raise FormatError("previous is a hex SHA-256", code="bad-policy-change")
        if len(policy.encode()) > MAX_POLICY_BYTES:
            raise FormatError("the policy is too large", code="bad-policy-change")
        sigs = d.get("signatures")
        if not isinstance(sigs, list) or len(sigs) > _MAX_SIGNATURES:
            raise FormatError("signatures is a list", code="bad-policy-change")
        out: list[tuple[str, str]] = []
        for s in sigs:
            if (
                not isinstance(s, dict)
                or not isinstance(s.get("witness"), str)
                or not isinstance(s.get("sig"), str)
            ):
                raise FormatError("a signature names its witness", code="bad-policy-change")
            out.append((s["witness"], s["sig"]))
        return cls(origin, version, previous, policy, tuple(out))


def sign_change(change: PolicyChange, witness: str, key: SigningKey) -> PolicyChange:
    """``change`` with ``witness``'s signature added (replacing an earlier one by it)."""
    sig = base64.b64encode(key.sign(change.statement())).decode()
    kept = tuple((n, s) for n, s in change.signatures if n != witness)
    return replace(change, signatures=(*kept, (witness, sig)))


def verify_change(
    current: Policy, current_version: int, change: PolicyChange, origin: str
) -> Policy:
    """The new policy, if ``change`` validly replaces ``current``; raise otherwise."""
    if change.origin != origin:
        raise VerificationError(f"the change is for log {change.origin}, not {origin}",
                                code="policy-change-origin")  # fmt: skip
    if change.version != current_version + 1:
        raise VerificationError(
            f"the change makes version {change.version}; the policy in force is version"
            f" {current_version}", code="policy-change-version",
        )  # fmt: skip
    if change.previous != policy_hash(current):
        raise VerificationError("the change replaces another policy than the one in force",
                                code="policy-change-previous")  # fmt: skip
    new = parse_policy(change.policy)
    if any(v.name != origin for v in new.logs) or not new.logs:
        raise VerificationError(f"the new policy's logs are not all {origin}",
                                code="policy-change-origin")  # fmt: skip
    if not new.requires_cosignatures:
        raise VerificationError("the new policy requires no cosignature", code="policy-change-none")
    statement = change.statement()
    by_name = {w.name: w for w in current.witnesses}
    signed: set[str] = set()
    for name, sig in change.signatures:
        w = by_name.get(name)
        if w is None:
            continue
        try:
            w.verifier.public_key.verify(base64.b64decode(sig, validate=True), statement)
        except (ProofsError, binascii.Error, ValueError):
            continue
        signed.add(name)
    if not current.satisfied(signed):
        raise VerificationError(
            "the change is not signed by the quorum of the policy in force: "
            + "; ".join(current.explain(signed)),
            code="policy-change-quorum",
        )
    return new


def follow(genesis: Policy, changes: Sequence[PolicyChange], origin: str) -> tuple[Policy, int]:
    """From the genesis policy through ``changes`` in order: ``(policy in force, version)``."""
    if len(changes) > MAX_CHANGES:
        raise FormatError(f"more than {MAX_CHANGES} policy changes", code="bad-policy-change")
    policy, version = genesis, 0
    for change in changes:
        policy = verify_change(policy, version, change, origin)
        version = change.version
    return policy, version
