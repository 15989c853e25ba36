"""The log as C2SP tlog-tiles: paths in their one spelling, tiles that reproduce the tree.

A client here rebuilds what it needs from tiles alone, the way a mirror or another member
would: the checkpoint's root from the level-0 tiles, every level-1 hash from the full
level-0 tile below it, every entry from the bundles, and the signed checkpoint from
``/tlog/checkpoint`` (verified with the log's key)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from anchor.ledger import tree as log
from anchor.ledger.tiles import TileError, TilePath, entry_bundle, hash_tile, parse_tile_path
from anchor.storage.sqlite.store import SqliteLedger
from bench.anchor_ingest_query import fill_log
from proofs.merkle import MerkleTree, leaf_hash
from proofs.note import Checkpoint, NoteVerifier, SignedNote
from support.provenance_fixtures import serve_journey


@pytest.mark.parametrize(
    ("level", "rest", "tile"),
    [
        ("0", "000", TilePath(0, 0, 256)),
        ("0", "x001/x234/067", TilePath(0, 1_234_067, 256)),  # the spec's example
        ("1", "x001/000.p/17", TilePath(1, 1000, 17)),
        ("63", "005.p/255", TilePath(63, 5, 255)),
        ("entries", "273.p/112", TilePath(None, 273, 112)),
    ],
)
def test_tile_paths_parse_and_print_alike(level: str, rest: str, tile: TilePath) -> None:
    assert parse_tile_path(level, rest) == tile
    assert tile.path() == f"tile/{level}/{rest}"


@pytest.mark.parametrize(
    ("level", "rest"),
    [
        ("00", "000"),  # leading zero in the level
        ("64", "000"),
        ("-1", "000"),
        ("0", "5"),  # not three digits
        ("0", "x000/005"),  # 5 has one spelling: 005
        ("0", "001/002"),  # leading elements carry an x
        ("0", "000.p/0"),
        ("0", "000.p/256"),
        ("0", "000.p/012"),
        ("0", "000.p"),
        ("0", "../000"),
        ("0", ""),
        ("leaves", "000"),
    ],
)
def test_other_spellings_are_refused(level: str, rest: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(level, rest)


def test_which_tiles_a_tree_of_70000_has() -> None:
    """The spec's example: 273 full level-0 tiles and one of width 112, one full level-1
    tile and one of width 17, one level-2 tile of width 1."""

    def node(level: int, index: int) -> bytes:
        return hashlib.sha256(f"{level}/{index}".encode()).digest()

    ok = [(0, 272, 256), (0, 273, 112), (1, 0, 256), (1, 1, 17), (2, 0, 1)]
    missing = [(0, 273, 113), (0, 274, 1), (1, 1, 18), (1, 2, 1), (2, 0, 2), (3, 0, 1)]
    for level, index, width in ok:
        assert len(hash_tile(TilePath(level, index, width), 70_000, node)) == 32 * width
    for level, index, width in missing:
        with pytest.raises(TileError):
            hash_tile(TilePath(level, index, width), 70_000, node)


def _filled(tmp_path: Path, leaves: int) -> SqliteLedger:
    db = tmp_path / "ledger.sqlite3"
    fill_log(db, leaves)  # the bench's filler: evicted manifests through the store API
    return SqliteLedger(db)


def test_tiles_rebuild_the_tree_and_its_entries(tmp_path: Path) -> None:
    size = 600  # two full level-0 tiles, one of width 88; a level-1 tile of width 2
    store = _filled(tmp_path, size)
    try:
        level0 = [
            hash_tile(TilePath(0, n, w), size, store.get_node)
            for n, w in ((0, 256), (1, 256), (2, 88))
        ]
        hashes = [t[i : i + 32] for t in level0 for i in range(0, len(t), 32)]
        assert MerkleTree(hashes).root() == log.root_at(size, store.get_node)
        level1 = hash_tile(TilePath(1, 0, 2), size, store.get_node)
        assert [level1[:32], level1[32:]] == [
            MerkleTree(hashes[:256]).root(),
            MerkleTree(hashes[256:512]).root(),
        ]

        def entries(a: int, b: int) -> list[bytes]:
            return [x.manifest_json for x in store.batches(a, b)]

        bundle = entry_bundle(TilePath(None, 2, 88), size, entries)
        found, at = [], 0
        while at < len(bundle):
            n = int.from_bytes(bundle[at : at + 2], "big")
            found.append(bundle[at + 2 : at + 2 + n])
            at += 2 + n
        assert [leaf_hash(e) for e in found] == hashes[512:]
        with pytest.raises(TileError):  # nothing past the checkpointed size is served
            hash_tile(TilePath(0, 2, 88), 599, store.get_node)
    finally:
        store.close()


async def test_a_mirror_verifies_the_checkpoint_from_tiles_alone(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, _, _ = await serve_journey(aiohttp_client, tmp_path / "anchor")
    info = await (await client.get("/v1/log")).json()
    resp = await client.get("/tlog/checkpoint")
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert resp.headers["Cache-Control"] == "public, max-age=2"
    note = SignedNote.parse(await resp.text())
    assert note.verify([NoteVerifier.from_vkey(info["log_vkey"])])
    checkpoint = Checkpoint.from_text(note.text)
    size = checkpoint.size
    assert 0 < size < 256
    resp = await client.get(f"/tlog/tile/0/000.p/{size}")
    assert resp.status == 200 and resp.content_type == "application/octet-stream"
    assert "immutable" in resp.headers["Cache-Control"]
    tile = await resp.read()
    hashes = [tile[i : i + 32] for i in range(0, len(tile), 32)]
    assert MerkleTree(hashes).root() == checkpoint.root
    bundle = await (await client.get(f"/tlog/tile/entries/000.p/{size}")).read()
    n = int.from_bytes(bundle[:2], "big")
    assert leaf_hash(bundle[2 : 2 + n]) == hashes[0]
    for bad in (f"/tlog/tile/0/000.p/{size + 1}", "/tlog/tile/0/000", "/tlog/tile/00/000"):
        resp = await client.get(bad)
        assert resp.status == 404 and resp.content_type == "application/problem+json", bad
