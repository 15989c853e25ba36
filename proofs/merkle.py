"""RFC 6962 / RFC 9162 Merkle trees and proofs.

The module-level functions are the stable public API that auditors script
against; they take and return plain bytes and ints. :class:`MerkleTree` keeps
every level of a tree in memory so that many proofs over the same leaves cost
O(log n) each instead of O(n).

Hashes: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right),
the empty tree is SHA-256 of nothing. A tree of n > 1 leaves splits at the
largest power of two smaller than n.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256

from .errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "NodeGetter",
    "consistency_proof",
    "consistency_proof_from_nodes",
    "inclusion_proof",
    "inclusion_proof_from_nodes",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_nodes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


NodeGetter = Callable[[int, int], bytes]
"""``get_node(level, index)``: the hash of the complete subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``. A store that keeps those nodes
(the anchor's ledger) or in-memory levels (:class:`MerkleTree`) can both answer
every root and proof of RFC 6962 through the functions below in O(log n) reads."""


def _range_hash(lo: int, hi: int, get_node: NodeGetter) -> bytes:
    """MTH of leaves[lo:hi] for the ranges RFC 6962's recursion produces."""
    width = hi - lo
    if width & (width - 1) == 0 and lo % width == 0:
        return get_node(width.bit_length() - 1, lo // width)
    k = _split(width)
    return node_hash(_range_hash(lo, lo + k, get_node), _range_hash(lo + k, hi, get_node))


def root_from_nodes(size: int, get_node: NodeGetter) -> bytes:
    """The root of the first ``size`` leaves."""
    if size < 0:
        raise ValueError("a tree size is not negative")
    return EMPTY_ROOT if size == 0 else _range_hash(0, size, get_node)


def inclusion_proof_from_nodes(index: int, size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), leaf to root."""
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


def consistency_proof_from_nodes(old_size: int, new_size: int, get_node: NodeGetter) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size])."""
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


class MerkleTree:
    """An immutable RFC 6962 tree over ``leaf_hashes`` with every level kept.

    Levels are built bottom-up; an unpaired last node is carried up unchanged,
    which yields exactly the RFC 6962 tree for every size.
    """

    __slots__ = ("_levels", "size")

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        level = list(leaf_hashes)
        if level and set(map(len, level)) != {HASH_SIZE}:
            raise ValueError(f"leaf hashes are {HASH_SIZE} bytes each")
        self.size = len(level)
        levels = [level]
        while len(level) > 1:
            nxt = [
                sha256(b"\x01" + level[i] + level[i + 1]).digest()
                for i in range(0, len(level) - 1, 2)
            ]
            if len(level) % 2:
                nxt.append(level[-1])
            levels.append(nxt)
            level = nxt
        self._levels = levels

    def root(self) -> bytes:
        if self.size == 0:
            return EMPTY_ROOT
        return self._levels[-1][0]

    def _node(self, level: int, index: int) -> bytes:
        return self._levels[level][index]

    def inclusion_proof(self, index: int) -> list[bytes]:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf index {index} outside a tree of size {self.size}")
        # Every level holds the exact subtree hash at each position (carried nodes
        # included), so the path is the sibling at each level, where there is one.
        path: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index >>= 1
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        n = self.size if new_size is None else new_size
        if not 0 <= old_size <= n <= self.size:
            raise IndexError(f"need 0 <= old_size <= new_size <= {self.size}")
        return consistency_proof_from_nodes(old_size, n, self._node)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    return MerkleTree(leaf_hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(
            f"{name} is {len(value)} bytes, a SHA-256 hash is {HASH_SIZE}", code="bad-hash-size"
        )


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2. Returns ``None`` or raises :class:`VerificationError`."""
    if index < 0 or index >= size:
        raise VerificationError(
            f"leaf index {index} is outside a tree of size {size}", code="index-out-of-range"
        )
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root", root)
    for p in proof:
        _check_hash("proof element", p)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is too long", code="bad-proof-length")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is too short", code="bad-proof-length")
    if r != root:
        raise VerificationError(
            "inclusion proof does not lead to the root", code="inclusion-mismatch"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """RFC 9162 §2.1.4.2. Returns ``None`` or raises :class:`VerificationError`."""
    if old_size < 0 or new_size < old_size:
        raise VerificationError(
            f"old size {old_size} is larger than new size {new_size}", code="size-regression"
        )
    if old_size == new_size:
        if proof:
            raise VerificationError(
                "equal sizes need an empty consistency proof", code="bad-proof-length"
            )
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise VerificationError("an empty tree has the empty root", code="root-mismatch")
        if old_root != new_root:
            raise VerificationError("same size but different roots", code="root-mismatch")
        return
    if old_size == 0:
        raise VerificationError(
            "a consistency proof from the empty tree proves nothing", code="empty-old-tree"
        )
    if not proof:
        raise VerificationError("consistency proof is empty", code="bad-proof-length")
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    for p in proof:
        _check_hash("proof element", p)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long", code="bad-proof-length")
        if fn & 1 or fn == sn:
            fr = sha256(b"\x01" + c + fr).digest()
            sr = sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short", code="bad-proof-length")
    if fr != old_root:
        raise VerificationError(
            "consistency proof does not match the old root", code="root-mismatch"
        )
    if sr != new_root:
        raise VerificationError(
            "consistency proof does not match the new root", code="root-mismatch"
        )
