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

from collections.abc import Callable
from hashlib import sha256

from proofs.merkle import EMPTY_ROOT

__all__ = [
    "NodeGetter",
    "consistency_proof",
    "inclusion_proof",
    "nodes_for_append",
    "root_at",
]

NodeGetter = Callable[[int, int], bytes]


def _node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def nodes_for_append(size: int, leaf: bytes, get_node: NodeGetter) -> list[tuple[int, int, bytes]]:
    """The nodes to store when ``leaf`` becomes leaf number ``size`` (0-based).

    Returns ``(level, index, hash)`` triples, the leaf first; every subtree the
    new leaf completes follows, bottom-up.
    """
    out = [(0, size, leaf)]
    level, index, current = 0, size, leaf
    while index & 1:
        left = get_node(level, index - 1)
        current = _node(left, current)
        level, index = level + 1, index >> 1
        out.append((level, index, current))
    return out


def _range_hash(lo: int, hi: int, get_node: NodeGetter) -> bytes:
    """MTH(leaves[lo:hi]) for the ranges RFC 6962's recursion produces."""
    width = hi - lo
    if width & (width - 1) == 0 and lo % width == 0:
        return get_node(width.bit_length() - 1, lo // width)
    k = _split(width)
    return _node(_range_hash(lo, lo + k, get_node), _range_hash(lo + k, hi, get_node))


def root_at(size: int, get_node: NodeGetter) -> bytes:
    if size < 0:
        raise ValueError("a tree size is not negative")
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, get_node)


def inclusion_proof(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    if not 0 <= index < size:
        raise IndexError(f"leaf index {index} outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_range_hash(lo + k, hi, get_node))
            hi = lo + k
        else:
            path.append(_range_hash(lo, lo + k, get_node))
            lo = lo + k
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    if not 0 <= old_size <= new_size:
        raise IndexError(f"need 0 <= old size ({old_size}) <= new size ({new_size})")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(_range_hash(lo + k, hi, get_node))
            hi = lo + k
        else:
            path.append(_range_hash(lo, lo + k, get_node))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(_range_hash(lo, hi, get_node))
    path.reverse()
    return path
