"""The log as C2SP tlog-tiles: immutable tiles of Merkle tree hashes and entry bundles.

https://c2sp.org/tlog-tiles: the hashes of the tree are served as *tiles*, 256 consecutive
hashes at tree height ``8 * L`` (``tile/<L>/<N>[.p/<W>]``), and the entries as *entry
bundles* (``tile/entries/<N>[.p/<W>]``, each entry a big-endian uint16 length and its
bytes). Given a checkpoint, a client computes any inclusion or consistency proof from the
tiles alone, so the log can be mirrored by any static file server or CDN, and a member
node can catch up from another member's tiles.

The ledger's leaves are the signed batch manifests (their canonical bytes), and
``log_nodes`` already stores every complete subtree hash, so a tile is a slice of stored
hashes and nothing is computed at serve time. Only what a signed checkpoint covers is
served: a tile or bundle beyond the latest checkpoint's size is "not found".

This module is pure: paths in, bytes out, over a ``get_node`` and an ``entry`` function.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TILE_WIDTH", "TileError", "TilePath", "entry_bundle", "hash_tile", "parse_tile_path"]

TILE_WIDTH = 256
TILE_HEIGHT = 8  # log2(TILE_WIDTH)
_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")


class TileError(ValueError):
    """Not a tile path, or a tile the checkpointed tree does not (yet) have."""


@dataclass(frozen=True, slots=True)
class TilePath:
    level: int | None  # None: an entry bundle
    index: int
    width: int  # 256 for a full tile

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    def path(self) -> str:
        """The canonical path below the prefix, e.g. ``tile/0/x001/x234/067.p/12``."""
        digits = f"{self.index:03d}"
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        n = "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])
        level = "entries" if self.level is None else str(self.level)
        return f"tile/{level}/{n}" + (f".p/{self.width}" if self.partial else "")


def parse_tile_path(level: str, rest: str) -> TilePath:
    """``level`` (``0``..``63`` or ``entries``) and ``rest`` (``x001/x234/067[.p/W]``), in
    the one encoding the spec allows: no leading zeros, no other spelling of a tile."""
    if level == "entries":
        lvl: int | None = None
    elif _LEVEL.fullmatch(level) and int(level) <= 63:
        lvl = int(level)
    else:
        raise TileError(f"{level!r} is not a tile level (0-63, or entries)")
    parts = rest.split("/")
    width = TILE_WIDTH
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        if not _WIDTH.fullmatch(parts[-1]) or not 1 <= int(parts[-1]) <= 255:
            raise TileError("a partial tile's width is 1-255, without leading zeros")
        width = int(parts[-1])
        parts = [*parts[:-2], parts[-2][:-2]]
    if not parts or not _LAST.fullmatch(parts[-1]):
        raise TileError("a tile index ends in a three-digit path element")
    if not all(_GROUP.fullmatch(p) for p in parts[:-1]):
        raise TileError("a tile index's leading path elements are x and three digits")
    index = int("".join(p.lstrip("x") for p in parts))
    tile = TilePath(lvl, index, width)
    if tile.path() != "tile/" + level + "/" + rest:
        raise TileError("not the canonical spelling of this tile index")
    return tile


def _available(tile: TilePath, tree_size: int) -> None:
    """Raise unless the tree of ``tree_size`` leaves contains this tile in full."""
    level = tile.level or 0
    hashes = tree_size >> (TILE_HEIGHT * level)  # complete subtrees at that height
    if tile.index * TILE_WIDTH + tile.width > hashes:
        raise TileError(f"the checkpointed tree ({tree_size} entries) has no {tile.path()}")


def hash_tile(tile: TilePath, tree_size: int, get_node: Callable[[int, int], bytes]) -> bytes:
    """The tile's hashes: ``width`` complete subtree hashes at height ``8 * level``."""
    if tile.level is None:
        raise TileError("an entry bundle is not a hash tile")
    _available(tile, tree_size)
    height = TILE_HEIGHT * tile.level
    first = tile.index * TILE_WIDTH
    return b"".join(get_node(height, first + i) for i in range(tile.width))


def entry_bundle(
    tile: TilePath, tree_size: int, entries: Callable[[int, int], list[bytes]]
) -> bytes:
    """The bundle: each entry (a manifest's canonical bytes) as uint16 length + bytes.

    ``entries(start, stop)`` returns the leaves' bytes in log order."""
    if tile.level is not None:
        raise TileError("a hash tile is not an entry bundle")
    _available(tile, tree_size)
    first = tile.index * TILE_WIDTH
    found = entries(first, first + tile.width)
    if len(found) != tile.width:
        raise TileError(f"{tile.width - len(found)} entries of {tile.path()} are missing")
    out = bytearray()
    for entry in found:
        if len(entry) > 0xFFFF:
            raise TileError("an entry longer than 65,535 bytes cannot be bundled")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)
