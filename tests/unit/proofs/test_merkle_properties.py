"""Property tests: every leaf proves, any flipped bit fails, every old size is consistent."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs import merkle
from proofs.errors import VerificationError


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _reference_root(hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH written as the recursion in the RFC, independent of MerkleTree."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return merkle.node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_root_matches_the_rfc_recursion(n: int) -> None:
    hashes = _leaves(n)
    assert merkle.root(hashes) == _reference_root(hashes)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.data())
def test_every_leaf_of_every_size_proves(n: int, data: st.DataObject) -> None:
    hashes = _leaves(n)
    tree = merkle.MerkleTree(hashes)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = tree.inclusion_proof(index)
    assert proof == merkle.inclusion_proof(hashes, index)
    merkle.verify_inclusion(hashes[index], index, n, proof, tree.root())


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=2, max_value=130), st.data())
def test_any_flipped_bit_in_an_inclusion_proof_fails(n: int, data: st.DataObject) -> None:
    hashes = _leaves(n)
    tree = merkle.MerkleTree(hashes)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = tree.inclusion_proof(index)
    root = tree.root()
    what = data.draw(st.sampled_from(["leaf", "proof", "root"]))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    leaf = hashes[index]
    if what == "leaf":
        leaf = _flip(leaf, bit)
    elif what == "root":
        root = _flip(root, bit)
    else:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(leaf, index, n, proof, root)


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.data())
def test_every_old_size_is_consistent(n: int, data: st.DataObject) -> None:
    hashes = _leaves(n)
    tree = merkle.MerkleTree(hashes)
    m = data.draw(st.integers(min_value=1, max_value=n))
    proof = tree.consistency_proof(m)
    assert proof == merkle.consistency_proof(hashes, m)
    merkle.verify_consistency(m, n, proof, merkle.root(hashes[:m]), tree.root())


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=2, max_value=130), st.data())
def test_any_flipped_bit_in_a_consistency_proof_fails(n: int, data: st.DataObject) -> None:
    hashes = _leaves(n)
    tree = merkle.MerkleTree(hashes)
    m = data.draw(st.integers(min_value=1, max_value=n - 1))
    proof = tree.consistency_proof(m)
    old_root, new_root = merkle.root(hashes[:m]), tree.root()
    what = data.draw(st.sampled_from(["old", "new", "proof"]))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    if what == "old":
        old_root = _flip(old_root, bit)
    elif what == "new":
        new_root = _flip(new_root, bit)
    else:
        i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        proof = [*proof[:i], _flip(proof[i], bit), *proof[i + 1 :]]
    with pytest.raises(VerificationError):
        merkle.verify_consistency(m, n, proof, old_root, new_root)


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (5, 5), (-1, 3)], ids=["empty", "past-end", "negative"]
)
def test_out_of_range_index_is_refused(index: int, size: int) -> None:
    with pytest.raises(VerificationError) as e:
        merkle.verify_inclusion(merkle.leaf_hash(b""), index, size, [], merkle.EMPTY_ROOT)
    assert e.value.code == "index-out-of-range"


def test_short_and_long_proofs_and_wrong_hash_sizes_are_refused() -> None:
    hashes = _leaves(8)
    tree = merkle.MerkleTree(hashes)
    proof = tree.inclusion_proof(3)
    root = tree.root()
    for bad in (proof[:-1], [*proof, proof[0]]):
        with pytest.raises(VerificationError) as e:
            merkle.verify_inclusion(hashes[3], 3, 8, bad, root)
        assert e.value.code in {"bad-proof-length", "inclusion-mismatch"}
    with pytest.raises(VerificationError) as e:
        merkle.verify_inclusion(hashes[3], 3, 8, [*proof[:-1], proof[-1][:31]], root)
    assert e.value.code == "bad-hash-size"


def test_prover_refuses_indexes_outside_the_tree() -> None:
    tree = merkle.MerkleTree(_leaves(3))
    with pytest.raises(IndexError):
        tree.inclusion_proof(3)
    with pytest.raises(IndexError):
        tree.consistency_proof(4)


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1, max_value=150), st.data())
def test_proofs_from_stored_nodes_match_for_every_earlier_size(n: int, data: st.DataObject) -> None:
    """A store of complete subtrees (the anchor's ledger) answers for any past tree size."""
    hashes = _leaves(n)
    tree = merkle.MerkleTree(hashes)

    def get_node(level: int, index: int) -> bytes:
        return _reference_root(hashes[index << level : (index + 1) << level])

    size = data.draw(st.integers(min_value=1, max_value=n))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=1, max_value=size))
    assert merkle.root_from_nodes(size, get_node) == merkle.root(hashes[:size])
    assert merkle.inclusion_proof_from_nodes(index, size, get_node) == merkle.inclusion_proof(
        hashes[:size], index
    )
    assert merkle.consistency_proof_from_nodes(old, size, get_node) == tree.consistency_proof(
        old, size
    )
