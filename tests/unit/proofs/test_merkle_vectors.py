"""Every RFC 6962 vector from transparency-dev/merkle, including the ones that must fail."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from proofs import merkle
from proofs.errors import VerificationError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "rfc6962"


def _b64(v: str | None) -> bytes:
    return base64.b64decode(v or "")


def _load(kind: str) -> list[tuple[str, dict]]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [(str(f.relative_to(VECTORS)), json.loads(f.read_text())) for f in files]


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")


def test_vectors_are_present() -> None:
    assert len(INCLUSION) > 50 and len(CONSISTENCY) > 50
    assert any(not v["wantErr"] for _, v in INCLUSION)
    assert any(v["wantErr"] for _, v in CONSISTENCY)


@pytest.mark.parametrize(("name", "vec"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_vector(name: str, vec: dict) -> None:
    args = (
        _b64(vec["leafHash"]),
        vec["leafIdx"],
        vec["treeSize"],
        [_b64(p) for p in vec["proof"] or []],
        _b64(vec["root"]),
    )
    if vec["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize(("name", "vec"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_vector(name: str, vec: dict) -> None:
    args = (
        vec["size1"],
        vec["size2"],
        [_b64(p) for p in vec["proof"] or []],
        _b64(vec["root1"]),
        _b64(vec["root2"]),
    )
    if vec["wantErr"]:
        with pytest.raises(VerificationError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_happy_inclusion_vectors_are_reproduced_by_our_prover() -> None:
    """The RFC 6962 reference tree of 8 leaves: our proofs equal the vectors' proofs."""
    leaves = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    hashes = [merkle.leaf_hash(x) for x in leaves]
    checked = 0
    for _, vec in INCLUSION:
        if vec["wantErr"] or vec["desc"] != "happy path" or vec["treeSize"] > 8:
            continue
        tree = hashes[: vec["treeSize"]]
        if _b64(vec["leafHash"]) != tree[vec["leafIdx"]]:
            continue
        assert merkle.root(tree) == _b64(vec["root"])
        assert merkle.inclusion_proof(tree, vec["leafIdx"]) == [_b64(p) for p in vec["proof"] or []]
        checked += 1
    for _, vec in CONSISTENCY:
        if vec["wantErr"] or vec["desc"] != "happy path" or vec["size2"] > 8 or vec["size1"] == 0:
            continue
        tree = hashes[: vec["size2"]]
        if merkle.root(tree) != _b64(vec["root2"]):
            continue
        assert merkle.consistency_proof(tree, vec["size1"]) == [_b64(p) for p in vec["proof"] or []]
        checked += 1
    assert checked >= 4
