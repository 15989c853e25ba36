"""C2SP tlog-policy: which logs to trust and which witness cosignatures make a quorum.

The text format (https://c2sp.org/tlog-policy) is line based::

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <name>...
    quorum <name>|none

Groups and the quorum may only name witnesses and groups defined on earlier lines
(so there are no cycles), every name is defined once, a group lists each member once
and ``1 <= k <= n``. Anything else is refused with a :class:`FormatError` whose code
says what, so a policy an auditor wrote can never be read more leniently than meant.

Names are compared as exact strings (the spec treats them as opaque octets; this
parser requires UTF-8, which every vkey name already is).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import FormatError, ProofsError
from .note import ALG_COSIGNATURE_V1, ALG_ED25519, NoteVerifier, SignedNote, verify_cosignature

__all__ = ["MAX_POLICY_BYTES", "Group", "Policy", "Witness", "parse_policy"]

NONE = "none"
MAX_POLICY_BYTES = 64 * 1024
# The spec asks implementations to support at least 32 of each; allow twice that.
_MAX_ENTRIES = 64
_KEYWORDS = ("log", "witness", "group", "quorum")


def _bad(line_no: int, message: str, code: str) -> FormatError:
    return FormatError(f"policy line {line_no}: {message}", code=code)


@dataclass(frozen=True, slots=True)
class Witness:
    name: str  # the policy's own name for it, not necessarily its key name
    verifier: NoteVerifier
    url: str | None = None

    def __post_init__(self) -> None:
        if self.verifier.alg != ALG_COSIGNATURE_V1:
            raise FormatError(
                f"witness {self.name} needs a tlog-cosignature/v1 (0x04) key", code="bad-vkey"
            )


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    threshold: int  # k: how many members must have witnessed
    members: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise FormatError(f"group {self.name} has no members", code="policy-empty-group")
        if len(set(self.members)) != len(self.members):
            raise FormatError(
                f"group {self.name} lists a member twice", code="policy-duplicate-member"
            )
        if not 1 <= self.threshold <= len(self.members):
            raise FormatError(
                f"group {self.name}: k={self.threshold} is not between 1 and {len(self.members)}",
                code="policy-bad-threshold",
            )


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed, consistent policy. Build one with :func:`parse_policy` or :meth:`pinned`."""

    logs: tuple[NoteVerifier, ...]
    witnesses: tuple[Witness, ...]
    groups: tuple[Group, ...]
    quorum: str  # a witness or group name, or "none"
    log_urls: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if len(self.log_urls) > len(self.logs):
            raise FormatError("more log URLs than logs", code="bad-policy")
        # One URL slot per log, so two equal policies compare equal however built.
        padded = (*self.log_urls, *[None] * (len(self.logs) - len(self.log_urls)))
        object.__setattr__(self, "log_urls", padded)
        if any(v.alg != ALG_ED25519 for v in self.logs):
            raise FormatError("log keys are Ed25519 (0x01) verifier keys", code="bad-vkey")
        _unique_keys([v.public_key.raw for v in self.logs], "log", "policy-duplicate-log")
        _unique_keys(
            [w.verifier.public_key.raw for w in self.witnesses],
            "witness",
            "policy-duplicate-witness",
        )
        defined: set[str] = set()
        for name in [w.name for w in self.witnesses]:
            if name == NONE or name in defined:
                raise FormatError(
                    f"the name {name!r} is defined twice", code="policy-duplicate-name"
                )
            defined.add(name)
        for g in self.groups:
            if g.name == NONE or g.name in defined:
                raise FormatError(
                    f"the name {g.name!r} is defined twice", code="policy-duplicate-name"
                )
            for m in g.members:
                if m not in defined:  # earlier definitions only: no cycles, no forward refs
                    raise FormatError(
                        f"group {g.name} names {m!r}, which is not defined before it",
                        code="policy-undefined-name",
                    )
            defined.add(g.name)
        if self.quorum != NONE and self.quorum not in defined:
            raise FormatError(
                f"the quorum names {self.quorum!r}, which is not defined",
                code="policy-undefined-name",
            )

    @classmethod
    def pinned(
        cls, log_vkeys: Sequence[str], cosigner_vkeys: Sequence[str], threshold: int
    ) -> Policy:
        """The policy ``--log-key``/``--cosigner``/``--quorum`` spell: k of the cosigners."""
        witnesses = tuple(
            Witness(v.name, v) for v in (NoteVerifier.from_vkey(c) for c in cosigner_vkeys)
        )
        logs = tuple(NoteVerifier.from_vkey(v) for v in log_vkeys)
        if not witnesses:
            if threshold:
                raise FormatError(
                    "a quorum of cosignatures needs pinned cosigners", code="bad-quorum"
                )
            return cls(logs, (), (), NONE)
        group = Group("pinned-cosigners", threshold, tuple(w.name for w in witnesses))
        return cls(logs, witnesses, (group,), group.name)

    @property
    def requires_cosignatures(self) -> bool:
        return self.quorum != NONE

    def witnessed(self, verified: Iterable[NoteVerifier]) -> frozenset[str]:
        """The policy names of the witnesses among ``verified`` (cosignatures that checked out)."""
        keys = set(verified)
        return frozenset(w.name for w in self.witnesses if w.verifier in keys)

    def cosigned(self, note: SignedNote) -> dict[str, int]:
        """The policy's witnesses whose tlog-cosignature/v1 on ``note`` verifies, each
        with the time it states (seconds since 1970), in policy order."""
        out: dict[str, int] = {}
        for w in self.witnesses:
            for sig in note.signatures:
                if sig.name != w.verifier.name or sig.key_id != w.verifier.key_id:
                    continue
                try:
                    out.setdefault(w.name, verify_cosignature(note.text, sig, w.verifier))
                except ProofsError:
                    continue
        return out

    def met(self, witnessed: Iterable[str]) -> dict[str, bool]:
        """Whether each witness and group has witnessed, given the witnesses that cosigned."""
        have = set(witnessed)
        state = {w.name: w.name in have for w in self.witnesses}
        for g in self.groups:  # in definition order, so members are already decided
            state[g.name] = sum(state[m] for m in g.members) >= g.threshold
        return state

    def satisfied(self, witnessed: Iterable[str]) -> bool:
        return self.quorum == NONE or self.met(witnessed)[self.quorum]

    def explain(self, witnessed: Iterable[str]) -> list[str]:
        """One line per group (and the quorum) saying who witnessed and whether it is met."""
        have = set(witnessed)
        state = self.met(have)
        lines = []
        for g in self.groups:
            yes = [m for m in g.members if state[m]]
            lines.append(
                f"group {g.name}: {g.threshold} of {len(g.members)} needed, "
                f"{len(yes)} witnessed ({', '.join(yes) or 'none'}): "
                f"{'met' if state[g.name] else 'NOT met'}"
            )
        if self.quorum == NONE:
            lines.append("quorum none: no cosignature required")
        else:
            lines.append(f"quorum {self.quorum}: {'met' if state[self.quorum] else 'NOT met'}")
        return lines

    def to_text(self) -> str:
        """The policy as tlog-policy text, parseable by :func:`parse_policy`."""
        out = [f"log {v.to_vkey()}" + (f" {u}" if u else "") for v, u in self._log_lines()]
        out += [f"witness {w.name} {w.verifier.to_vkey()}" + (f" {w.url}" if w.url else "")
                for w in self.witnesses]  # fmt: skip
        out += [f"group {g.name} {g.threshold} {' '.join(g.members)}" for g in self.groups]
        out.append(f"quorum {self.quorum}")
        return "\n".join(out) + "\n"

    def _log_lines(self) -> list[tuple[NoteVerifier, str | None]]:
        return list(zip(self.logs, self.log_urls, strict=True))


def _unique_keys(raws: list[bytes], what: str, code: str) -> None:
    # Two vkeys are duplicates if they wrap the same public key, whatever their names.
    if len(set(raws)) != len(raws):
        raise FormatError(f"two {what} lines have the same public key", code=code)


def _vkey(text: str, line_no: int) -> NoteVerifier:
    try:
        return NoteVerifier.from_vkey(text)
    except FormatError as e:
        raise _bad(line_no, e.message, e.code) from e


def parse_policy(data: str | bytes) -> Policy:
    """Parse C2SP tlog-policy text; raise :class:`FormatError` for anything not in the spec."""
    if isinstance(data, bytes):
        if len(data) > MAX_POLICY_BYTES:
            raise FormatError("a policy is at most 64 KiB", code="too-large")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError("this verifier reads UTF-8 policies", code="bad-policy") from e
    if len(data) > MAX_POLICY_BYTES:
        raise FormatError("a policy is at most 64 KiB", code="too-large")
    if any((ord(c) < 0x20 and c not in "\t\n") or ord(c) == 0x7F for c in data):
        raise FormatError(
            "a policy has no control characters but tab and newline", code="bad-policy"
        )
    logs: list[NoteVerifier] = []
    log_urls: list[str | None] = []
    witnesses: list[Witness] = []
    groups: list[Group] = []
    quorum: str | None = None
    for line_no, line in enumerate(data.split("\n"), start=1):
        fields = line.replace("\t", " ").split()
        if not fields or fields[0].startswith("#"):
            continue
        keyword, args = fields[0], fields[1:]
        if keyword not in _KEYWORDS:
            raise _bad(line_no, f"unknown keyword {keyword!r}", "policy-unknown-keyword")
        if quorum is not None and keyword == "quorum":
            raise _bad(line_no, "a policy has exactly one quorum line", "policy-duplicate-quorum")
        if keyword == "log":
            if len(args) not in (1, 2):
                raise _bad(line_no, "a log line is 'log <vkey> [<url>]'", "bad-policy")
            logs.append(_vkey(args[0], line_no))
            log_urls.append(args[1] if len(args) == 2 else None)
        elif keyword == "witness":
            if len(args) not in (2, 3):
                raise _bad(
                    line_no, "a witness line is 'witness <name> <vkey> [<url>]'", "bad-policy"
                )
            try:
                witnesses.append(
                    Witness(args[0], _vkey(args[1], line_no), args[2] if len(args) == 3 else None)
                )
            except FormatError as e:
                raise _bad(line_no, e.message, e.code) from e
        elif keyword == "group":
            groups.append(_group(args, line_no))
        else:
            if len(args) != 1:
                raise _bad(line_no, "a quorum line is 'quorum <name>'", "bad-policy")
            quorum = args[0]
        if max(len(logs), len(witnesses), len(groups)) > _MAX_ENTRIES:
            raise _bad(line_no, f"more than {_MAX_ENTRIES} entries of a kind", "too-large")
        try:
            # Check as we go, so an error names the line that caused it.
            Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum or NONE, tuple(log_urls))
        except FormatError as e:
            raise _bad(line_no, e.message, e.code) from e
    if quorum is None:
        raise FormatError("a policy needs a quorum line", code="policy-no-quorum")
    return Policy(tuple(logs), tuple(witnesses), tuple(groups), quorum, tuple(log_urls))


def _group(args: list[str], line_no: int) -> Group:
    if len(args) < 3:
        raise _bad(
            line_no, "a group line is 'group <name> all|any|<k> <member>...'", "policy-empty-group"
        )
    name, k_text, members = args[0], args[1], tuple(args[2:])
    if NONE in members:
        raise _bad(line_no, "'none' cannot be a group member", "policy-undefined-name")
    if k_text == "all":
        k = len(members)
    elif k_text == "any":
        k = 1
    elif (
        k_text.isascii()
        and k_text.isdigit()
        and len(k_text) <= 6
        and (k_text == "0" or not k_text.startswith("0"))
    ):
        k = int(k_text)
    else:
        raise _bad(
            line_no, f"threshold {k_text!r} is not all, any or a decimal", "policy-bad-threshold"
        )
    try:
        return Group(name, k, members)
    except FormatError as e:
        raise _bad(line_no, e.message, e.code) from e
