"""C2SP tlog-policy: the spec's example, its rules, and hostile variants."""

from __future__ import annotations

import pytest

from proofs.errors import FormatError
from proofs.keys import SigningKey
from proofs.note import ALG_COSIGNATURE_V1, NoteSigner
from proofs.policy import Policy, parse_policy


def _vkey(name: str, seed: int, alg: int = ALG_COSIGNATURE_V1) -> str:
    return NoteSigner(name, SigningKey.from_seed(bytes([seed]) * 32), alg).verifier.to_vkey()


LOG = NoteSigner("example.com/log", SigningKey.from_seed(b"\x01" * 32)).verifier.to_vkey()
NAMES = ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
KEYS = {n: _vkey(f"{n.lower()}.example", 10 + i) for i, n in enumerate(NAMES)}


def spec_example() -> str:
    """The two-level example of c2sp.org/tlog-policy, with real keys."""
    k = KEYS
    return f"""log {LOG}

witness X1 {k["X1"]}
witness X2 {k["X2"]}
witness X3 {k["X3"]}
group X-witnesses 2 X1 X2 X3

witness Y1 {k["Y1"]}
witness Y2 {k["Y2"]}
witness Y3 {k["Y3"]}
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


@pytest.mark.parametrize(
    ("cosigned", "met"),
    [
        ({"X1", "X2", "Y3"}, True),
        ({"X1", "X2", "X3", "Y1", "Y2", "Y3"}, True),
        ({"X1", "Y1", "Y2", "Y3"}, False),  # one X is not two
        ({"X1", "X3"}, False),  # no Y at all
        (set(), False),
    ],
)
def test_the_spec_example_decides_as_the_spec_says(cosigned: set[str], met: bool) -> None:
    policy = parse_policy(spec_example())
    assert policy.satisfied(cosigned) is met
    assert [v.to_vkey() for v in policy.logs] == [LOG]
    assert policy.groups[0].threshold == 2 and policy.groups[1].threshold == 1
    assert policy.groups[2].threshold == 2  # "all" of two groups


def test_witnessed_maps_verified_keys_to_policy_names() -> None:
    policy = parse_policy(spec_example())
    keys = {w.name: w.verifier for w in policy.witnesses}
    assert policy.witnessed([keys["X2"], keys["Y1"]]) == {"X2", "Y1"}
    # Another key under the same key name is not the witness.
    impostor = parse_policy(f"witness X2 {_vkey('x2.example', 99)}\nquorum X2\n").witnesses[0]
    assert policy.witnessed([impostor.verifier]) == set()


def test_comments_whitespace_urls_and_quorum_none() -> None:
    text = (
        "  # a comment\n\t\n"
        f"log\t{LOG}  https://log.example/\n"
        f"witness W {KEYS['X1']} https://w.example/\n"
        "quorum none  \n"
    )
    policy = parse_policy(text.encode())
    assert policy.log_urls == ("https://log.example/",)
    assert policy.witnesses[0].url == "https://w.example/"
    assert not policy.requires_cosignatures and policy.satisfied(set())
    assert parse_policy(policy.to_text()) == policy


def test_a_single_witness_quorum() -> None:
    policy = parse_policy(f"witness W {KEYS['X1']}\nquorum W\n")
    assert policy.satisfied({"W"}) and not policy.satisfied(set())
    assert policy.explain({"W"}) == ["quorum W: met"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (f"log {LOG}\n", "policy-no-quorum"),
        (f"witness W {KEYS['X1']}\nquorum W\nquorum W\n", "policy-duplicate-quorum"),
        ("quorum W\n", "policy-undefined-name"),
        (f"quorum W\nwitness W {KEYS['X1']}\n", "policy-undefined-name"),  # forward reference
        (f"witness W {KEYS['X1']}\ngroup G 1 W H\nquorum G\n", "policy-undefined-name"),
        # a cycle can only be written as a forward reference
        (f"witness W {KEYS['X1']}\ngroup G any W G\nquorum G\n", "policy-undefined-name"),
        (f"witness W {KEYS['X1']}\ngroup G any W none\nquorum G\n", "policy-undefined-name"),
        (f"witness W {KEYS['X1']}\nwitness W {KEYS['X2']}\nquorum W\n", "policy-duplicate-name"),
        (f"witness W {KEYS['X1']}\ngroup W any W\nquorum W\n", "policy-duplicate-name"),
        (f"witness none {KEYS['X1']}\nquorum none\n", "policy-duplicate-name"),
        (f"witness A {KEYS['X1']}\nwitness B {KEYS['X1']}\nquorum A\n", "policy-duplicate-witness"),
        (f"log {LOG}\nlog {LOG}\nquorum none\n", "policy-duplicate-log"),
        (f"witness W {KEYS['X1']}\ngroup G 2 W\nquorum G\n", "policy-bad-threshold"),
        (f"witness W {KEYS['X1']}\ngroup G 0 W\nquorum G\n", "policy-bad-threshold"),
        (f"witness W {KEYS['X1']}\ngroup G 01 W\nquorum G\n", "policy-bad-threshold"),
        (f"witness W {KEYS['X1']}\ngroup G -1 W\nquorum G\n", "policy-bad-threshold"),
        (f"witness W {KEYS['X1']}\ngroup G {'9' * 5000} W\nquorum G\n", "policy-bad-threshold"),
        (f"witness W {KEYS['X1']}\ngroup G 1 W W\nquorum G\n", "policy-duplicate-member"),
        (f"witness W {KEYS['X1']}\ngroup G any\nquorum G\n", "policy-empty-group"),
        ("quorum none\nwitnesses W x\n", "policy-unknown-keyword"),
        ("Quorum none\n", "policy-unknown-keyword"),
        ("quorum none none\n", "bad-policy"),
        (f"log {LOG} https://a https://b\nquorum none\n", "bad-policy"),
        ("quorum none\x0b\n", "bad-policy"),
        (b"quorum none\n\xff\n", "bad-policy"),
        (f"witness W {LOG}\nquorum W\n", "bad-vkey"),  # a log key is no cosigner key
        (f"log {KEYS['X1']}\nquorum none\n", "bad-vkey"),  # nor the other way round
        ("witness W not+a+vkey\nquorum W\n", "bad-vkey"),
        ("# only a comment\n" * 5000, "too-large"),
    ],
)
def test_hostile_policies_are_refused_with_a_code(text: str | bytes, code: str) -> None:
    with pytest.raises(FormatError) as e:
        parse_policy(text)
    assert e.value.code == code


def test_pinned_flags_are_a_k_of_n_policy() -> None:
    policy = Policy.pinned([LOG], [KEYS["X1"], KEYS["X2"]], 1)
    assert policy.satisfied({"x2.example"}) and not policy.satisfied(set())
    assert parse_policy(policy.to_text()) == policy
    with pytest.raises(FormatError) as e:
        Policy.pinned([LOG], [KEYS["X1"]], 0)
    assert e.value.code == "policy-bad-threshold"
