"""The consortium's policies over time: the genesis file and every change since.

Version 0 is the policy file each member installed (``consortium_policy``). Each later
version is a :class:`~proofs.policy_change.PolicyChange` that came on the ordering
stream, signed by the quorum of the version it replaces, and was applied by every member
at the same place in the stream; it judges the checkpoints signed after it
(``from_height``), never the ones before. A member keeps the changes in its store and
verifies the whole chain again each time it loads it, so an edited row is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from proofs.policy import Policy, parse_policy
from proofs.policy_change import PolicyChange, verify_change

__all__ = ["PolicyHistory", "PolicyVersion"]


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: int
    text: str
    policy: Policy
    from_height: int  # the first checkpoint height this version judges
    change: PolicyChange | None = None  # None: the genesis policy


class PolicyHistory:
    def __init__(self, origin: str, genesis_text: str) -> None:
        self.origin = origin
        self.versions = [PolicyVersion(0, genesis_text, parse_policy(genesis_text), 0)]

    @property
    def latest(self) -> PolicyVersion:
        return self.versions[-1]

    def at(self, height: int | None) -> Policy:
        """The policy that judges checkpoint ``height`` (None: the latest)."""
        if height is None:
            return self.latest.policy
        for v in reversed(self.versions):
            if v.from_height <= height:
                return v.policy
        return self.versions[0].policy

    def check(self, change: PolicyChange) -> Policy:
        """The new policy if ``change`` validly follows the latest version; raise."""
        latest = self.latest
        return verify_change(latest.policy, latest.version, change, self.origin)

    def adopt(self, change: PolicyChange, from_height: int) -> PolicyVersion:
        version = PolicyVersion(change.version, change.policy, self.check(change), from_height,
                                change)  # fmt: skip
        self.versions.append(version)
        return version

    def changes(self) -> list[PolicyChange]:
        return [v.change for v in self.versions if v.change is not None]

    def all_logs(self) -> Iterable[Policy]:
        return (v.policy for v in self.versions)

    def load(self, rows: Iterable[tuple[int, str, int]]) -> None:
        """Adopt stored ``(version, change JSON, from_height)`` rows, each verified again."""
        for version, change_json, from_height in sorted(rows):
            change = PolicyChange.from_dict(json.loads(change_json))
            if change.version != version:
                raise ValueError(f"stored policy version {version} holds version {change.version}")
            self.adopt(change, from_height)
