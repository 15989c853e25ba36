"""A C2SP tlog-witness: ``POST /witness/add-checkpoint`` cosigns the logs this node trusts.

https://c2sp.org/tlog-witness. A log (another member's node, or any C2SP log) sends
its new checkpoint with the size of the last one this witness cosigned and a consistency
proof from it. The witness checks the log's signature, that the old size is what it
recorded (else ``409`` with the size it has, ``text/x.tlog.size``), that the proof takes
the recorded root to the new one (else ``422``), records the new checkpoint and answers
with a tlog-cosignature/v1 line by this node's cosigning key. Checking the recorded size
and storing the new one happen in one write transaction of the ledger store, so two
concurrent requests can never roll the record back.

This is the protocol half of a consortium member's cosignature; verifying every entry
before cosigning (issue 11) builds on it. Pure over a :class:`WitnessRecords` port.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from proofs.errors import ProofsError
from proofs.merkle import verify_consistency
from proofs.note import Checkpoint, NoteSigner, NoteVerifier, SignedNote, cosign_checkpoint

__all__ = [
    "AddCheckpoint",
    "Witness",
    "WitnessError",
    "WitnessRecords",
    "WitnessTx",
    "parse_add_checkpoint",
]

MAX_BODY = 64 * 1024
MAX_PROOF_LINES = 63
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")
SIZE_TYPE = "text/x.tlog.size"
_log = logging.getLogger("coldtrail.anchor.witness")


class WitnessError(Exception):
    """A refusal with the status and body the spec prescribes."""

    def __init__(self, status: int, text: str, content_type: str = "text/plain") -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.content_type = content_type


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: str  # the signed checkpoint, as sent


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """The request body: ``old N``, up to 63 base64 hashes, an empty line, a checkpoint."""
    if len(body) > MAX_BODY:
        raise WitnessError(400, f"the request is over {MAX_BODY} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WitnessError(400, "the request is not UTF-8") from e
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise WitnessError(400, "no empty line before the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise WitnessError(400, "the first line is 'old <size>' (decimal, no leading zeros)")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessError(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as e:
            raise WitnessError(400, "a proof line is not base64") from e
        if len(h) != 32:
            raise WitnessError(400, "a proof line is not a 32-byte hash")
        proof.append(h)
    return AddCheckpoint(int(match.group(1)), tuple(proof), note)


class WitnessRecords(Protocol):
    """The latest cosigned checkpoint per origin, read and replaced atomically."""

    def transaction(self) -> contextlib.AbstractContextManager[WitnessTx]: ...


class WitnessTx(Protocol):
    def witnessed(self, origin: str) -> tuple[int, bytes] | None: ...

    def set_witnessed(self, origin: str, size: int, root: bytes, note: str, at: int) -> None: ...


class Witness:
    def __init__(
        self,
        logs: Sequence[NoteVerifier],
        key: NoteSigner,
        records: WitnessRecords,
        clock: Callable[[], float],
        review: Callable[[Checkpoint, str], None] | None = None,
    ) -> None:
        self.logs: dict[str, list[NoteVerifier]] = {}
        for v in logs:
            self.logs.setdefault(v.name, []).append(v)
        self.key = key
        self.records = records
        self.clock = clock
        # A consortium member's own checks of the log before it cosigns
        # (MemberNode.review); it may wait, so it runs before the write transaction.
        self.review = review

    def set_logs(self, origin: str, verifiers: Sequence[NoteVerifier]) -> None:
        """Witness ``origin`` with these keys from now on (a consortium's policy changed)."""
        self.logs[origin] = [v for v in verifiers if v.name == origin]

    def add_checkpoint(self, body: bytes) -> str:
        """The cosignature lines for a valid request; raise :class:`WitnessError`."""
        req = parse_add_checkpoint(body)
        try:
            note = SignedNote.parse(req.note)
            checkpoint = Checkpoint.from_text(note.text)
        except ProofsError as e:
            raise WitnessError(400, f"not a checkpoint: {e}") from e
        verifiers = self.logs.get(checkpoint.origin)
        if not verifiers:
            raise WitnessError(404, f"unknown log origin {checkpoint.origin!r}")
        try:
            note.verify(verifiers)
        except ProofsError as e:
            raise WitnessError(403, "no valid signature by the log's key") from e
        if req.old_size > checkpoint.size:
            raise WitnessError(400, "the old size is larger than the checkpoint's")
        if self.review is not None:
            self.review(checkpoint, req.note)
        with self.records.transaction() as tx:
            size, root = tx.witnessed(checkpoint.origin) or (0, b"")
            if req.old_size != size:
                raise WitnessError(409, f"{size}\n", SIZE_TYPE)
            self._check_consistency(req, checkpoint, root)
            now = self.clock()
            tx.set_witnessed(
                checkpoint.origin, checkpoint.size, checkpoint.root, req.note, int(now * 1000)
            )
        return cosign_checkpoint(note.text, self.key, int(now)).to_line()

    @staticmethod
    def _check_consistency(req: AddCheckpoint, cp: Checkpoint, root: bytes) -> None:
        if req.old_size == 0:
            if req.proof:
                raise WitnessError(422, "a proof from size 0 is empty")
            return
        if req.old_size == cp.size:
            if req.proof:
                raise WitnessError(422, "a proof between equal sizes is empty")
            if cp.root != root:
                # Two signed checkpoints of one size with different roots: a split view.
                _log.warning("split view of %s at size %d: %s", cp.origin, cp.size, req.note)
                raise WitnessError(409, f"{req.old_size}\n", SIZE_TYPE)
            return
        try:
            verify_consistency(req.old_size, cp.size, list(req.proof), root, cp.root)
        except ProofsError as e:
            raise WitnessError(422, "the consistency proof does not verify") from e
