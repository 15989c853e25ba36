"""Consortium pieces with pure logic, on the in-memory SQLite twin: registry changes on
the stream (signed by a member's log key, applied alike by every member, only by the
organisation's own member, idempotent) and the cache of records verified at ingest."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from anchor.auth import authenticate, new_gateway, new_organisation, new_place, new_token
from anchor.consortium.registry_entries import RegistryEntry, apply_entry, decode_entry, sign_entry
from anchor.errors import AnchorError
from anchor.ledger.audit import _verify_registry
from anchor.ledger.registry import Revocation
from anchor.storage.sqlite.store import SqliteLedger
from proofs.keys import SigningKey
from proofs.note import NoteSigner

ORIGIN = "example.org/log"
A_KEY, B_KEY, OUTSIDER = (SigningKey.generate() for _ in range(3))
A = NoteSigner(ORIGIN, A_KEY).verifier
B = NoteSigner(ORIGIN, B_KEY).verifier
MEMBERS = [A, B]
T = 1_700_000_000_000


@pytest.fixture
def store() -> SqliteLedger:
    return SqliteLedger.in_memory(uuid.uuid4().hex)


def _by(key: SigningKey, op: str, model: object) -> RegistryEntry:
    return sign_entry(op, model, key, NoteSigner(ORIGIN, key).verifier.to_vkey())


def _setup_a(store: SqliteLedger) -> str:
    gw_key = SigningKey.generate().public_key.to_base64()
    for op, model in (
        ("organisation", new_organisation("plant", "The Plant", T)),
        ("place", new_place("line-4", "plant", "asset", T)),
        ("enrolment", new_gateway("gw-1", "plant", gw_key, "line-4", T)),
    ):
        entry = decode_entry(_by(A_KEY, op, model).to_bytes())  # as it travels
        apply_entry(store, entry, MEMBERS)
    return gw_key


def test_a_member_registers_its_organisation_and_every_row_verifies(store) -> None:
    _setup_a(store)
    token, row = new_token("plant", "gateway", T)
    apply_entry(store, _by(A_KEY, "token", row), MEMBERS)
    gw = store.gateway("gw-1")
    assert gw is not None and gw.org_id == "plant" and gw.places == frozenset({"line-4"})
    t = store.token(row.id)
    assert t is not None and t.token_hash == row.token_hash
    # The token issued at the plant's member works at any member that applied it.
    principal = authenticate(store, f"Bearer {token}", T + 1)
    assert (principal.org_id, principal.role) == ("plant", "gateway")
    with store.transaction() as tx:
        assert tx.org_member("plant") == A.to_vkey()
    # verify-ledger checks each row against the consortium's log keys.
    _verify_registry(store, [A.public_key, B.public_key])
    with pytest.raises(Exception, match="not the row"):
        _verify_registry(store, [B.public_key])


def test_applying_an_entry_twice_is_a_no_op(store) -> None:
    _setup_a(store)
    gw = store.gateway("gw-1")
    assert gw is not None
    again = _by(A_KEY, "enrolment", replace(gw, attestation=""))
    apply_entry(store, again, MEMBERS)
    apply_entry(store, _by(A_KEY, "organisation", new_organisation("plant", "The Plant", T)),
                MEMBERS)  # fmt: skip
    revocation = Revocation("gw-1", T + 5, T + 9, "stolen")
    for _ in range(2):
        apply_entry(store, _by(A_KEY, "revocation", revocation), MEMBERS)
    assert len(store.revocations()) == 1
    assert store.gateway("gw-1").revoked_at == T + 5  # type: ignore[union-attr]


def test_only_the_organisations_own_member_may_speak_for_it(store) -> None:
    _setup_a(store)
    gw_key = SigningKey.generate().public_key.to_base64()
    for op, model in (
        ("place", new_place("truck-9", "plant", "asset", T)),
        ("enrolment", new_gateway("gw-evil", "plant", gw_key, "line-4", T)),
        ("revocation", Revocation("gw-1", T, T, "B says so")),
        ("token", new_token("plant", "operator", T)[1]),
        ("organisation", new_organisation("plant", "Hijacked", T)),
    ):
        with pytest.raises(AnchorError) as e:
            apply_entry(store, _by(B_KEY, op, model), MEMBERS)
        assert e.value.code == "forbidden", (op, e.value)
    assert store.gateway("gw-evil") is None and store.place("truck-9") is None
    assert store.gateway("gw-1").revoked_at is None  # type: ignore[union-attr]


def test_entries_by_outsiders_or_with_bad_signatures_are_refused(store) -> None:
    outsider = _by(OUTSIDER, "organisation", new_organisation("shadow", None, T))
    with pytest.raises(AnchorError) as e:
        apply_entry(store, outsider, MEMBERS)
    assert e.value.code == "forbidden"
    forged = replace(outsider, by=A.to_vkey())  # claims A, signed by the outsider
    with pytest.raises(AnchorError) as e:
        apply_entry(store, forged, MEMBERS)
    assert e.value.code == "bad-signature"
    edited = _by(A_KEY, "organisation", new_organisation("shadow", None, T))
    edited = replace(edited, row={**edited.row, "name": "Other"})
    with pytest.raises(AnchorError) as e:
        apply_entry(store, edited, MEMBERS)
    assert e.value.code == "bad-signature"
    assert store.organisation("shadow") is None


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b'{"op": "x", "row": {}, "by": "", "sig": ""}',
     b'{"op": "organisation", "row": [], "by": "", "sig": ""}', b"\xff\xfe"],
)  # fmt: skip
def test_garbage_entries_are_refused_with_a_code(data: bytes) -> None:
    with pytest.raises(AnchorError) as e:
        decode_entry(data)
    assert e.value.code == "malformed"


def test_a_row_of_the_wrong_shape_is_malformed(store) -> None:
    entry = _by(A_KEY, "organisation", new_organisation("plant", "The Plant", T))
    bad = RegistryEntry("organisation", {**entry.row, "at": "yesterday"}, entry.by, entry.sig)
    with pytest.raises(AnchorError) as e:
        apply_entry(store, decode_entry(bad.to_bytes()), MEMBERS)
    assert e.value.code == "malformed"
    assert json.loads(entry.to_bytes())["op"] == "organisation"


def test_the_verified_cache_is_bounded_and_keyed_by_the_gateway_key() -> None:
    from anchor.ingest.pipeline import VerifiedCache
    from anchor.ingest.verify import VerifiedRecords

    def records(n: int) -> VerifiedRecords:
        return VerifiedRecords(records=[object()] * n)  # type: ignore[list-item]

    cache = VerifiedCache(max_records=10)
    cache.put("m1", b"k1", records(4))
    cache.put("m2", b"k1", records(4))
    assert cache.take("m1", b"other key") is None  # a different key never gets it
    assert cache.take("m1", b"k1") is None  # and the entry is gone
    cache.put("m3", b"k1", records(4))
    cache.put("m4", b"k1", records(4))  # 12 > 10: the oldest (m2) goes
    assert cache.take("m2", b"k1") is None
    assert cache.take("m3", b"k1") is not None and cache.take("m4", b"k1") is not None
    cache.put("huge", b"k1", records(11))
    assert cache.take("huge", b"k1") is None
