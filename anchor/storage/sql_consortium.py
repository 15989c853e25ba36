"""What a consortium member keeps beside the log, in SQL for every driver (``?``
placeholders; a driver supplies ``_one``, ``_all`` and ``_many``):

- ``stream_applied``: the last stream sequence applied, written in the same transaction
  as what it applied, so a member that crashes resumes exactly after it;
- ``stream_refusals``: stream entries the deterministic apply step refused (every member
  refuses the same ones), so the member that accepted one can still answer its gateway
  after a restart;
- ``org_members``: which member (its log verifier key) registered each organisation,
  the only member that may enrol its gateways, places and tokens;
- ``consortium_policies``: the policy changes applied from the stream
  (anchor.consortium.policies), each with the first checkpoint height it judges;
- ``split_views``: two signed checkpoints of one log and one size with different roots,
  kept as evidence (anchor.consortium.evidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ConsortiumSql"]


class ConsortiumSql:
    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def policy_changes(self) -> list[tuple[int, str, int]]:
        """``(version, change JSON, from_height)`` of every applied policy change."""
        rows = self._all(
            "SELECT version, change_json, from_height FROM consortium_policies ORDER BY version"
        )
        return [(int(v), str(c), int(h)) for v, c, h in rows]

    def add_policy_change(
        self, version: int, change_json: str, from_height: int, stream_seq: int, at: int
    ) -> None:
        self._many(
            "INSERT INTO consortium_policies (version, change_json, from_height, stream_seq,"
            " adopted_at) VALUES (?,?,?,?,?) ON CONFLICT (version) DO NOTHING",
            [(version, change_json, from_height, stream_seq, at)],
        )

    def stream_position(self, stream: str) -> int:
        row = self._one("SELECT seq FROM stream_applied WHERE stream = ?", (stream,))
        return 0 if row is None else int(row[0])

    def set_stream_position(self, stream: str, seq: int) -> None:
        self._many(
            "INSERT INTO stream_applied (stream, seq) VALUES (?,?)"
            " ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq",
            [(stream, seq)],
        )

    def add_stream_refusal(self, seq: int, msg_id: str, code: str, detail: str) -> None:
        self._many(
            "INSERT INTO stream_refusals (seq, msg_id, code, detail) VALUES (?,?,?,?)"
            " ON CONFLICT (seq) DO NOTHING",
            [(seq, msg_id, code, detail)],
        )

    def stream_refusal(self, seq: int) -> tuple[str, str, str] | None:
        """``(msg_id, code, detail)`` of a refused stream entry."""
        row = self._one("SELECT msg_id, code, detail FROM stream_refusals WHERE seq = ?", (seq,))
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def add_split_view(
        self, origin: str, size: int, note_a: str, note_b: str, source: str, at: int
    ) -> bool:
        """Keep both notes; False if this pair was kept already."""
        if self._one(
            "SELECT 1 FROM split_views WHERE origin = ? AND size = ? AND note_a = ? AND note_b = ?",
            (origin, size, note_a, note_b),
        ):
            return False
        self._many(
            "INSERT INTO split_views (origin, size, note_a, note_b, source, seen_at)"
            " VALUES (?,?,?,?,?,?)",
            [(origin, size, note_a, note_b, source, at)],
        )
        return True

    def org_member(self, org_id: str) -> str | None:
        row = self._one("SELECT member FROM org_members WHERE org_id = ?", (org_id,))
        return None if row is None else str(row[0])

    def set_org_member(self, org_id: str, member: str) -> None:
        self._many(
            "INSERT INTO org_members (org_id, member) VALUES (?,?) ON CONFLICT (org_id) DO NOTHING",
            [(org_id, member)],
        )
