"""Product master data and the cold-chain profiles that judge each product's lots.

A profile (:class:`proofs.coldchain.Profile`) is registered once under its digest and
never changed: a verdict names the digest, so it can be re-derived years later under
the rules it was made with, whatever the product's row says by then. A product row
(one per GTIN, owned by the brand owner's organisation) names its profile's digest;
a product without one, or a GTIN without a row, is judged by the anchor's default
profile. Every row carries the log key's attestation (anchor.ledger.registry), which
``verify-ledger`` checks.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from anchor.ledger.model import Product, StoredProfile
from anchor.ledger.ports import LedgerStore
from anchor.ledger.registry import Attest, product_statement, profile_statement
from proofs.canonical import canonical_json
from proofs.coldchain import STANDARD_PROFILES, Profile
from proofs.errors import FormatError
from proofs.identifiers import check_name

__all__ = [
    "UNIT_RE",
    "load_profile",
    "new_product",
    "profile_of",
    "register_profile",
    "resolve_profile",
    "set_product",
    "stored_profile",
]

# A UN/ECE Recommendation 20 unit code: 2-3 upper-case letters or digits (C62, KGM, CS).
UNIT_RE = re.compile(r"[A-Z0-9]{2,3}", re.ASCII)
_DIGEST_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
_TEXT_MAX = 500


def stored_profile(profile: Profile, now: int, attest: Attest | None = None) -> StoredProfile:
    row = StoredProfile(profile.digest(), canonical_json(profile.to_dict()).decode(), now)
    if attest is not None:
        row = dataclasses.replace(row, attestation=attest(profile_statement(row)))
    return row


def register_profile(
    store: LedgerStore, profile: Profile, now: int, attest: Attest | None = None
) -> StoredProfile:
    """Register ``profile`` (a no-op returning the first registration if it exists)."""
    existing = store.profile(profile.digest())
    if existing is not None:
        return existing
    row = stored_profile(profile, now, attest)
    with store.transaction() as tx:
        tx.add_profile(row)
    return row


def profile_of(row: StoredProfile) -> Profile:
    """The profile a stored row holds, checked against its digest."""
    profile = Profile.from_dict(json.loads(row.body))
    if profile.digest() != row.digest:
        raise FormatError(
            f"profile {row.digest[:12]}: its body does not hash to its digest",
            code="profile-digest-mismatch",
        )
    return profile


def load_profile(text: str, store: LedgerStore | None = None) -> Profile:
    """A profile named by a standard name (controlled-cold, controlled-room, frozen), a
    registered digest, or a JSON file's path; a clear ``ValueError`` otherwise."""
    if text in STANDARD_PROFILES:
        return STANDARD_PROFILES[text]
    if _DIGEST_RE.fullmatch(text):
        row = store.profile(text) if store is not None else None
        if row is None:
            raise ValueError(f"no profile with digest {text} is registered")
        return profile_of(row)
    path = Path(text)
    if not path.is_file():
        names = ", ".join(STANDARD_PROFILES)
        raise ValueError(f"a profile is one of {names}, a registered digest or a JSON file")
    try:
        return Profile.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from e
    except FormatError as e:
        raise ValueError(f"{path}: {e.message} [{e.code}]") from e


def _text(value: str, what: str) -> str:
    if len(value) > _TEXT_MAX or any(ord(c) < 0x20 for c in value):
        raise ValueError(f"{what} is at most {_TEXT_MAX} characters without control characters")
    return value


def new_product(
    gtin: str,
    org_id: str,
    name: str,
    now: int,
    *,
    description: str = "",
    pack: str = "",
    unit: str = "C62",
    profile: str = "",
) -> Product:
    """A product row, checked (``gtin`` must already be a GTIN-14 with its check digit)."""
    check_name(name, "a product name")
    if not UNIT_RE.fullmatch(unit):
        raise ValueError(f"a unit is a UN/ECE Recommendation 20 code such as C62 or KGM: {unit!r}")
    if profile and not _DIGEST_RE.fullmatch(profile):
        raise ValueError("a product's profile is named by its digest (64 hex digits)")
    return Product(
        gtin,
        org_id,
        name,
        _text(description, "a description"),
        _text(pack, "a pack"),
        unit,
        profile,
        now,
    )


def set_product(
    store: LedgerStore,
    product: Product,
    attest: Attest | None = None,
    profile: Profile | None = None,
) -> Product:
    """Add or replace a product's master data; registers ``profile`` (whose digest the
    product names) in the same transaction. Only the owning organisation may replace it:
    a row owned by another organisation is refused."""
    if store.organisation(product.org_id) is None:
        raise ValueError(f"no organisation {product.org_id!r}")
    existing = store.product(product.gtin)
    if existing is not None and existing.org_id != product.org_id:
        raise ValueError(f"GTIN {product.gtin} belongs to {existing.org_id}")
    profile_row = None
    if profile is not None:
        product = dataclasses.replace(product, profile=profile.digest())
        if store.profile(product.profile) is None:
            profile_row = stored_profile(profile, product.updated_at, attest)
    elif product.profile and store.profile(product.profile) is None:
        raise ValueError(f"no profile with digest {product.profile} is registered")
    if attest is not None:
        product = dataclasses.replace(product, attestation=attest(product_statement(product)))
    with store.transaction() as tx:
        if profile_row is not None:
            tx.add_profile(profile_row)
        tx.put_product(product)
    return product


def resolve_profile(store: LedgerStore, gtin: str | None, default: Profile) -> Profile:
    """The profile that judges ``gtin``'s lots now: its product's, else ``default``."""
    product = store.product(gtin) if gtin else None
    if product is None or not product.profile:
        return default
    row = store.profile(product.profile)
    return default if row is None else profile_of(row)
