"""Checkpoints ("blocks"): C2SP tlog-checkpoints signed by the node key and
cosigned by consortium members under a quorum policy.

A checkpoint is signed by the log key after the transaction that appended its
leaves has committed, in a short transaction of its own that also stores the
receipts (:func:`sign_checkpoint`); nothing is acknowledged before both commit,
and a batch committed without its receipt gets one when it is sent again.
Cosignatures are gathered after that, outside any write transaction
(:func:`gather_cosignatures`): a slow or remote member never holds the ledger's
write lock (CONVENTIONS 14, docs/adr/0303). A member cosigns (tlog-cosignature/v1)
only after it has checked, for itself, that the new tree is consistent with the
last tree it cosigned and that every new leaf is a manifest signed by an enrolled
gateway key. Members sit behind the :class:`Cosigner` interface so a remote member
replaces the in-process one without touching the log.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass

from anchor.consortium.policies import PolicyHistory
from anchor.errors import LedgerCorrupt
from anchor.ledger import tree as log
from anchor.ledger.model import Checkpoint
from anchor.ledger.ports import LedgerStore, LedgerTx
from proofs.errors import ProofsError
from proofs.keys import PublicKey, SigningKey
from proofs.merkle import leaf_hash, verify_consistency
from proofs.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    cosign_checkpoint,
)
from proofs.note import Checkpoint as CheckpointText
from proofs.records import manifest_from_json, verify

_log = logging.getLogger("coldtrail.anchor.checkpoints")

# What a member reviews through: a write transaction or the store itself.
Reads = LedgerTx | LedgerStore

__all__ = [
    "CheckpointSigner",
    "Cosigner",
    "InProcessMember",
    "QuorumPolicy",
    "Reads",
    "gather_cosignatures",
    "sign_checkpoint",
]


@dataclass(frozen=True, slots=True)
class QuorumPolicy:
    """A checkpoint is final when ``threshold`` of the ``members`` have cosigned."""

    members: tuple[NoteVerifier, ...]
    threshold: int

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= len(self.members):
            raise ValueError("the quorum threshold must be between 0 and the number of members")
        if any(m.alg != ALG_COSIGNATURE_V1 for m in self.members):
            raise ValueError("member keys are tlog-cosignature/v1 (0x04) keys")

    def cosigners_of(self, note: SignedNote) -> list[str]:
        """Names of members whose cosignature on ``note`` verifies."""
        names: list[str] = []
        for sig in note.signatures:
            for member in self.members:
                if member.name == sig.name and member.key_id == sig.key_id:
                    try:
                        note.verify([member])
                    except ProofsError:
                        continue
                    names.append(member.name)
        return sorted(set(names))


class Cosigner(abc.ABC):
    """A consortium member asked to cosign a new checkpoint."""

    @property
    @abc.abstractmethod
    def verifier(self) -> NoteVerifier: ...

    @abc.abstractmethod
    def review_and_cosign(
        self, tx: Reads, previous: Checkpoint | None, checkpoint_text: str, now_s: int
    ) -> NoteSignature:
        """Check the entries since ``previous`` and return a cosignature, or raise."""


class InProcessMember(Cosigner):
    """This node's own member key: a consortium of one."""

    def __init__(self, name: str, key: SigningKey) -> None:
        self._signer = NoteSigner(name, key, ALG_COSIGNATURE_V1)

    @property
    def verifier(self) -> NoteVerifier:
        return self._signer.verifier

    def _last_cosigned(self, tx: Reads, latest: Checkpoint | None) -> Checkpoint | None:
        """The newest checkpoint this member cosigned (normally ``latest`` itself)."""
        verifier = self.verifier
        cp = latest
        while cp is not None:
            note = SignedNote.parse(cp.note)
            if any(
                s.name == verifier.name and s.key_id == verifier.key_id for s in note.signatures
            ):
                return cp
            cp = tx.checkpoint(cp.height - 1) if cp.height > 0 else None
        return None

    def review_and_cosign(
        self, tx: Reads, previous: Checkpoint | None, checkpoint_text: str, now_s: int
    ) -> NoteSignature:
        # Review from what *this member* last cosigned, so entries in a checkpoint it
        # refused are reviewed before it cosigns anything that contains them.
        previous = self._last_cosigned(tx, previous)
        new = CheckpointText.from_text(checkpoint_text)
        old_size = 0 if previous is None else previous.size
        if previous is not None and old_size > 0:
            proof = log.consistency_proof(old_size, new.size, tx.get_node)
            verify_consistency(old_size, new.size, proof, previous.root, new.root)
        if log.root_at(new.size, tx.get_node) != new.root:
            raise LedgerCorrupt(f"checkpoint root at size {new.size} is not the log's root")
        for index in range(old_size, new.size):
            batch = tx.batch(index)
            if batch is None:
                raise LedgerCorrupt(f"log leaf {index} has no manifest")
            manifest = manifest_from_json(batch.manifest_json)
            gateway = tx.gateway(manifest.gw)
            if gateway is None or gateway.key_id != manifest.key:
                raise LedgerCorrupt(f"log leaf {index}: gateway {manifest.gw} is not enrolled")
            verify(manifest, PublicKey.from_base64(gateway.public_key))
            if leaf_hash(batch.manifest_json) != tx.get_node(0, index):
                raise LedgerCorrupt(f"log leaf {index} is not its manifest's leaf hash")
        return cosign_checkpoint(checkpoint_text, self._signer, now_s)


class CheckpointSigner:
    """Signs checkpoints with the node's log key and gathers member cosignatures."""

    def __init__(
        self,
        origin: str,
        log_key: SigningKey,
        members: list[Cosigner],
        threshold: int,
        *,
        consortium: PolicyHistory | None = None,
    ) -> None:
        self.origin = origin
        self.log_key = log_key
        # A consortium's members cosign over the network (anchor.consortium.member) under
        # its tlog-policy: no checkpoint is final when it is signed.
        self.consortium = consortium
        self._note_signer = NoteSigner(origin, log_key, ALG_ED25519)
        self.members = members
        self.policy = QuorumPolicy(tuple(m.verifier for m in members), threshold)

    @property
    def log_verifier(self) -> NoteVerifier:
        return self._note_signer.verifier

    @property
    def registry_keys(self) -> list[PublicKey]:
        """The keys registry rows may be signed with: this node's log key, and in a
        consortium the key of every member any of its policies named
        (anchor.consortium.registry_entries)."""
        if self.consortium is None:
            return [self.log_key.public_key]
        keys = {v.public_key.raw: v.public_key for p in self.consortium.all_logs() for v in p.logs}
        return list(keys.values())

    def cosigners(self, note: SignedNote, height: int | None = None) -> list[str]:
        """Names of the members whose cosignature on ``note`` verifies (in a consortium,
        under the policy that judges checkpoint ``height``; None: the latest)."""
        if self.consortium is None:
            return self.policy.cosigners_of(note)
        return sorted(self.consortium.at(height).cosigned(note))

    def is_final(self, cosigners: list[str], height: int | None = None) -> bool:
        if self.consortium is None:
            return len(cosigners) >= self.policy.threshold
        return self.consortium.at(height).satisfied(cosigners)

    @property
    def log_vkey(self) -> str:
        return self.log_verifier.to_vkey()

    @property
    def member_vkeys(self) -> list[str]:
        if self.consortium is not None:
            return [w.verifier.to_vkey() for w in self.consortium.latest.policy.witnesses]
        return [m.verifier.to_vkey() for m in self.members]

    @property
    def bundle_quorum(self) -> int:
        """The k of "k of :attr:`member_vkeys`" bundles state. A consortium's policy
        whose quorum is one group of its witnesses is exactly that; any other shape is
        stated as all of them (never weaker than the policy; auditors pin the policy
        itself with ``coldtrail-verify --policy``)."""
        if self.consortium is None:
            return self.policy.threshold
        c = self.consortium.latest.policy
        group = next((g for g in c.groups if g.name == c.quorum), None)
        names = {w.name for w in c.witnesses}
        if group is not None and set(group.members) == names:
            return group.threshold
        return len(c.witnesses)


def sign_checkpoint(
    tx: LedgerTx, signer: CheckpointSigner, now_ms: int | None = None
) -> Checkpoint:
    """Log-sign a checkpoint of the current log in ``tx`` (reuse the latest if it is
    current). It carries no cosignature yet: :func:`gather_cosignatures` asks the
    members once this has committed."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    size = tx.log_size()
    latest = tx.latest_checkpoint()
    if latest is not None and latest.size == size:
        return latest
    root = log.root_at(size, tx.get_node)
    text = CheckpointText(signer.origin, size, root).to_text()
    note = SignedNote.sign(text, signer._note_signer)
    final = signer.is_final([])
    return tx.add_checkpoint(size, root, note.to_text(), now_ms, 0, final)


def gather_cosignatures(
    store: LedgerStore, signer: CheckpointSigner, now_ms: int | None = None
) -> Checkpoint | None:
    """Ask each member that has not cosigned the latest checkpoint to review and cosign
    it, outside any write transaction; store what they signed in a short one.

    A member that refuses leaves the checkpoint unfinalised, never unsigned: the log
    signature alone already commits the node to the tree. Called after every commit
    that signed a checkpoint and on the checkpoint interval, so a member that was
    down or refused is asked again.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    latest = store.latest_checkpoint()
    if latest is None:
        return None
    note = SignedNote.parse(latest.note)
    have = set(signer.policy.cosigners_of(note))
    previous = store.checkpoint(latest.height - 1) if latest.height > 0 else None
    added = 0
    for member in signer.members:
        if member.verifier.name in have:
            continue
        try:
            sig = member.review_and_cosign(store, previous, note.text, now_ms // 1000)
        except (ProofsError, LedgerCorrupt, KeyError) as e:
            _log.warning(
                "member %s refused to cosign size %d: %s", member.verifier.name, latest.size, e
            )
            continue
        note = note.with_signature(sig)
        added += 1
    if not added:
        return latest
    cosigners = signer.policy.cosigners_of(note)
    final = len(cosigners) >= signer.policy.threshold
    with store.transaction() as tx:
        return tx.set_cosignatures(latest.height, note.to_text(), len(cosigners), final)
