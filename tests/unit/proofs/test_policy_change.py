"""Policy changes (proofs.policy_change): valid only with the quorum in force, chained."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest

from proofs.errors import FormatError, ProofsError, VerificationError
from proofs.keys import SigningKey
from proofs.note import ALG_COSIGNATURE_V1, NoteSigner
from proofs.policy import Policy, parse_policy
from proofs.policy_change import PolicyChange, follow, policy_hash, sign_change, verify_change

ORIGIN = "example.org/log"
LOG = NoteSigner(ORIGIN, SigningKey.from_seed(b"L" * 32)).verifier.to_vkey()
KEYS = {n: SigningKey.from_seed(bytes([i + 1]) * 32) for i, n in enumerate("abcd")}


def _vkey(name: str) -> str:
    return NoteSigner(f"{name}.example/w", KEYS[name], ALG_COSIGNATURE_V1).verifier.to_vkey()


def _policy(names: str, k: int) -> str:
    lines = [f"log {LOG}", *(f"witness {n} {_vkey(n)}" for n in names)]
    return "\n".join([*lines, f"group members {k} {' '.join(names)}", "quorum members", ""])


GENESIS = parse_policy(_policy("abc", 2))


def _change(new: str, version: int = 1, current: Policy = GENESIS) -> PolicyChange:
    return PolicyChange(ORIGIN, version, policy_hash(current), new)


def test_the_quorum_in_force_makes_a_change_and_less_does_not() -> None:
    change = _change(_policy("abcd", 3))
    one = sign_change(change, "a", KEYS["a"])
    with pytest.raises(VerificationError) as e:
        verify_change(GENESIS, 0, one, ORIGIN)
    assert e.value.code == "policy-change-quorum" and "1 witnessed" in str(e.value)
    two = sign_change(one, "b", KEYS["b"])
    new = verify_change(GENESIS, 0, two, ORIGIN)
    assert [w.name for w in new.witnesses] == ["a", "b", "c", "d"]
    # Signing twice as the same witness counts once.
    assert sign_change(one, "a", KEYS["a"]).signatures == one.signatures


def test_the_signature_is_ed25519_over_the_documented_statement() -> None:
    new = _policy("ab", 2)
    change = sign_change(_change(new), "c", KEYS["c"])
    expected = (
        f"coldtrail-policy-change/v1\n{ORIGIN}\n1\n"
        f"{hashlib.sha256(GENESIS.to_text().encode()).hexdigest()}\n"
        f"{hashlib.sha256(parse_policy(new).to_text().encode()).hexdigest()}\n"
    ).encode()
    assert change.statement() == expected
    KEYS["c"].public_key.verify(base64.b64decode(change.signatures[0][1]), expected)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda c: replace(c, version=2), "policy-change-version"),
        (lambda c: replace(c, previous="0" * 64), "policy-change-previous"),
        (lambda c: replace(c, origin="other.org/log"), "policy-change-origin"),
        # Signatures over another statement (or by keys outside the policy) count for none.
        (lambda c: replace(c, policy=_policy("abcd", 1)), "policy-change-quorum"),
        (lambda c: replace(c, signatures=(("a", c.signatures[0][1]), ("z", "AAAA"))),
         "policy-change-quorum"),
    ],
)  # fmt: skip
def test_a_change_that_does_not_follow_is_refused(mutate: object, code: str) -> None:
    change = sign_change(sign_change(_change(_policy("abd", 2)), "a", KEYS["a"]), "b", KEYS["b"])
    verify_change(GENESIS, 0, change, ORIGIN)  # valid as made
    bad = mutate(change)  # type: ignore[operator]
    with pytest.raises(VerificationError) as e:
        verify_change(GENESIS, 0, bad, ORIGIN)
    assert e.value.code == code


def test_a_policy_that_needs_no_cosignature_cannot_be_adopted() -> None:
    none = f"log {LOG}\nquorum none\n"
    change = sign_change(sign_change(_change(none), "a", KEYS["a"]), "b", KEYS["b"])
    with pytest.raises(VerificationError) as e:
        verify_change(GENESIS, 0, change, ORIGIN)
    assert e.value.code == "policy-change-none"


def test_follow_walks_the_chain_and_each_step_needs_its_own_quorum() -> None:
    first = _change(_policy("abcd", 3))
    first = sign_change(sign_change(first, "a", KEYS["a"]), "c", KEYS["c"])
    v1 = parse_policy(first.policy)
    # Version 2 needs 3 of a, b, c, d: two signatures are not enough any more.
    second = _change(_policy("bcd", 2), version=2, current=v1)
    second = sign_change(sign_change(second, "b", KEYS["b"]), "d", KEYS["d"])
    with pytest.raises(VerificationError):
        follow(GENESIS, [first, second], ORIGIN)
    second = sign_change(second, "a", KEYS["a"])
    policy, version = follow(GENESIS, [first, second], ORIGIN)
    assert version == 2 and [w.name for w in policy.witnesses] == ["b", "c", "d"]
    # Out of order, or replayed, the chain breaks.
    with pytest.raises(VerificationError):
        follow(GENESIS, [second], ORIGIN)
    with pytest.raises(VerificationError):
        follow(GENESIS, [first, first], ORIGIN)


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        {"origin": ORIGIN},
        {"origin": ORIGIN, "version": "1", "previous": "0" * 64, "policy": "", "signatures": []},
        {"origin": ORIGIN, "version": 0, "previous": "0" * 64, "policy": "", "signatures": []},
        {"origin": ORIGIN, "version": 1, "previous": "00", "policy": "", "signatures": []},
        {"origin": ORIGIN, "version": 1, "previous": "0" * 64, "policy": "", "signatures": {}},
        {"origin": ORIGIN, "version": 1, "previous": "0" * 64, "policy": "",
         "signatures": [{"witness": 1, "sig": "x"}]},
        {"origin": ORIGIN, "version": True, "previous": "0" * 64, "policy": "",
         "signatures": []},
    ],
)  # fmt: skip
def test_garbage_change_documents_are_refused_with_a_code(doc: object) -> None:
    with pytest.raises(FormatError) as e:
        PolicyChange.from_dict(doc)
    assert e.value.code == "bad-policy-change"


def test_a_change_to_an_unparseable_policy_is_refused() -> None:
    change = _change("log nonsense\n")
    with pytest.raises(ProofsError):
        verify_change(GENESIS, 0, change, ORIGIN)


def test_round_trip_through_json_shape() -> None:
    change = sign_change(_change(_policy("ab", 1)), "a", KEYS["a"])
    assert PolicyChange.from_dict(change.to_dict()) == change
