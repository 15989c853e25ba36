"""Reading a log back from its C2SP tiles alone (anchor.consortium.monitor.TileReader):
the way a monitor checks a member's consistency, or anyone catches up with its log."""

from __future__ import annotations

import random

import pytest

from anchor.consortium.monitor import TileReader
from anchor.ledger import tree as log
from anchor.ledger.tiles import entry_bundle, hash_tile, parse_tile_path
from proofs.merkle import MerkleTree, leaf_hash, verify_consistency

BASE = "http://member.example/tlog"


def _served(n: int, tamper: int | None = None) -> tuple[list[bytes], dict[str, int], object]:
    entries = [f"manifest {i}".encode() for i in range(n)]
    nodes: dict[tuple[int, int], bytes] = {}
    for i, e in enumerate(entries):
        for level, index, h in log.nodes_for_append(i, leaf_hash(e), lambda a, b: nodes[(a, b)]):
            nodes[(level, index)] = h
    fetched: dict[str, int] = {}

    def fetch(url: str) -> bytes:
        assert url.startswith(BASE + "/tile/")
        fetched[url] = fetched.get(url, 0) + 1
        level, _, rest = url[len(BASE) + len("/tile/") :].partition("/")
        tile = parse_tile_path(level, rest)
        if tile.level is None:
            served = list(entries)
            if tamper is not None:
                served[tamper] = b"edited " + served[tamper]
            return entry_bundle(tile, n, lambda a, b: served[a:b])
        return hash_tile(tile, n, lambda a, b: nodes[(a, b)])

    return entries, fetched, fetch


@pytest.mark.parametrize("n", [1, 2, 7, 255, 256, 257, 511, 1000, 3000])
def test_roots_and_consistency_proofs_from_tiles_alone(n: int) -> None:
    entries, fetched, fetch = _served(n)
    reader = TileReader(fetch, BASE, n)  # type: ignore[arg-type]
    expected = MerkleTree([leaf_hash(e) for e in entries]).root()
    assert log.root_at(n, reader.get_node) == expected
    rng = random.Random(n)
    for m in {1, n // 2 or 1, n - 1 or 1, rng.randrange(1, n + 1)}:
        old_root = MerkleTree([leaf_hash(e) for e in entries[:m]]).root()
        proof = log.consistency_proof(m, n, reader.get_node)
        verify_consistency(m, n, proof, old_root, expected)
    # Tiles are fetched once each (they are immutable) and never beyond the tree.
    assert all(count == 1 for count in fetched.values())


def test_entries_come_back_checked_against_the_tree() -> None:
    entries, _, fetch = _served(600)
    reader = TileReader(fetch, BASE, 600)  # type: ignore[arg-type]
    assert reader.entries(250, 520) == entries[250:520]
    assert reader.entries(0, 600) == entries
    _, _, lying = _served(600, tamper=300)
    with pytest.raises(ValueError, match="entry 300"):
        TileReader(lying, BASE, 600).entries(290, 310)  # type: ignore[arg-type]


def test_a_node_the_tree_does_not_have_complete_is_not_made_up() -> None:
    _, _, fetch = _served(300)
    reader = TileReader(fetch, BASE, 300)  # type: ignore[arg-type]
    reader.get_node(8, 0)  # leaves 0..255: complete
    with pytest.raises(KeyError):
        reader.get_node(8, 1)  # leaves 256..511: the tree has 300
    with pytest.raises(KeyError):
        reader.get_node(0, 300)
