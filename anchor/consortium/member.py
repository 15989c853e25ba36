"""A consortium member node: orders on the shared stream, applies it, cosigns, finalises.

Every member runs this in place of the local sequencer (:mod:`anchor.ordering.local`),
behind the same ``submit`` and ``checkpoint_now`` (docs/adr/0318):

1. **Accept.** A batch from one of this member's gateways has passed every check that
   needs no write (:meth:`Ingestor.check`); its request body is published on the stream
   with ``Nats-Msg-Id`` = the manifest hash, then a *cut* entry asks for a checkpoint.
2. **Apply.** Every member reads the stream in order from the position it stored and runs
   the same deterministic step on each entry: a batch is verified again from its bytes
   (signatures, enrolment, chain, root, asset ownership) and appended, or refused with a
   code every member computes alike; a cut signs a checkpoint of the tree so far (each
   member with its own log key, the same text); a registry entry changes who may speak
   (:mod:`anchor.consortium.registry_entries`). The stream position commits in the same
   transaction, so a member that is killed resumes exactly after what it applied.
3. **Cosign.** After a cut, the member asks every witness of the policy, itself included,
   to cosign its checkpoint with the C2SP tlog-witness protocol. A member cosigns only a
   checkpoint whose root is its own root at that size, after reviewing every entry since
   the last it cosigned against its own store (:meth:`MemberNode.review`).
4. **Finality.** When the cosignatures meet the policy's quorum the checkpoint is final;
   the member then answers its gateway with a receipt carrying that final checkpoint.

A gateway's receipt therefore means: durable on a majority of the stream's servers,
applied, and cosigned by a quorum. A batch whose finality takes longer than
``finality_timeout_s`` is answered with a coded 503; its resend (the same bytes, to any
member) is a no-op that returns the receipt once final.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from anchor.consortium import registry_entries
from anchor.consortium.checkpoints import CheckpointSigner, sign_checkpoint
from anchor.consortium.policies import PolicyVersion
from anchor.consortium.witness import SIZE_TYPE, Witness, WitnessError
from anchor.errors import AnchorError, LedgerCorrupt
from anchor.ingest.pipeline import Ingestor
from anchor.ledger import tree as log
from anchor.ledger.apply import IngestOutcome, LedgerApplier, Submission
from anchor.ledger.audit import verify_entry
from anchor.ledger.model import Checkpoint, StoredBatch
from anchor.ledger.ports import LedgerStore
from anchor.metrics import AnchorMetrics
from anchor.ordering.jetstream import OrderingStream, StreamEntry
from anchor.storage.health import StorageHealth
from proofs.errors import ProofsError
from proofs.note import Checkpoint as CheckpointText
from proofs.note import NoteSignature, SignedNote, verify_cosignature
from proofs.policy import Policy
from proofs.policy import Witness as PolicyWitness
from proofs.policy_change import PolicyChange

__all__ = ["APPLY_MAX_RECORDS", "ORG_HEADER", "ConsortiumSettings", "MemberNode"]

_log = logging.getLogger("coldtrail.anchor.consortium")

ORG_HEADER = "Coldtrail-Org"
# The apply step's limits are the protocol's, never a member's local settings: a member
# with a lower ingest limit must still apply what another member accepted, or the trees
# would part. A member's own ingest limits only decide what it accepts from its gateways.
APPLY_MAX_RECORDS = 100_000
APPLY_MAX_LOOKAHEAD = 1_000_000


class PeerTransport(Protocol):
    """How a member reaches the others (anchor.http.peers is the aiohttp one)."""

    async def post_text(self, url: str, body: bytes) -> tuple[int, str, str]:
        """``(status, content type, text)``; raise OSError when unreachable."""

    async def alert(self, url: str, payload: dict[str, Any], attempts: int = 5) -> bool: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ConsortiumSettings:
    policy: Policy  # the genesis policy, as the file says (anchor.consortium.policies)
    genesis_text: str
    me: PolicyWitness  # this member as the policy names it
    nats_urls: list[str]
    stream: str
    subject: str
    replicas: int
    finality_timeout_s: float
    review_wait_s: float = 10.0
    review_interval_s: float = 6 * 3600.0  # the whole store reviewed again this often
    recosign_every_s: float = 5.0  # a final checkpoint a member has not cosigned: ask again
    split_view_webhook: str = ""


class MemberNode:
    """The consortium sequencer of one member (see the module docstring)."""

    def __init__(
        self,
        ingestor: Ingestor,
        witness: Witness,
        settings: ConsortiumSettings,
        peers: PeerTransport,
    ) -> None:
        self.ingestor = ingestor
        self.store: LedgerStore = ingestor.store
        self.signer: CheckpointSigner = ingestor.signer
        self.metrics: AnchorMetrics = ingestor.metrics
        self.storage: StorageHealth = ingestor.storage
        self.witness = witness
        self.settings = settings
        assert self.signer.consortium is not None, "a member's signer holds its policies"
        self.policies = self.signer.consortium
        self.applier = LedgerApplier(
            self.store,
            self.signer,
            self.metrics,
            self.storage,
            max_batch_lookahead=APPLY_MAX_LOOKAHEAD,
        )
        self.stream: OrderingStream | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ledger-writer"
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._applied = 0  # the last stream seq applied
        self._applied_changed = asyncio.Event()
        self._final: Checkpoint | None = None
        self._final_changed = asyncio.Event()
        self._new_checkpoint = asyncio.Event()
        self._cut_wanted = asyncio.Event()
        self._refusals: collections.OrderedDict[int, AnchorError] = collections.OrderedDict()
        self._witness_sizes: dict[str, int] = {}  # what each witness last said it cosigned
        # Entries below ``_reviewed`` passed this member's review of its own store; it
        # cosigns nothing until the review at start has reached ``_review_target``.
        self._reviewed = 0
        self._review_target = 0
        self._review_lock = threading.Lock()
        self.refusing: str | None = None  # why this member stopped cosigning, if it did
        self.split_views_seen = 0
        self.peers = peers
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.stream = await OrderingStream.connect(
            s.nats_urls, s.stream, s.subject, replicas=s.replicas, name=s.me.name
        )
        position, final = await self.run_in_writer(self._load_state)
        self._applied = position
        self._final = final
        # Nothing is cosigned before the review of the store as it is now (review_store).
        self._review_target = await asyncio.to_thread(self.store.log_size)
        self.metrics.stream_applied.set(position)
        if final is not None:
            self.metrics.final_size.set(final.size)

    def _load_state(self) -> tuple[int, Checkpoint | None]:
        with self.store.transaction() as tx:
            position = tx.stream_position(self.settings.stream)
        cp = self.store.latest_checkpoint()
        while cp is not None and not cp.final:
            cp = self.store.checkpoint(cp.height - 1) if cp.height > 0 else None
        return position, cp

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for name, fn in (
            ("stream-apply", self._apply_loop),
            ("cosign", self._cosign_loop),
            ("cuts", self._cut_loop),
            ("store-review", self._review_loop),
        ):
            self._tasks.append(loop.create_task(fn(), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10.0)
        self._tasks.clear()
        if self.stream is not None:
            await self.stream.close()
        await self.peers.close()
        self._writer.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def run_in_writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    @property
    def applied(self) -> int:
        return self._applied

    def health(self) -> dict[str, Any]:
        """What /healthz reports of this member (and the explorer's node view)."""
        final = self._final
        return {
            "member": self.settings.me.name,
            "stream_applied": self._applied,
            "stream_connected": self.stream is not None and self.stream.connected,
            "final_size": None if final is None else final.size,
            "final_height": None if final is None else final.height,
            "reviewed": self._reviewed,
            "reviewing": self._reviewed < self._review_target,
            "cosigning": "refused" if self.refusing else "ok",
            "refusal": self.refusing,
            "split_views": self.split_views_seen,
        }

    @property
    def final(self) -> Checkpoint | None:
        return self._final

    # --- 1. accept -----------------------------------------------------------------

    async def submit(self, submission: Submission) -> IngestOutcome:
        """Order ``submission`` on the stream; its receipt once applied and final."""
        stream = self._require_stream()
        created = False
        if submission.batch is not None:
            seq, duplicate = await stream.publish(
                "batch", submission.body, submission.manifest_hash, self.settings.me.name,
                headers={ORG_HEADER: submission.org_id},
            )  # fmt: skip
            self._cut_wanted.set()
            await self._wait_applied(seq)
            refusal = await self._refusal(seq)
            if refusal is not None:
                raise refusal
            created = not duplicate
        batch = await asyncio.to_thread(
            self.store.batch_by_seq, submission.manifest.gw, submission.manifest.batch_seq
        )
        if batch is None:
            # Accepted by no entry yet: a resend whose first copy is still on its way.
            raise AnchorError(
                "unavailable", "the batch is ordered but not yet applied", retry_after_s=2
            )
        if batch.manifest_hash != submission.manifest_hash:
            raise AnchorError(
                "batch-replay",
                f"batch_seq {batch.batch_seq} of {batch.gw} is already used by another manifest",
            )
        if batch.receipt_json is not None:
            return IngestOutcome(False, batch.receipt_json, batch.leaf_index)
        final = await self._wait_final(batch.leaf_index)
        outcome: IngestOutcome = await self.run_in_writer(self._receipt, batch, created, final)
        if outcome.created:
            self.metrics.batches_accepted.inc()
        return outcome

    def _receipt(self, batch: StoredBatch, created: bool, final: Checkpoint) -> IngestOutcome:
        with self.store.transaction() as tx:
            return self.applier.receipt_for(tx, batch.leaf_index, created, final)

    async def request_cut(self) -> None:
        """Ask for a cut if the log grew past the latest checkpoint (or has none), without
        waiting for it: at start (a returning member may have a long backlog to apply
        first) and on the checkpoint interval (a member killed between publishing a batch
        and its cut leaves the log grown)."""
        latest = await asyncio.to_thread(self.store.latest_checkpoint)
        size = await asyncio.to_thread(self.store.log_size)
        if latest is None or latest.size < size:
            self._cut_wanted.set()

    async def checkpoint_now(self) -> Checkpoint:
        """Ask for a cut and return the latest checkpoint once this member applied it."""
        stream = self._require_stream()
        seq, _ = await stream.publish("cut", b"", f"cut-{uuid.uuid4().hex}", self.settings.me.name)
        await self._wait_applied(seq)
        cp = await asyncio.to_thread(self.store.latest_checkpoint)
        if cp is None:
            raise AnchorError("unavailable", "no checkpoint yet", retry_after_s=2)
        return cp

    async def publish_registry(self, entry: registry_entries.RegistryEntry) -> int:
        """Publish a registry change; its stream seq once this member has applied it."""
        stream = self._require_stream()
        seq, _ = await stream.publish(
            "registry", entry.to_bytes(), entry.msg_id(), self.settings.me.name
        )
        await self._wait_applied(seq)
        refusal = await self._refusal(seq)
        if refusal is not None:
            raise refusal
        return seq

    def _require_stream(self) -> OrderingStream:
        if self.stream is None or not self._tasks:
            raise AnchorError("unavailable", "the member is not running", retry_after_s=10)
        return self.stream

    async def _wait_applied(self, seq: int) -> None:
        deadline = time.monotonic() + self.settings.finality_timeout_s
        while self._applied < seq:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AnchorError(
                    "unavailable", "the batch is ordered but this member has not applied it yet",
                    retry_after_s=5,
                )  # fmt: skip
            self._applied_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied_changed.wait(), min(left, 1.0))

    async def _wait_final(self, leaf_index: int) -> Checkpoint:
        deadline = time.monotonic() + self.settings.finality_timeout_s
        while self._final is None or self._final.size <= leaf_index:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AnchorError(
                    "unavailable",
                    "the batch is ordered and applied; its checkpoint is not yet cosigned by"
                    " the policy's quorum of members. Send it again to get the receipt",
                    retry_after_s=5,
                )
            self._final_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._final_changed.wait(), min(left, 1.0))
        return self._final

    async def _refusal(self, seq: int) -> AnchorError | None:
        if seq in self._refusals:
            return self._refusals[seq]

        def read() -> tuple[str, str, str] | None:
            with self.store.transaction() as tx:
                return tx.stream_refusal(seq)

        row = await self.run_in_writer(read)
        return None if row is None else AnchorError(row[1], row[2])

    # --- 2. apply ------------------------------------------------------------------

    async def _apply_loop(self) -> None:
        stream = self._require_stream()
        while True:
            try:
                async for entries in stream.entries(self._applied):
                    await self._apply_entries(entries)
            except asyncio.CancelledError:
                raise
            except Exception:  # a commit failed: read again from the stored position
                _log.exception("applying the stream failed; resuming from the stored position")
                position = await self.run_in_writer(self._stored_position)
                self._applied = position
                await asyncio.sleep(1.0)

    def _stored_position(self) -> int:
        with self.store.transaction() as tx:
            return tx.stream_position(self.settings.stream)

    async def _apply_entries(self, entries: list[StreamEntry]) -> None:
        """Apply consecutive entries: each run of batches and cuts in one transaction
        (a returning member catches up with one fsync per fetched run, not per entry);
        registry and policy entries on their own, in order."""
        run: list[StreamEntry] = []
        for entry in entries:
            if entry.kind in ("batch", "cut"):
                run.append(entry)
                continue
            if run:
                await self._apply_run(run)
                run = []
            await self._apply_other(entry)
        if run:
            await self._apply_run(run)

    async def _check_entry(self, entry: StreamEntry) -> Submission | AnchorError:
        org = entry.headers.get(ORG_HEADER, "")
        try:
            checked = await self.ingestor.check(
                org, entry.data, entry.timestamp_ms, APPLY_MAX_RECORDS, early_chain=False
            )
        except AnchorError as e:
            return e
        except Exception as e:  # garbage on the stream is refused, never fatal
            return AnchorError("malformed", f"the stream entry is not a batch: {e}")
        if isinstance(checked, Submission):
            if checked.manifest_hash != entry.msg_id:
                return AnchorError("malformed", "the entry's id is not its manifest's hash")
            return checked
        _, manifest, manifest_hash = checked
        # The same batch again (a resend beyond the duplicate window): a no-op.
        return Submission(org, manifest, manifest_hash, None, [], b"")

    async def _apply_run(self, run: list[StreamEntry]) -> None:
        batches = [e for e in run if e.kind == "batch"]
        # The checks that need no write, for every batch of the run at once (signatures
        # in the verifier's worker processes); then the run in order, in one transaction.
        checked = dict(
            zip(
                (e.seq for e in batches),
                await asyncio.gather(*(self._check_entry(e) for e in batches)),
                strict=True,
            )
        )
        started = time.perf_counter()
        refused, signed = await self.run_in_writer(self._commit_run, run, checked)
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        self._applied_to(run[-1].seq, refused)
        if signed:
            self.metrics.checkpoints_signed.inc(signed)
            self._new_checkpoint.set()

    def _commit_run(
        self, run: list[StreamEntry], checked: dict[int, Submission | AnchorError]
    ) -> tuple[list[tuple[int, AnchorError]], int]:
        """Apply ``run`` in one transaction: the refused entries, checkpoints signed."""
        refused: list[tuple[int, AnchorError]] = []
        signed = 0
        with self.store.transaction() as tx:
            for entry in run:
                if entry.kind == "cut":
                    before = tx.latest_checkpoint()
                    cp = sign_checkpoint(tx, self.signer, entry.timestamp_ms)
                    signed += before is None or cp.height != before.height
                    continue
                c = checked[entry.seq]
                if isinstance(c, Submission):
                    try:
                        with tx.savepoint():
                            if c.batch is None:
                                existing = tx.batch_by_seq(c.manifest.gw, c.manifest.batch_seq)
                                if existing is None or existing.manifest_hash != c.manifest_hash:
                                    raise AnchorError("batch-replay", "the batch_seq is used")
                                continue
                            self.applier.apply_one(tx, c)
                            continue
                    except AnchorError as e:
                        c = e
                refused.append((entry.seq, c))
                tx.add_stream_refusal(entry.seq, entry.msg_id, c.code, c.detail)
            tx.set_stream_position(self.settings.stream, run[-1].seq)
            size = tx.log_size()
        self.storage.committed()
        self.metrics.log_size.set(size)
        return refused, signed

    def _applied_to(self, seq: int, refused: list[tuple[int, AnchorError]]) -> None:
        for s, e in refused:
            self._refusals[s] = e
            self.metrics.stream_refused.labels(e.code).inc()
            _log.info("stream entry %d refused by the apply step: %s", s, e)
        while len(self._refusals) > 10_000:
            self._refusals.popitem(last=False)
        self._applied = seq
        self.metrics.stream_applied.set(seq)
        self._applied_changed.set()

    async def _apply_other(self, entry: StreamEntry) -> None:
        refusal: AnchorError | None = None
        if entry.kind == "registry":
            try:
                reg = registry_entries.decode_entry(entry.data)
                await self.run_in_writer(
                    registry_entries.apply_entry, self.store, reg, list(self.policy.logs)
                )
            except AnchorError as e:
                refusal = e
        elif entry.kind == "policy":
            try:
                adopted = await self.run_in_writer(self._commit_policy, entry)
            except AnchorError as e:
                refusal = e
            else:
                self._applied_to(entry.seq, [])
                self._adopted(adopted)
                return
        else:
            refusal = AnchorError("malformed", f"unknown stream entry kind {entry.kind!r}")
        await self.run_in_writer(self._commit_position, entry, refusal)
        self._applied_to(entry.seq, [] if refusal is None else [(entry.seq, refusal)])

    @property
    def policy(self) -> Policy:
        """The policy in force (the latest version)."""
        return self.policies.latest.policy

    def _commit_policy(self, entry: StreamEntry) -> PolicyVersion:
        """Adopt a policy change signed by the quorum in force; it judges the checkpoints
        signed after this entry. Refused (for every member alike) otherwise."""
        try:
            change = PolicyChange.from_dict(json.loads(entry.data))
            self.policies.check(change)
        except (ValueError, ProofsError) as e:
            raise AnchorError("forbidden", f"the policy change is refused: {e}") from e
        with self.store.transaction() as tx:
            latest = tx.latest_checkpoint()
            from_height = 0 if latest is None else latest.height + 1
            tx.add_policy_change(change.version, json.dumps(change.to_dict()), from_height,
                                 entry.seq, entry.timestamp_ms)  # fmt: skip
            tx.set_stream_position(self.settings.stream, entry.seq)
        return self.policies.adopt(change, from_height)

    def _adopted(self, version: PolicyVersion) -> None:
        """Witness the logs of the new policy; say whether this member is still in it."""
        self.witness.set_logs(self.signer.origin, list(version.policy.logs))
        still = any(w.verifier == self.settings.me.verifier for w in version.policy.witnesses)
        _log.warning(
            "policy version %d in force from checkpoint %d: %s%s",
            version.version, version.from_height, "; ".join(version.policy.explain([])),
            "" if still else " (this member is no longer a witness of it)",
        )  # fmt: skip
        self._new_checkpoint.set()

    def _commit_position(self, entry: StreamEntry, refusal: AnchorError | None) -> None:
        with self.store.transaction() as tx:
            if refusal is not None:
                tx.add_stream_refusal(entry.seq, entry.msg_id, refusal.code, refusal.detail)
            tx.set_stream_position(self.settings.stream, entry.seq)

    async def _review_loop(self) -> None:
        # A returning member first catches up with the stream (it cannot cosign the
        # others' checkpoints before anyway), then reviews its store, then cosigns.
        await self._caught_up()
        while True:
            await asyncio.to_thread(self.review_store)
            await asyncio.sleep(self.settings.review_interval_s)

    async def _caught_up(self) -> None:
        stream = self._require_stream()
        while True:
            try:
                head = await stream.last_seq()
            except Exception:  # no stream leader right now: ask again
                head = None
            if head is not None and self._applied >= head:
                return
            await asyncio.sleep(1.0)

    async def _cut_loop(self) -> None:
        """Publish one cut after each burst of batches this member ordered."""
        stream = self._require_stream()
        while True:
            await self._cut_wanted.wait()
            self._cut_wanted.clear()
            try:
                await stream.publish("cut", b"", f"cut-{uuid.uuid4().hex}", self.settings.me.name)
            except AnchorError:
                _log.warning("a cut was not acknowledged; asking again")
                self._cut_wanted.set()
                await asyncio.sleep(1.0)

    # --- 3. cosign -------------------------------------------------------------------

    async def _cosign_loop(self) -> None:
        self._new_checkpoint.set()  # on start: finalise what is there
        while True:
            await self._new_checkpoint.wait()
            self._new_checkpoint.clear()
            try:
                state = await self._finalise_latest()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("gathering cosignatures failed; trying again")
                state = "pending"
            if state != "complete":
                # Ask again soon (a checkpoint not yet final), or now and then (a final
                # one a member has not cosigned: it may be back, and the explorer shows
                # each member's last cosignature), or as soon as a newer one is signed.
                wait = 1.0 if state == "pending" else self.settings.recosign_every_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_checkpoint.wait(), wait)
                self._new_checkpoint.set()

    async def _finalise_latest(self) -> str:
        """Gather cosignatures of the latest checkpoint: ``complete`` (every witness
        cosigned), ``final`` (the quorum did, some witness not yet) or ``pending``."""
        cp = await asyncio.to_thread(self.store.latest_checkpoint)
        if cp is None:
            return "complete"
        note = SignedNote.parse(cp.note)
        have = self._cosigners(note, cp.height)
        judge = self.policies.at(cp.height)
        wanted = [w for w in judge.witnesses if w.name not in have]
        if cp.final:
            self._set_final(cp)
            if not wanted:
                return "complete"
        sigs = await asyncio.gather(*(self._ask(w, cp, note) for w in wanted))
        added = 0
        for sig in sigs:
            if sig is not None:
                note = note.with_signature(sig)
                added += 1
        if not added:
            return "final" if cp.final else "pending"
        have = self._cosigners(note, cp.height)
        final = judge.satisfied(have)
        stored: Checkpoint = await self.run_in_writer(
            self._store_cosignatures, cp, note, have, final
        )
        if stored.final and not cp.final:
            self._set_final(stored)
            _log.info(
                "checkpoint %d (size %d) is final: cosigned by %s",
                stored.height, stored.size, ", ".join(sorted(have)),
            )  # fmt: skip
        if not stored.final:
            return "pending"
        return "complete" if len(have) == len(judge.witnesses) else "final"

    def _store_cosignatures(
        self, cp: Checkpoint, note: SignedNote, have: frozenset[str], final: bool
    ) -> Checkpoint:
        with self.store.transaction() as tx:
            return tx.set_cosignatures(cp.height, note.to_text(), len(have), final)

    def _set_final(self, cp: Checkpoint) -> None:
        if self._final is None or cp.size >= self._final.size:
            self._final = cp
            self.metrics.final_size.set(cp.size)
            self._final_changed.set()

    def _cosigners(self, note: SignedNote, height: int) -> frozenset[str]:
        return frozenset(self.signer.cosigners(note, height))

    async def _ask(
        self, w: PolicyWitness, cp: Checkpoint, note: SignedNote
    ) -> NoteSignature | None:
        """One witness's cosignature on ``cp`` (``None``: not now, logged)."""
        for _ in range(3):  # a 409 tells the size it has; try once more from there
            old = self._witness_sizes.get(w.name, 0)
            if old > cp.size:
                return None  # it has cosigned a larger tree: the next checkpoint asks
            proof = await asyncio.to_thread(self._proof, old, cp.size)
            body = "\n".join([f"old {old}", *(base64.b64encode(h).decode() for h in proof)])
            body += "\n\n" + cp.note
            try:
                status, ctype, text = await self._post(w, body.encode())
            except OSError as e:
                self.metrics.cosign_requests.labels(w.name, "unreachable").inc()
                _log.debug("witness %s unreachable: %s", w.name, e)
                return None
            if status == 409 and ctype.startswith(SIZE_TYPE):
                try:
                    self._witness_sizes[w.name] = int(text.strip())
                except ValueError:
                    return None
                self.metrics.cosign_requests.labels(w.name, "409").inc()
                continue
            if status != 200:
                self.metrics.cosign_requests.labels(w.name, str(status)).inc()
                # 503: behind, reviewing or refusing (it says why on its /healthz).
                (_log.debug if status == 503 else _log.warning)(
                    "witness %s did not cosign size %d: %d %s",
                    w.name, cp.size, status, text.strip()[:200],
                )  # fmt: skip
                return None
            self.metrics.cosign_requests.labels(w.name, "200").inc()
            for line in text.splitlines():
                try:
                    sig = NoteSignature.from_line(line)
                    verify_cosignature(note.text, sig, w.verifier)
                except ProofsError:
                    continue
                self._witness_sizes[w.name] = cp.size
                return sig
            _log.warning("witness %s answered without a valid cosignature", w.name)
            return None
        return None

    def _proof(self, old: int, new: int) -> list[bytes]:
        if old == 0 or old == new:
            return []
        return log.consistency_proof(old, new, self.store.get_node)

    async def _post(self, w: PolicyWitness, body: bytes) -> tuple[int, str, str]:
        if w.name == self.settings.me.name:
            try:
                text = await asyncio.to_thread(self.witness.add_checkpoint, body)
            except WitnessError as e:
                return e.status, e.content_type, e.text
            return 200, "text/plain", text
        if not w.url:
            return 0, "", "the policy gives this witness no URL"
        return await self.peers.post_text(w.url.rstrip("/") + "/add-checkpoint", body)

    # --- the witness's review: what this member checks before it cosigns --------------

    def review(self, cp: CheckpointText, note: str) -> None:
        """Raise :class:`WitnessError` unless this member's own verified log has ``cp``.

        Called by the witness (in a thread, before its write transaction) for the
        consortium's origin: waits for this member to apply the stream up to the size,
        compares roots (a different root at one size is a split view: both notes are
        kept as evidence), then re-checks every entry since the last one it reviewed
        against its own store. A failure of its own store stops it cosigning.
        """
        if cp.origin != self.signer.origin:
            return
        if self.refusing is not None:
            raise WitnessError(503, f"this member refuses to cosign: {self.refusing}\n")
        deadline = time.monotonic() + self.settings.review_wait_s
        while self.store.log_size() < cp.size:
            if time.monotonic() > deadline:
                raise WitnessError(
                    503, f"this member has applied {self.store.log_size()} entries, not yet"
                    f" {cp.size}; ask again\n",
                )  # fmt: skip
            time.sleep(0.02)
        own_root = log.root_at(cp.size, self.store.get_node)
        if own_root != cp.root:
            self.record_split_view(cp, note, own_root, "a member asked to cosign it")
            raise WitnessError(
                422, "the checkpoint's root is not this member's root at that size\n"
            )
        if self._reviewed < self._review_target:
            raise WitnessError(
                503, f"this member is reviewing its own store ({self._reviewed} of"
                f" {self._review_target} entries checked); ask again\n",
            )  # fmt: skip
        self.review_upto(cp.size)
        if self.refusing is not None:
            raise WitnessError(503, f"this member refuses to cosign: {self.refusing}\n")

    def review_upto(self, size: int) -> None:
        """Check the entries from the last one reviewed up to ``size`` (one reviewer at a
        time); a failure stops this member cosigning."""
        with self._review_lock:
            if self._check_range(self._reviewed, size):
                self._reviewed = max(self._reviewed, size)

    def _check_range(self, start: int, end: int) -> bool:
        """Whether stored entries ``[start, end)`` are what their signed bytes say."""
        try:
            for index in range(start, end):
                batch = self.store.batch(index)
                if batch is None:
                    raise LedgerCorrupt(f"log leaf {index} has no stored batch")
                verify_entry(self.store, index, batch, signatures=False)
        except (LedgerCorrupt, ProofsError, KeyError, ValueError) as e:
            self.stop_cosigning(f"its own store fails a check: {e}")
            return False
        return True

    def review_store(self, chunk: int = 500) -> None:
        """Review every stored entry from the first (at start, and periodically), in
        chunks so cosigning goes on between them: a row changed under the node (a bit
        flip, an edit) stops it cosigning. It cosigns nothing before the first review
        has reached the size the log had when it started."""
        size = self.store.log_size()
        with self._review_lock:
            self._review_target = max(self._review_target, size)
        done = 0
        while done < size and self.refusing is None:
            end = min(size, done + chunk)
            with self._review_lock:
                if not self._check_range(done, end):
                    return
                if self._reviewed < end <= self._review_target:
                    self._reviewed = end
            done = end
        _log.info("this member's own store passed its review (%d entries)", size)

    def stop_cosigning(self, why: str) -> None:
        if self.refusing is None:
            _log.error("this member stops cosigning: %s", why)
        self.refusing = why
        self.metrics.cosigning_refused.set(1)

    def record_split_view(
        self, cp: CheckpointText, note: str, own_root: bytes, source: str
    ) -> None:
        """Keep both signed views of one size, count it, log it, and tell the webhook."""
        own = self.store.checkpoint_covering(cp.size - 1) if cp.size else None
        own_note = (
            own.note
            if own is not None and own.size == cp.size
            else CheckpointText(cp.origin, cp.size, own_root).to_text()
        )
        with self.store.transaction() as tx:
            fresh = tx.add_split_view(cp.origin, cp.size, own_note, note, source,
                                      int(time.time() * 1000))  # fmt: skip
        if not fresh:
            return
        self.metrics.split_views.inc()
        self.split_views_seen += 1
        _log.error(
            "SPLIT VIEW of %s at size %d (%s): this member's root %s, the other %s",
            cp.origin, cp.size, source, own_root.hex(), cp.root.hex(),
        )  # fmt: skip
        if self.settings.split_view_webhook and self._loop is not None:
            payload = {
                "event": "split-view", "origin": cp.origin, "size": cp.size,
                "source": source, "notes": [own_note, note],
            }  # fmt: skip
            asyncio.run_coroutine_threadsafe(self._notify(payload), self._loop)

    async def _notify(self, payload: dict[str, Any]) -> None:
        if not await self.peers.alert(self.settings.split_view_webhook, payload):
            _log.error("the split-view webhook did not take the alert")
