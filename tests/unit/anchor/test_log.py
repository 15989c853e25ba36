"""anchor.log computes roots and proofs from stored subtrees exactly like proofs.merkle."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from anchor.ledger import tree as log
from proofs.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def build(n: int) -> tuple[list[bytes], dict[tuple[int, int], bytes]]:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    nodes: dict[tuple[int, int], bytes] = {}
    for i, h in enumerate(leaves):
        for level, idx, value in log.nodes_for_append(i, h, lambda lv, ix: nodes[(lv, ix)]):
            assert (level, idx) not in nodes  # nothing is ever rewritten
            nodes[(level, idx)] = value
    return leaves, nodes


def test_empty_log_has_the_empty_root() -> None:
    assert log.root_at(0, lambda lv, ix: b"") == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_an_append_writes_one_node_per_completed_subtree() -> None:
    _, nodes = build(8)
    # 8 leaves + 4 + 2 + 1 complete subtrees
    assert len(nodes) == 15


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=1, max_value=70), data=st.data())
def test_roots_and_proofs_match_the_in_memory_tree(n: int, data: st.DataObject) -> None:
    leaves, nodes = build(n)

    def get(level: int, idx: int) -> bytes:
        return nodes[(level, idx)]

    size = data.draw(st.integers(min_value=1, max_value=n), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=1, max_value=size), label="old")
    tree = MerkleTree(leaves[:size])
    assert log.root_at(size, get) == tree.root()
    proof = log.inclusion_proof(index, size, get)
    assert proof == tree.inclusion_proof(index)
    verify_inclusion(leaves[index], index, size, proof, tree.root())
    consistency = log.consistency_proof(old, size, get)
    assert consistency == tree.consistency_proof(old)
    verify_consistency(old, size, consistency, MerkleTree(leaves[:old]).root(), tree.root())


def test_proof_reads_are_logarithmic() -> None:
    _, nodes = build(1000)
    reads: list[tuple[int, int]] = []

    def get(level: int, idx: int) -> bytes:
        reads.append((level, idx))
        return nodes[(level, idx)]

    log.inclusion_proof(517, 1000, get)
    assert len(reads) <= 2 * 10 + 2
