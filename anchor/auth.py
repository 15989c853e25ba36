"""Organisations, gateways and per-organisation API tokens.

A token is ``ct_<id>_<secret>``: ``id`` is 8 random bytes in hex, public and
safe to log; ``secret`` is 32 random bytes (256 bits) in base64url. Only
SHA-256(secret) is stored. A salted slow hash (argon2, scrypt) buys nothing
for 256-bit random secrets, which cannot be guessed offline, and it would
cost every request milliseconds (docs/adr/0304). The stored hash is compared
in constant time.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from anchor.errors import AnchorError
from anchor.ledger.model import PLACE_KINDS, ROLES, ApiToken, Gateway, Organisation, Place
from anchor.ledger.ports import LedgerStore
from anchor.ledger.registry import (
    Attest,
    Revocation,
    enrolment_statement,
    place_statement,
    revocation_statement,
)
from proofs.errors import KeyError_
from proofs.identifiers import check_identifier, check_name
from proofs.keys import PublicKey

__all__ = [
    "Principal",
    "add_organisation",
    "authenticate",
    "enroll_gateway",
    "issue_token",
    "parse_token",
    "register_place",
    "require_role",
    "revoke_gateway",
]

_TOKEN = re.compile(r"ct_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", re.ASCII)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: an organisation acting in one role."""

    org_id: str
    role: str
    token_id: str


def _hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def new_token(org_id: str, role: str, now: int, label: str = "") -> tuple[str, ApiToken]:
    """A new token: its full text (shown once) and the row to store (the secret's hash)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(sorted(ROLES))}")
    token_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    row = ApiToken(token_id, org_id, role, _hash_secret(secret), now, None, label)
    return f"ct_{token_id}_{secret}", row


def issue_token(
    store: LedgerStore, org_id: str, role: str, now: int, label: str = ""
) -> tuple[str, ApiToken]:
    """Create a token; returns the full token text (shown once) and its stored row."""
    token, row = new_token(org_id, role, now, label)
    store.add_token(row)
    return token, row


def parse_token(text: str) -> tuple[str, str]:
    match = _TOKEN.fullmatch(text)
    if match is None:
        raise AnchorError("unauthenticated", "the bearer token is not a coldtrail token")
    return match.group(1), match.group(2)


def authenticate(store: LedgerStore, authorization: str | None, now: int) -> Principal:
    """Check an ``Authorization: Bearer`` header; raise ``unauthenticated`` otherwise."""
    if not authorization:
        raise AnchorError("unauthenticated", "an Authorization: Bearer token is required")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AnchorError("unauthenticated", "use Authorization: Bearer <token>")
    token_id, secret = parse_token(value.strip())
    row = store.token(token_id)
    # Hash and compare even for unknown ids so timing does not tell ids apart.
    expected = row.token_hash if row is not None else b"\0" * 32
    matches = hmac.compare_digest(expected, _hash_secret(secret))
    if row is None or not matches:
        raise AnchorError("unauthenticated", "the token is not valid")
    if row.revoked_at is not None and row.revoked_at <= now:
        raise AnchorError("unauthenticated", "the token has been revoked")
    return Principal(row.org_id, row.role, row.id)


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise AnchorError(
            "forbidden",
            f"a token with role {' or '.join(roles)} is required (this one is {principal.role})",
        )


def new_organisation(org_id: str, name: str | None, now: int) -> Organisation:
    """An organisation row: its id follows the identifier rule, its name is a clean name."""
    check_identifier(org_id, "an organisation id")
    return Organisation(org_id, check_name(name or org_id, "an organisation name"), now)


def add_organisation(store: LedgerStore, org_id: str, name: str | None, now: int) -> Organisation:
    """Add an organisation; its id follows the identifier rule, its name is a clean name."""
    org = new_organisation(org_id, name, now)
    return store.add_organisation(org.id, org.name, org.created_at)


def new_place(place_id: str, org_id: str, kind: str, now: int, name: str | None = None) -> Place:
    """An asset or read point row of ``org_id``, checked."""
    check_identifier(place_id, f"an {kind} id" if kind == "asset" else f"a {kind} id")
    if kind not in PLACE_KINDS:
        raise ValueError(f"a place is one of {', '.join(sorted(PLACE_KINDS))}, not {kind!r}")
    label = check_name(name or place_id, "a place name")
    return Place(place_id, org_id, kind, label, now)


def register_place(
    store: LedgerStore,
    place_id: str,
    org_id: str,
    kind: str,
    now: int,
    name: str | None = None,
    attest: Attest | None = None,
) -> Place:
    """Register an asset or read point as ``org_id``'s (an id is registered once, ever).

    ``attest`` signs the row with the log key so that verify-ledger proves it."""
    place = new_place(place_id, org_id, kind, now, name)
    if attest is not None:
        place = dataclasses.replace(place, attestation=attest(place_statement(place)))
    return store.add_place(place)


def new_gateway(
    gw: str,
    org_id: str,
    public_key_b64: str,
    asset: str | None,
    now: int,
    places: Iterable[str] = (),
) -> Gateway:
    """The enrolment row of a key for ``gw``: its records may name ``asset`` (its home,
    the holder of records that name none) and ``places``, all registered to ``org_id``."""
    check_identifier(gw, "a gateway id")
    scope = set(places)
    if asset is not None:
        check_identifier(asset, "an asset id")
        scope.add(asset)
    for place in scope:
        check_identifier(place, "an asset or read point id")
    try:
        key = PublicKey.from_base64(public_key_b64.strip())
    except (KeyError_, binascii.Error) as e:
        raise ValueError(f"public key: {e}") from e
    return Gateway(gw, org_id, key.to_base64(), key.key_id, asset, now, places=frozenset(scope))


def enroll_gateway(
    store: LedgerStore,
    gw: str,
    org_id: str,
    public_key_b64: str,
    asset: str | None,
    now: int,
    places: Iterable[str] = (),
    attest: Attest | None = None,
) -> Gateway:
    """Enrol a key for ``gw`` (:func:`new_gateway`), signed by ``attest``."""
    gateway = new_gateway(gw, org_id, public_key_b64, asset, now, places)
    if attest is not None:
        gateway = dataclasses.replace(gateway, attestation=attest(enrolment_statement(gateway)))
    return store.enroll_gateway(gateway)


def revoke_gateway(
    store: LedgerStore, gw: str, at: int, reason: str, now: int, attest: Attest | None = None
) -> Gateway:
    """Record that ``gw``'s key is compromised from ``at`` (docs/adr/0309, 0311)."""
    statement = revocation_statement(Revocation(gw, at, now, reason))
    return store.revoke_gateway(gw, at, reason, now, attest(statement) if attest else "")
