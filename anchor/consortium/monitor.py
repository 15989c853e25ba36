"""A consortium monitor: watch every member's published checkpoint, trust none of them.

``coldtrail-anchor monitor`` polls each member's ``/tlog/checkpoint`` (C2SP tlog-tiles)
and checks, with nothing but the consortium's policy:

- the note is signed by a log key of the policy in force (the genesis policy followed
  through the signed changes a member publishes, ``proofs.policy_change``);
- which members cosigned it and whether that meets the quorum (final or not);
- **split views**: two checkpoints of one size with different roots, from any two
  members or from one member at two times: both signed notes are written to the
  evidence directory and an alert is raised (log line, exit status, webhook);
- each member's new checkpoint is consistent with the last one seen from it, by a
  consistency proof computed from that member's own hash tiles (:class:`TileReader`),
  so a member that rewrote its log is named.

:class:`TileReader` is also how anyone catches up with a member's log from its tiles: it
serves ``get_node`` for :mod:`anchor.ledger.tree` from fetched (immutable, cacheable)
tiles, and :meth:`TileReader.entries` returns the logged manifests from entry bundles,
each checked against the tree.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchor.ledger import tiles
from anchor.ledger import tree as log
from proofs.errors import ProofsError
from proofs.merkle import leaf_hash, node_hash, verify_consistency
from proofs.note import Checkpoint, SignedNote
from proofs.policy import Policy
from proofs.policy_change import PolicyChange, follow

__all__ = ["Event", "Monitor", "TileReader", "alert_body"]

_log = logging.getLogger("coldtrail.anchor.monitor")
Fetch = Callable[[str], bytes]  # an absolute URL -> the body (raises OSError on failure)


class TileReader:
    """The tree of ``size`` leaves of one log, read from its tiles below ``base``."""

    def __init__(self, fetch: Fetch, base: str, size: int) -> None:
        self.fetch = fetch
        self.base = base.rstrip("/")
        self.size = size
        self._tiles: dict[tuple[int | None, int, int], bytes] = {}

    def _tile(self, level: int | None, index: int) -> bytes:
        height = 0 if level is None else tiles.TILE_HEIGHT * level
        available = self.size >> height
        width = min(tiles.TILE_WIDTH, available - index * tiles.TILE_WIDTH)
        if width <= 0:
            raise KeyError(f"the tree of {self.size} has no tile {level}/{index}")
        key = (level, index, width)
        if key not in self._tiles:
            path = tiles.TilePath(level, index, width).path()
            self._tiles[key] = self.fetch(f"{self.base}/{path}")
        return self._tiles[key]

    def get_node(self, level: int, index: int) -> bytes:
        """The complete subtree ``(level, index)``: hashed up from one tile's hashes."""
        tile_level, rise = divmod(level, tiles.TILE_HEIGHT)
        first, count = index << rise, 1 << rise
        tile_index, offset = divmod(first, tiles.TILE_WIDTH)
        data = self._tile(tile_level, tile_index)
        if (offset + count) * 32 > len(data):
            raise KeyError(f"node ({level}, {index}) is not complete in the tree of {self.size}")
        hashes = [data[i * 32 : (i + 1) * 32] for i in range(offset, offset + count)]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def entries(self, start: int, stop: int) -> list[bytes]:
        """Leaves ``[start, stop)`` from the entry bundles, each checked against the tree."""
        out: list[bytes] = []
        for index in range(start // tiles.TILE_WIDTH, -(-stop // tiles.TILE_WIDTH)):
            data, pos, n = self._tile(None, index), 0, index * tiles.TILE_WIDTH
            while pos < len(data):
                length = int.from_bytes(data[pos : pos + 2], "big")
                entry = data[pos + 2 : pos + 2 + length]
                pos += 2 + length
                if start <= n < stop:
                    if leaf_hash(entry) != self.get_node(0, n):
                        raise ValueError(f"entry {n} is not the tree's leaf {n}")
                    out.append(entry)
                n += 1
        if len(out) != stop - start:
            raise ValueError(f"the entry bundles hold {len(out)} of {stop - start} entries")
        return out


@dataclass(frozen=True, slots=True)
class Event:
    # final, not-final, unreachable; alarms: split-view, inconsistent, rolled-back, bad-note
    kind: str
    member: str
    detail: str
    evidence: tuple[str, ...] = ()

    @property
    def alarming(self) -> bool:
        return self.kind in ("split-view", "inconsistent", "rolled-back", "bad-note")


@dataclass
class Monitor:
    genesis: Policy
    members: list[tuple[str, str]]  # (name, base URL)
    fetch: Fetch
    evidence_dir: Path | None = None
    policy: Policy = field(init=False)
    _last: dict[str, tuple[Checkpoint, str]] = field(default_factory=dict, init=False)
    _by_size: dict[int, tuple[bytes, str, str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.policy = self.genesis

    def follow_changes(self, base: str) -> None:
        """Adopt the policy in force from a member's published, signed changes."""
        view = json.loads(self.fetch(f"{base.rstrip('/')}/v1/consortium"))
        changes = [PolicyChange.from_dict(c) for c in view.get("policy_changes", [])]
        if changes and self.genesis.logs:
            self.policy, _ = follow(self.genesis, changes, self.genesis.logs[0].name)

    def poll(self) -> list[Event]:
        events: list[Event] = []
        for name, base in self.members:
            try:
                text = self.fetch(f"{base.rstrip('/')}/tlog/checkpoint").decode("utf-8")
            except (OSError, UnicodeDecodeError) as err:
                events.append(Event("unreachable", name, str(err)))
                continue
            events.extend(self._check(name, base, text))
        for ev in events:
            (_log.error if ev.alarming else _log.info)("%s %s: %s", ev.kind, ev.member, ev.detail)
        return events

    def _check(self, name: str, base: str, text: str) -> list[Event]:
        try:
            note = SignedNote.parse(text)
            note.verify(list(self.policy.logs))
            cp = Checkpoint.from_text(note.text)
        except ProofsError as e:
            return [Event("bad-note", name, f"not a checkpoint signed by a policy log: {e}")]
        events: list[Event] = []
        seen = self._by_size.get(cp.size)
        if seen is not None and seen[0] != cp.root:
            files = self._keep(cp.size, (seen[2], seen[1]), (name, text))
            why = f"size {cp.size}: {name}'s root differs from {seen[2]}'s"
            events.append(Event("split-view", name, why, files))
        else:
            self._by_size.setdefault(cp.size, (cp.root, text, name))
        last = self._last.get(name)
        if last is not None:
            old = last[0]
            if cp.size < old.size:
                files = self._keep(old.size, (name, last[1]), (name, text))
                events.append(Event("rolled-back", name, f"size {cp.size} after {old.size}", files))
            elif cp.size > old.size:
                try:
                    reader = TileReader(self.fetch, f"{base.rstrip('/')}/tlog", cp.size)
                    proof = log.consistency_proof(old.size, cp.size, reader.get_node)
                    verify_consistency(old.size, cp.size, proof, old.root, cp.root)
                except (ProofsError, KeyError, OSError, ValueError) as e:
                    files = self._keep(cp.size, (name, last[1]), (name, text))
                    why = f"{old.size} -> {cp.size} does not verify from its tiles: {e}"
                    events.append(Event("inconsistent", name, why, files))
        self._last[name] = (cp, text)
        cosigners = self._cosigners(note)
        final = self.policy.satisfied(cosigners)
        names = ", ".join(sorted(cosigners)) or "none"
        events.append(Event("final" if final else "not-final", name, f"size {cp.size}, by {names}"))
        return events

    def _cosigners(self, note: SignedNote) -> frozenset[str]:
        return frozenset(self.policy.cosigned(note))

    def _keep(self, size: int, *notes: tuple[str, str]) -> tuple[str, ...]:
        """Write the signed notes as evidence; their paths."""
        if self.evidence_dir is None:
            return ()
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        paths = []
        for i, (member, text) in enumerate(notes):
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", member).strip("_")[:64]
            path = self.evidence_dir / f"size-{size}-{stamp}-{i}-{safe}.note"
            path.write_text(text)
            paths.append(str(path))
        return tuple(paths)


def alert_body(events: list[Event]) -> dict[str, Any]:
    return {
        "event": "consortium-monitor",
        "alarms": [
            {"kind": e.kind, "member": e.member, "detail": e.detail, "evidence": list(e.evidence)}
            for e in events
            if e.alarming
        ],
    }
