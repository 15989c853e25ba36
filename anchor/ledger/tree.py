"""The append-only RFC 6962 log, computed from stored complete subtrees.

The store keeps, for every level ``L``, the hash of every *complete* subtree of
``2**L`` leaves: node ``(L, i)`` covers leaves ``[i * 2**L, (i + 1) * 2**L)``.
Appending leaf ``n`` adds ``(0, n)`` and then one parent per trailing one-bit of
``n``, so an append writes O(log n) nodes and never rewrites any. Any tree
size's root, inclusion proof or consistency proof is then O(log n) node reads:
an aligned power-of-two range is one stored node, and every other range the
RFC 6962 recursion asks for splits into such nodes.

The functions here are pure: they take a ``get_node(level, index)`` callable,
so the same code serves SQLite, PostgreSQL or a dict in a unit test, and they
are checked against :mod:`proofs.merkle` (which keeps every leaf in memory).
"""

from __future__ import annotations

from proofs.merkle import (
    NodeGetter,
    consistency_proof_from_nodes,
    inclusion_proof_from_nodes,
    node_hash,
    root_from_nodes,
)

__all__ = [
    "NodeGetter",
    "consistency_proof",
    "inclusion_proof",
    "nodes_for_append",
    "root_at",
]


def nodes_for_append(size: int, leaf: bytes, get_node: NodeGetter) -> list[tuple[int, int, bytes]]:
    """The nodes to store when ``leaf`` becomes leaf number ``size`` (0-based).

    Returns ``(level, index, hash)`` triples, the leaf first; every subtree the
    new leaf completes follows, bottom-up.
    """
    out = [(0, size, leaf)]
    level, index, current = 0, size, leaf
    while index & 1:
        left = get_node(level, index - 1)
        current = node_hash(left, current)
        level, index = level + 1, index >> 1
        out.append((level, index, current))
    return out


# Roots and proofs over stored nodes are RFC 6962's, shared with proofs.merkle.
root_at = root_from_nodes
inclusion_proof = inclusion_proof_from_nodes
consistency_proof = consistency_proof_from_nodes
