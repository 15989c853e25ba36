"""The power-cut-safe spool: SQLite in WAL mode, one writer thread, group commit.

Every operation runs as one explicit transaction on a dedicated thread that
owns the only write connection. Appends that queue up while a commit is in
flight are coalesced into the next transaction, so one fsync covers many
submits (docs/adr/0202). ``seq`` is allocated inside that transaction: a
record and the counter that numbered it become durable together or not at all,
so ``seq`` survives restarts without reuse or holes.

Disk budget (docs/adr/0203): when stored bytes exceed the budget, every
unbatched record is first sealed into batches, then the oldest unsent batches
lose their records (their small signed manifests stay and are sent with
``"evicted": true``), and a signed ``evicted`` gap record names the lost range.
Because eviction only ever drops whole sealed batches, ``seq`` never has a hole.
The manifests of evicted batches (about 0.5 KB each) are kept outside the budget:
the chain cannot skip them, and counting them would evict every new record once
a long outage had piled them up.

Free space (docs/adr/0213): the budget alone cannot protect a filesystem that
something else fills. Every append also checks the filesystem's free space
(``os.statvfs``) plus the free pages inside the spool file; below
``min_free_bytes`` it evicts the same way, with the same signed gaps. A write that
still hits SQLITE_FULL/ENOSPC never kills the daemon: the spool releases its
reserve file, restarts the WAL, and retries once, evicting first inside the
retried transaction so the freed pages take the new records. Records it still
cannot store are refused with code ``disk-full``, counted, and named by a signed
``disk-full`` gap in the next commit that succeeds.

Records leave the spool only in :meth:`Spool.confirm`, which the uplink calls
after the anchor's receipt verified (docs/adr/0204).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from proofs.merkle import leaf_hash
from proofs.records import Gap, Manifest, manifest_from_json

from .errors import SpoolError
from .manifests import ChainHead, build_manifest
from .observations import Delivery, RecordedDelivery
from .signer import Draft

__all__ = [
    "BATCH_OVERHEAD_BYTES",
    "EVICTION_REASONS",
    "RECORD_OVERHEAD_BYTES",
    "OutgoingBatch",
    "RecordSealer",
    "Refusal",
    "Spool",
    "SpoolReport",
    "SpoolStats",
    "clear_refusals",
    "read_spool_report",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# What a row costs beyond its JSON in SQLite's b-tree (key, header, cell pointer, page
# slack): counted so that the budget tracks the file size rather than the payload only.
RECORD_OVERHEAD_BYTES = 40
BATCH_OVERHEAD_BYTES = 120
_EVICT_TO_FRACTION = 0.9  # evict down to 90 % so a full spool does not evict on every commit
_RECEIPTS_KEPT = 1000
_WRITES = frozenset({"seal", "confirm", "refuse", "retry_refused", "mark_clean"})
_RECEIPTS_KEPT_LOW_SPACE = 16  # local copies only (the anchor keeps them): space goes first
_SQLITE_FULL = 13
_SQLITE_IOERR_SHMSIZE = 4874  # the -shm file could not be grown: ENOSPC as well
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# Why the spool evicted (label of coldtrail_spool_evictions_total), as the gap says it.
EVICTION_REASONS = ("budget", "disk-space", "disk-full")
# What the uplink reads of a batch (``Spool._outgoing``).
_OUT_COLS = (
    "batch_seq, first_seq, last_seq, closed_ms, manifest, evicted, state,"
    " refusal_status, refusal_code, refusal_detail, refused_ms"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,      -- the record's own seq: one row per seq, never reused
    t_ms INTEGER NOT NULL,        -- the record's wall clock, for the manifest's 'opened'
    stored_ms INTEGER NOT NULL,   -- when it became durable, for the uplink lag
    body BLOB NOT NULL            -- canonical signed JSON: exactly what is hashed and sent
);
CREATE TABLE IF NOT EXISTS batches (
    batch_seq INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    closed_ms INTEGER NOT NULL,
    manifest BLOB NOT NULL,
    evicted INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'refused')),
    refusal_status INTEGER,
    refusal_code TEXT,
    refusal_detail TEXT,
    refused_ms INTEGER
);
CREATE TABLE IF NOT EXISTS receipts (
    batch_seq INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    manifest BLOB NOT NULL,
    receipt BLOB NOT NULL
);
-- MQTT QoS 1 deliveries whose records are committed (docs/adr/0210): the newest per
-- packet id, so at most 65535 rows per broker session, written in the record commit.
CREATE TABLE IF NOT EXISTS mqtt_inflight (
    session TEXT NOT NULL,        -- client id @ broker host:port
    packet_id INTEGER NOT NULL,
    digest BLOB NOT NULL,         -- SHA-256 of topic NUL payload
    ordinal INTEGER NOT NULL,     -- 1, 2, 3 ... per session, in commit order
    committed_ms INTEGER NOT NULL,
    PRIMARY KEY (session, packet_id)
) WITHOUT ROWID;
"""


class RecordSealer(Protocol):
    """What the spool needs from the signer (``gateway.signer.Signer`` implements it)."""

    gw: str

    @property
    def key_id(self) -> str: ...

    def seal(self, draft: Draft, seq: int) -> bytes: ...

    def evicted_gap(
        self, seq: int, lost_from: int, lost_to: int, count: int, detail: str
    ) -> Gap: ...

    def spool_gap(
        self, seq: int, reason: str, count: int, detail: str, lost: tuple[int, int] | None = None
    ) -> Gap: ...

    def sign_manifest(self, manifest: Manifest) -> Manifest: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    code: str
    detail: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class OutgoingBatch:
    manifest: Manifest
    manifest_json: bytes
    records: tuple[bytes, ...]  # empty when evicted
    evicted: bool
    closed_ms: int
    refusal: Refusal | None


@dataclass(frozen=True, slots=True)
class SpoolStats:
    records: int = 0
    bytes: int = 0
    unbatched: int = 0
    batches: int = 0
    refused_batches: int = 0
    evicted_records_total: int = 0
    gaps_written_total: int = 0
    next_seq: int = 1
    oldest_unsent_ms: int | None = None
    last_receipt_ms: int | None = None
    # The filesystem under the spool (docs/adr/0213); the counters below count since start.
    disk_free_bytes: int | None = None
    min_free_bytes: int = 0
    disk_full: bool = False  # below min_free_bytes, or the last write found no space
    disk_errors_total: int = 0  # writes that failed for lack of space
    last_disk_error: str | None = None
    last_disk_error_ms: int | None = None
    refused_records_total: int = 0  # records a full disk refused (named by disk-full gaps)
    evicted_by_reason: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class SpoolReport:
    """What ``coldtrail-gateway status`` shows, read from the spool file alone."""

    gw: str
    stats: SpoolStats
    refusals: tuple[tuple[int, Refusal], ...]
    last_receipt_batch: int | None
    previous_run_clean: bool


@dataclass
class _Job:
    kind: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any] | None
    size: int = 0


@dataclass
class _Counters:
    records: int = 0
    bytes: int = 0
    unbatched: int = 0
    first_unbatched_stored_ms: int | None = None
    batches: int = 0
    refused: int = 0
    head_closed_ms: int | None = None
    evicted_total: int = 0
    kept_manifest_bytes: int = 0  # manifests of evicted batches: outside the budget
    gaps_total: int = 0
    next_seq: int = 1
    last_receipt_ms: int | None = None
    in_flight: int | None = None
    over_budget_warned: bool = False
    head: ChainHead = field(default_factory=ChainHead)
    sealed_through: int = 0
    evicted_budget: int = 0  # since this process started, by reason
    evicted_disk_space: int = 0
    evicted_disk_full: int = 0


@dataclass
class _Disk:
    """What the writer thread saw of the filesystem. Not rolled back with a transaction:
    a failed write is exactly what it records."""

    free_bytes: int | None = None
    errors_total: int = 0
    last_error: str | None = None
    last_error_ms: int | None = None
    last_write_full: bool = False
    refused_pending: int = 0  # refused records not yet named by a committed gap
    refused_since_ms: int | None = None
    refused_total: int = 0
    running_pending: bool = False  # meta 'running' could not be set at open (disk full)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Spool:
    """Async facade over the writer thread. Create with :meth:`Spool.open`."""

    def __init__(
        self,
        path: Path,
        sealer: RecordSealer,
        *,
        budget_bytes: int,
        batch_max_records: int,
        batch_max_bytes: int,
        commit_max_records: int = 5000,
        min_free_bytes: int = 0,
        reserve_bytes: int = 0,
    ) -> None:
        self.path = path
        self._sealer = sealer
        self._budget = budget_bytes
        self._min_free = min_free_bytes
        self._reserve_bytes = reserve_bytes
        self._reserve = path.with_name(path.name + ".reserve")
        self._disk = _Disk()
        self._page_size = 4096
        self._batch_max_records = batch_max_records
        self._batch_max_bytes = batch_max_bytes
        self._commit_max = commit_max_records
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock: BinaryIO | None = None
        self._c = _Counters()
        self._mqtt_last: dict[str, int] = {}  # session -> last ordinal (writer thread)
        # MQTT sessions whose connection saw a submit fail: their later submits fail too,
        # until the source reconnects (writer thread). Sources keep two submits in
        # flight, and committed deliveries must stay a prefix of the received ones.
        self._fenced: set[str] = set()
        # (seq, t_ms, size, leaf hash) of the records appended since open, unsealed from
        # _tail_at on: sealing a batch needs no re-read of its bodies (writer thread).
        self._tail: list[tuple[int, int, int, bytes]] = []
        self._tail_at = 0
        self._stats = SpoolStats()
        self.previous_run_clean = True
        self.records_added = asyncio.Event()
        self.batches_changed = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path,
        sealer: RecordSealer,
        *,
        budget_bytes: int,
        batch_max_records: int = 1000,
        batch_max_bytes: int = 4 * 1024 * 1024,
        commit_max_records: int = 5000,
        min_free_bytes: int = 0,
        reserve_bytes: int = 0,
    ) -> Spool:
        """``min_free_bytes``: evict when the filesystem has less free space (0: only
        on a write that finds it full); ``reserve_bytes``: size of the reserve file
        released when the disk is full (0: none). docs/adr/0213."""
        spool = cls(
            path,
            sealer,
            budget_bytes=budget_bytes,
            batch_max_records=batch_max_records,
            batch_max_bytes=batch_max_bytes,
            commit_max_records=commit_max_records,
            min_free_bytes=min_free_bytes,
            reserve_bytes=reserve_bytes,
        )
        spool._loop = asyncio.get_running_loop()
        spool._thread = threading.Thread(target=spool._run, name="spool-writer", daemon=True)
        spool._thread.start()
        try:
            await spool._call("open")
        except BaseException:
            await spool.close(clean=False)
            raise
        return spool

    async def close(self, *, clean: bool = True) -> None:
        """Stop the writer thread; ``clean`` records that this run ended on purpose."""
        if self._thread is None:
            return
        if clean and self._conn is not None:
            with contextlib.suppress(SpoolError):
                await self._call("mark_clean")
        self._jobs.put(_Job("stop", (), None))
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def __aenter__(self) -> Spool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(clean=exc[0] is None)

    # --- public operations ----------------------------------------------------

    @property
    def stats(self) -> SpoolStats:
        return self._stats

    @property
    def unbatched(self) -> int:
        return self._stats.unbatched

    @property
    def sealed_unsent(self) -> int:
        return self._stats.batches

    async def append(
        self, drafts: Sequence[Draft], deliveries: Sequence[Delivery] = ()
    ) -> tuple[int, int]:
        """Sign ``drafts`` with fresh seqs and commit them; return (first, last) seq.

        ``deliveries`` (MQTT QoS 1 messages the drafts came from, in receive order) are
        recorded in the same transaction (docs/adr/0210); with no drafts, only they are
        committed and (next_seq, next_seq - 1) is returned.
        Returns only after the transaction is durable (``synchronous=FULL``).
        """
        if not drafts and not deliveries:
            raise SpoolError("nothing to append", code="empty-append")
        result: tuple[int, int] = await self._call(
            "append", tuple(drafts), tuple(deliveries), size=len(drafts) + len(deliveries)
        )
        return result

    async def recorded_deliveries(
        self, session: str, packet_ids: Sequence[int]
    ) -> tuple[dict[int, RecordedDelivery], int]:
        """Committed deliveries of ``session`` for ``packet_ids``, and its last ordinal."""
        result: tuple[dict[int, RecordedDelivery], int] = await self._call(
            "recorded_deliveries", session, tuple(packet_ids)
        )
        return result

    async def seal_batch(self) -> Manifest | None:
        """Seal up to ``batch_max_records`` unbatched records into a signed manifest."""
        manifest: Manifest | None = await self._call("seal")
        return manifest

    async def head_batch(self, *, mark_in_flight: bool = True) -> OutgoingBatch | None:
        """The oldest unsent batch (chain order), protected from eviction while in flight."""
        batch: OutgoingBatch | None = await self._call("head", mark_in_flight)
        return batch

    async def next_batch(
        self, live_since_ms: int, *, mark_in_flight: bool = True
    ) -> OutgoingBatch | None:
        """The batch the uplink sends next: live first, then backfill (docs/adr/0310).

        A refusal of the whole gateway (HTTP 401/403: token, enrollment, revocation)
        holds everything until a person acts: that refused batch is returned. Else the
        newest pending batch when it closed at or after ``live_since_ms`` (live,
        newest first), else the oldest pending one (backfill, oldest first). Refused
        batches are skipped and kept; when only they are left, the oldest is returned
        (with its ``refusal``). The returned pending batch is protected from eviction
        while in flight.
        """
        batch: OutgoingBatch | None = await self._call("next", live_since_ms, mark_in_flight)
        return batch

    async def release(self) -> None:
        """The in-flight batch is no longer in flight (a send failed and will be retried)."""
        await self._call("release")

    async def confirm(self, batch_seq: int, receipt_json: bytes) -> None:
        """Delete a batch and its records. Call only after ``verify_receipt`` passed."""
        await self._call("confirm", batch_seq, receipt_json)

    async def refuse(self, batch_seq: int, status: int, code: str, detail: str) -> None:
        await self._call("refuse", batch_seq, status, code, detail)

    async def ping(self) -> None:
        """Round trip through the writer thread and the write lock (for the watchdog)."""
        await self._call("ping")

    async def retry_refused(self) -> int:
        count: int = await self._call("retry_refused")
        return count

    # --- plumbing -------------------------------------------------------------

    async def _call(self, kind: str, *args: Any, size: int = 0) -> Any:
        if self._thread is None:
            raise SpoolError("the spool is closed", code="spool-closed")
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put(_Job(kind, args, future, size))
        return await future

    def _resolve(self, job: _Job, result: Any = None, error: BaseException | None = None) -> None:
        fut = job.future
        if fut is None or self._loop is None:
            return

        def settle() -> None:
            if fut.cancelled():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop closed under us at shutdown
            self._loop.call_soon_threadsafe(settle)

    def _notify(self, event: asyncio.Event) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                self._loop.call_soon_threadsafe(event.set)

    def _run(self) -> None:
        carry: _Job | None = None
        while True:
            job = carry if carry is not None else self._jobs.get()
            carry = None
            if job.kind == "stop":
                break
            if job.kind != "append":
                self._run_one(job)
                continue
            group = [job]
            total = job.size
            # Group commit: everything already queued joins this transaction.
            while total < self._commit_max:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt.kind != "append":
                    carry = nxt  # runs right after this group, in queue order
                    break
                group.append(nxt)
                total += nxt.size
            self._append_group(group)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _run_one(self, job: _Job) -> None:
        handler: Callable[..., Any] = getattr(self, "_do_" + job.kind)
        if job.kind == "open":
            try:
                self._resolve(job, handler(*job.args))
            except Exception as e:
                self._resolve(job, error=e)
            return
        conn = self._require_conn()
        snapshot = _copy_counters(self._c)
        tail_mark = self._tail_mark()
        for attempt in (1, 2):
            try:
                conn.execute("BEGIN IMMEDIATE")
                catch_up = self._catch_up(conn)
                if job.kind in _WRITES:
                    runs = self._keep_headroom(conn, 0, full=attempt == 2)
                    self._write_eviction_gaps(
                        conn, runs, "disk-full" if attempt == 2 else "disk-space"
                    )
                result = handler(conn, *job.args)
                conn.execute("COMMIT")
            except Exception as e:
                self._rollback(conn, snapshot, tail_mark)
                if attempt == 1 and _is_disk_full(e):
                    self._on_disk_full(conn, e, job.kind)
                    continue  # once more, now with the reserve released and the WAL restarted
                if _is_disk_full(e):
                    self._publish()
                self._resolve(job, error=_as_spool_error(e))
                return
            break
        self._committed(catch_up)
        self._tail_compact()
        self._publish()
        self._resolve(job, result)

    def _rollback(
        self, conn: sqlite3.Connection, snapshot: _Counters, tail_mark: tuple[int, int]
    ) -> None:
        """Undo a failed transaction and what it changed in memory (a fresh copy of
        ``snapshot``: the transaction may be retried and fail again)."""
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        self._c = _copy_counters(snapshot)
        self._tail_rollback(tail_mark)

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolError("the spool is not open", code="spool-closed")
        return self._conn

    # --- transactions (writer thread only) ------------------------------------

    def _do_open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One writer per spool: a second daemon on the same file would allocate the same
        # seqs from its own counter. The lock dies with the process, even on kill -9.
        lock = open(self.path.with_name(self.path.name + ".lock"), "a+b")  # noqa: SIM115
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            lock.close()
            raise SpoolError(
                f"{self.path} is in use by another gateway process", code="spool-locked"
            ) from e
        self._lock = lock
        conn = _connect(self.path)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"{self.path}: cannot switch to WAL mode", code="no-wal")
            # FULL: in WAL mode this fsyncs the log on every commit, so a committed (and
            # therefore acknowledged) record survives a power cut. NORMAL would not (ADR 0202).
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA journal_size_limit = 16777216")
            if self._reserve_bytes:
                # What the WAL holds beyond the main file stays within the reserve, so
                # releasing the reserve always lets a checkpoint finish (docs/adr/0213).
                pages = max(64, self._reserve_bytes // 4096)
                conn.execute(f"PRAGMA wal_autocheckpoint = {min(pages, 1000)}")
            self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            meta = self._open_meta(conn)
        except Exception:
            conn.close()
            self._lock.close()
            self._lock = None
            raise
        self._conn = conn
        c = self._c
        c.next_seq = int(meta["next_seq"])
        c.head = ChainHead(int(meta["next_batch_seq"]), meta["prev_hash"])
        c.sealed_through = int(meta["sealed_through"])
        c.evicted_total = int(meta.get("evicted_total", "0"))
        last_receipt = meta.get("last_receipt_ms")
        c.last_receipt_ms = int(last_receipt) if last_receipt else None
        n, size = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM records"
        ).fetchone()
        c.records = n
        c.bytes = size + n * RECORD_OVERHEAD_BYTES
        c.unbatched = conn.execute(
            "SELECT COUNT(*) FROM records WHERE seq > ?", (c.sealed_through,)
        ).fetchone()[0]
        self._refresh_unbatched_head(conn)
        self._refresh_batches(conn, with_bytes=True)
        self._committed(False)
        self._publish()

    def _open_meta(self, conn: sqlite3.Connection) -> dict[str, str]:
        """Create or check the schema and mark the spool running. On a full disk an
        existing spool still opens: marking it running waits for the first write that
        finds space (a daemon that cannot start is a crash loop, docs/adr/0213)."""
        for attempt in (1, 2, 3):
            try:
                conn.execute("BEGIN IMMEDIATE" if attempt < 3 else "BEGIN")
                meta = self._open_tx(conn, mark_running=attempt < 3)
                conn.execute("COMMIT")
            except Exception as e:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if attempt < 3 and _is_disk_full(e):
                    if attempt == 1:
                        self._on_disk_full(conn, e, "open")
                    continue
                if _is_disk_full(e):
                    raise _as_spool_error(e) from e
                raise
            self._disk.running_pending = attempt == 3
            return meta
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_tx(self, conn: sqlite3.Connection, *, mark_running: bool) -> dict[str, str]:
        if mark_running:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        meta = dict(conn.execute("SELECT k, v FROM meta").fetchall())
        if not meta:
            if not mark_running:
                raise SpoolError(f"no room to create the spool {self.path}", code="disk-full")
            meta = {
                "schema": str(SCHEMA_VERSION),
                "gw": self._sealer.gw,
                "next_seq": "1",
                "next_batch_seq": "1",
                "prev_hash": ChainHead().prev_hash,
                "sealed_through": "0",
                "evicted_total": "0",
                "running": "0",
            }
            conn.executemany("INSERT INTO meta (k, v) VALUES (?, ?)", list(meta.items()))
        if meta.get("schema") != str(SCHEMA_VERSION):
            raise SpoolError(
                f"{self.path} has spool schema {meta.get('schema')}, this gateway reads"
                f" {SCHEMA_VERSION}",
                code="spool-schema",
            )
        if meta["gw"] != self._sealer.gw:
            # Never reset or mix: the records are signed as another gateway.
            raise SpoolError(
                f"{self.path} belongs to gateway {meta['gw']!r}, the config says"
                f" {self._sealer.gw!r}; restore the config or use another spool file",
                code="spool-gateway-mismatch",
            )
        self.previous_run_clean = meta.get("running") != "1"
        if mark_running:
            conn.execute("UPDATE meta SET v = '1' WHERE k = 'running'")
        return meta

    # --- a full filesystem (writer thread; docs/adr/0213) -----------------------

    def _free_bytes(self) -> int | None:
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _space_short(self, conn: sqlite3.Connection, adding: int) -> int:
        """Bytes to evict before storing ``adding`` more bytes (0: none).

        While the filesystem has ``min_free_bytes`` free, the file may grow. Below
        that it must not: new pages come from the file's free pages (left by receipted
        or evicted records), and when those run short the oldest unsent batches are
        evicted to make them, plus some slack so that not every commit evicts. The
        file cannot shrink without VACUUM (which needs free space itself), so free
        space on the filesystem is never what eviction restores; it protects it.
        """
        if not self._min_free:
            return 0
        free = self._free_bytes()
        if free is None or free - adding >= self._min_free:
            return 0
        pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        slack = max(64 * 1024, self._min_free // 10)
        return adding + slack - pages * self._page_size

    def _on_disk_full(self, conn: sqlite3.Connection, e: BaseException, what: str) -> None:
        """After a write found no space (outside any transaction): free what we can."""
        d = self._disk
        d.errors_total += 1
        d.last_error = f"{what}: {e}"
        d.last_error_ms = _now_ms()
        d.last_write_full = True
        released = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._reserve)
            released = True
        # A WAL that restarts from its beginning reuses the file's blocks: no new space.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(RESTART)")
        log.error(
            "spool: no space on the filesystem (%s: %s)%s; evicting oldest unsent data",
            what,
            e,
            f", released the {self._reserve_bytes}-byte reserve" if released else "",
        )

    def _keep_headroom(
        self, conn: sqlite3.Connection, adding: int, *, full: bool
    ) -> list[list[tuple[int, int, int, int]]]:
        """At the start of a write transaction: keep ``min_free_bytes`` of headroom (free
        space plus free pages in the file) for what it adds, evicting the oldest unsent
        batches first so that its new pages reuse theirs. A file that grows while the
        filesystem is full cannot be checkpointed, and then nothing can be written.
        ``full``: the same transaction just failed for lack of space. Returns the runs
        evicted; the caller names them once the transaction's own seqs are used."""
        short = self._space_short(conn, adding)
        if not full and short <= 0:
            return []
        # Old receipts go first: the anchor keeps them, these are local copies.
        conn.execute(
            "DELETE FROM receipts WHERE batch_seq NOT IN"
            " (SELECT batch_seq FROM receipts ORDER BY batch_seq DESC LIMIT ?)",
            (_RECEIPTS_KEPT_LOW_SPACE,),
        )
        need = max(short, adding + 64 * 1024) if full else short
        runs = self._evict(conn, need)
        evicted = sum(r[3] for run in runs for r in run)
        if full:
            self._c.evicted_disk_full += evicted
        else:
            self._c.evicted_disk_space += evicted
        return runs

    def _catch_up(self, conn: sqlite3.Connection) -> bool:
        """Inside a write transaction: what a full disk kept from being written."""
        if self._disk.running_pending:
            conn.execute("UPDATE meta SET v = '1' WHERE k = 'running'")
            return True
        return False

    def _committed(self, caught_up: bool) -> None:
        """After a commit: the disk took a write; keep the WAL and the reserve in shape."""
        d = self._disk
        d.last_write_full = False
        if caught_up:
            d.running_pending = False
        free = d.free_bytes = self._free_bytes()
        if free is None:
            return
        conn = self._require_conn()
        if self._min_free and free < self._min_free:
            # Low on space: checkpoint now so the next commit writes the WAL from its
            # start, reusing its blocks instead of growing it.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        elif self._reserve_bytes and free >= self._min_free + 2 * self._reserve_bytes:
            self._make_reserve()

    def _make_reserve(self) -> None:
        if self._reserve.exists():
            return
        try:
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, self._reserve_bytes)
            os.fsync(fd)
        except OSError as e:
            log.warning("spool: cannot keep a %d-byte reserve: %s", self._reserve_bytes, e)
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self._reserve)
            return
        os.close(fd)

    def _append_group(self, group: list[_Job]) -> None:
        conn = self._require_conn()
        c = self._c
        snapshot = _copy_counters(c)
        tail_mark = self._tail_mark()
        now = _now_ms()
        rows: list[tuple[int, int, int, bytes]] = []
        deliveries: list[Delivery] = []
        results: list[tuple[_Job, Any, BaseException | None]] = []
        seq = c.next_seq
        for job in group:
            first = seq
            job_rows = []
            fenced = self._fenced and {d.session for d in job.args[1]} & self._fenced
            if fenced:
                # An earlier submit of this MQTT connection failed: committing a later one
                # would leave a hole in what the broker must re-send (docs/adr/0210).
                results.append((job, None, _fence_error(fenced)))
                continue
            try:
                for draft in job.args[0]:
                    job_rows.append((seq, draft.t, now, self._sealer.seal(draft, seq)))
                    seq += 1
            except Exception as e:
                # This submit alone fails (its seqs are not used); the rest of the group commits.
                seq = first
                results.append((job, None, _as_spool_error(e)))
                self._fenced.update(d.session for d in job.args[1])
                continue
            rows.extend(job_rows)
            deliveries.extend(job.args[1])
            results.append((job, (first, seq - 1), None))
        mqtt_last = dict(self._mqtt_last)
        for attempt in (1, 2):
            try:
                conn.execute("BEGIN IMMEDIATE")
                catch_up = self._catch_up(conn)
                named = self._commit_rows(
                    conn, rows, deliveries, now, seq, evict_first=attempt == 2
                )
                conn.execute("COMMIT")
            except Exception as e:
                self._rollback(conn, snapshot, tail_mark)
                self._mqtt_last = dict(mqtt_last)
                if attempt == 1 and _is_disk_full(e):
                    # Once more, evicting first in the same transaction: the pages the
                    # oldest batches free take the new records (docs/adr/0213).
                    self._on_disk_full(conn, e, "append")
                    continue
                self._fail_group(results, rows, e)
                return
            break
        if named:
            self._disk.refused_pending = 0
            self._disk.refused_since_ms = None
        self._committed(catch_up)
        self._tail_compact()
        self._publish()
        for job, result, err in results:
            self._resolve(job, result, err)
        if rows:
            self._notify(self.records_added)

    def _commit_rows(
        self,
        conn: sqlite3.Connection,
        rows: list[tuple[int, int, int, bytes]],
        deliveries: list[Delivery],
        now: int,
        seq: int,
        *,
        evict_first: bool,
    ) -> bool:
        """The body of an append transaction; True when it named refused records."""
        c = self._c
        # Evict first, so that the new records reuse the freed pages; the gaps take seqs
        # after the new records, which were numbered before the transaction.
        size = sum(len(r[3]) + RECORD_OVERHEAD_BYTES for r in rows)
        runs = self._keep_headroom(conn, size, full=evict_first)
        if deliveries:
            self._record_deliveries(conn, deliveries, now)
        if rows:
            conn.executemany(
                "INSERT INTO records (seq, t_ms, stored_ms, body) VALUES (?, ?, ?, ?)", rows
            )
            self._tail.extend((r[0], r[1], len(r[3]), leaf_hash(r[3])) for r in rows)
            c.next_seq = seq
            conn.execute("UPDATE meta SET v = ? WHERE k = 'next_seq'", (str(seq),))
            if c.unbatched == 0:
                c.first_unbatched_stored_ms = now
            c.records += len(rows)
            c.unbatched += len(rows)
            c.bytes += sum(len(r[3]) + RECORD_OVERHEAD_BYTES for r in rows)
        self._write_eviction_gaps(conn, runs, "disk-full" if evict_first else "disk-space")
        named = self._name_refused(conn)
        if c.bytes - c.kept_manifest_bytes > self._budget:
            over = c.bytes - c.kept_manifest_bytes - int(self._budget * _EVICT_TO_FRACTION)
            runs = self._evict(conn, over)
            c.evicted_budget += sum(r[3] for run in runs for r in run)
            self._write_eviction_gaps(conn, runs, "budget")
        return named

    def _name_refused(self, conn: sqlite3.Connection) -> bool:
        """The signed ``disk-full`` gap for records refused since the last one."""
        d = self._disk
        if not d.refused_pending:
            return False
        since = d.refused_since_ms or _now_ms()
        gap = self._sealer.spool_gap(
            self._c.next_seq,
            "disk-full",
            d.refused_pending,
            f"{d.refused_pending} records could not be stored since {since} (ms):"
            " the spool's filesystem was full and nothing unsent was left to evict;"
            " sources that resend (MQTT QoS 1, serial retries) offered theirs again",
        )
        self._put_record(conn, gap)
        self._c.gaps_total += 1
        log.warning("spool: %d records refused on a full disk, gap seq %d", gap.count, gap.seq)
        return True

    def _fail_group(
        self,
        results: list[tuple[_Job, Any, BaseException | None]],
        rows: list[tuple[int, int, int, bytes]],
        e: BaseException,
    ) -> None:
        error = _as_spool_error(e)
        log.error("spool commit failed: %s", error)
        if _is_disk_full(e) and rows:
            disk = self._disk
            disk.refused_pending += len(rows)
            disk.refused_total += len(rows)
            if disk.refused_since_ms is None:
                disk.refused_since_ms = _now_ms()
            self._publish()
        for job, _result, _err in results:
            self._fenced.update(d.session for d in job.args[1])
            self._resolve(job, error=error)

    def _last_ordinal(self, conn: sqlite3.Connection, session: str) -> int:
        last = self._mqtt_last.get(session)
        if last is None:
            row = conn.execute(
                "SELECT COALESCE(MAX(ordinal), 0) FROM mqtt_inflight WHERE session = ?",
                (session,),
            ).fetchone()
            last = self._mqtt_last[session] = int(row[0])
        return last

    def _record_deliveries(
        self, conn: sqlite3.Connection, deliveries: list[Delivery], now: int
    ) -> None:
        """One row per (session, packet id): a newer message with the id replaces it."""
        rows = []
        for d in deliveries:
            ordinal = self._last_ordinal(conn, d.session) + 1
            self._mqtt_last[d.session] = ordinal
            rows.append((d.session, d.packet_id, d.digest, ordinal, now))
        conn.executemany(
            "INSERT OR REPLACE INTO mqtt_inflight"
            " (session, packet_id, digest, ordinal, committed_ms) VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def _do_recorded_deliveries(
        self, conn: sqlite3.Connection, session: str, packet_ids: tuple[int, ...]
    ) -> tuple[dict[int, RecordedDelivery], int]:
        if not packet_ids:
            # A source asks with no packet ids when a connection starts (docs/adr/0210):
            # the failed submits of the connection before are re-sent by the broker now.
            self._fenced.discard(session)
        found: dict[int, RecordedDelivery] = {}
        for packet_id in dict.fromkeys(packet_ids):
            row = conn.execute(
                "SELECT digest, ordinal FROM mqtt_inflight WHERE session = ? AND packet_id = ?",
                (session, packet_id),
            ).fetchone()
            if row is not None:
                found[packet_id] = RecordedDelivery(bytes(row[0]), int(row[1]))
        return found, self._last_ordinal(conn, session)

    def _put_record(self, conn: sqlite3.Connection, record: Gap) -> None:
        body = record.to_json()
        now = _now_ms()
        conn.execute(
            "INSERT INTO records (seq, t_ms, stored_ms, body) VALUES (?, ?, ?, ?)",
            (record.seq, record.t, now, body),
        )
        self._tail.append((record.seq, record.t, len(body), leaf_hash(body)))
        c = self._c
        c.next_seq = record.seq + 1
        conn.execute("UPDATE meta SET v = ? WHERE k = 'next_seq'", (str(c.next_seq),))
        if c.unbatched == 0:
            c.first_unbatched_stored_ms = now
        c.records += 1
        c.unbatched += 1
        c.bytes += len(body) + RECORD_OVERHEAD_BYTES

    # --- the in-memory tail of unsealed records (writer thread) -----------------

    def _tail_mark(self) -> tuple[int, int]:
        return len(self._tail), self._tail_at

    def _tail_rollback(self, mark: tuple[int, int]) -> None:
        del self._tail[mark[0] :]
        self._tail_at = mark[1]

    def _tail_compact(self) -> None:
        if self._tail_at > 4096:
            del self._tail[: self._tail_at]
            self._tail_at = 0

    def _unsealed(self, conn: sqlite3.Connection) -> list[tuple[int, int, int, bytes]]:
        """The next records to seal: from memory when it holds every unsealed record
        (always, once the records left unsealed by an earlier run are sealed)."""
        c = self._c
        tail, at = self._tail, self._tail_at
        if at < len(tail) and tail[at][0] == c.sealed_through + 1:
            return tail[at : at + self._batch_max_records]
        rows = conn.execute(
            "SELECT seq, t_ms, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (c.sealed_through, self._batch_max_records),
        ).fetchall()
        return [(seq, t_ms, len(body), leaf_hash(body)) for seq, t_ms, body in rows]

    def _seal(self, conn: sqlite3.Connection) -> Manifest | None:
        c = self._c
        rows = self._unsealed(conn)
        if not rows:
            return None
        picked: list[tuple[int, int, int, bytes]] = []
        size = 0
        for row in rows:
            if picked and size + row[2] > self._batch_max_bytes:
                break
            picked.append(row)
            size += row[2] + 1
        seqs = [p[0] for p in picked]
        leaves = [p[3] for p in picked]
        opened = min(p[1] for p in picked)
        now = _now_ms()
        unsigned = build_manifest(
            self._sealer.gw, self._sealer.key_id, c.head, seqs, leaves, opened, now
        )
        manifest = self._sealer.sign_manifest(unsigned)
        manifest_json = manifest.to_json()
        conn.execute(
            "INSERT INTO batches (batch_seq, first_seq, last_seq, closed_ms, manifest)"
            " VALUES (?, ?, ?, ?, ?)",
            (manifest.batch_seq, manifest.first_seq, manifest.last_seq, now, manifest_json),
        )
        c.head = ChainHead(manifest.batch_seq + 1, manifest.hash_hex())
        c.sealed_through = manifest.last_seq
        tail = self._tail
        while self._tail_at < len(tail) and tail[self._tail_at][0] <= c.sealed_through:
            self._tail_at += 1
        conn.executemany(
            "UPDATE meta SET v = ? WHERE k = ?",
            [
                (str(c.head.next_batch_seq), "next_batch_seq"),
                (c.head.prev_hash, "prev_hash"),
                (str(c.sealed_through), "sealed_through"),
            ],
        )
        c.unbatched -= len(picked)
        c.bytes += len(manifest_json) + BATCH_OVERHEAD_BYTES
        c.batches += 1
        if c.head_closed_ms is None:
            c.head_closed_ms = now
        self._refresh_unbatched_head(conn)
        return manifest

    def _do_seal(self, conn: sqlite3.Connection) -> Manifest | None:
        manifest = self._seal(conn)
        if manifest is not None:
            self._notify(self.batches_changed)
        return manifest

    def _evict(
        self, conn: sqlite3.Connection, need_bytes: int
    ) -> list[list[tuple[int, int, int, int]]]:
        """Drop the records of the oldest unsent batches until ``need_bytes`` are freed.

        Returns the runs of consecutive evicted batches, (batch_seq, first, last, n)
        each; :meth:`_write_eviction_gaps` names them.
        """
        c = self._c
        while c.unbatched:
            if self._seal(conn) is None:
                break
        candidates = conn.execute(
            "SELECT batch_seq, first_seq, last_seq, LENGTH(manifest) FROM batches"
            " WHERE evicted = 0 AND state = 'pending' ORDER BY batch_seq"
        ).fetchall()
        runs: list[list[tuple[int, int, int, int]]] = []
        freed = 0
        for batch_seq, first, last, manifest_size in candidates:
            if freed >= need_bytes:
                break
            if batch_seq == c.in_flight:
                continue  # the anchor may be accepting it right now; it leaves by receipt
            n, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM records"
                " WHERE seq BETWEEN ? AND ?",
                (first, last),
            ).fetchone()
            conn.execute("DELETE FROM records WHERE seq BETWEEN ? AND ?", (first, last))
            conn.execute("UPDATE batches SET evicted = 1 WHERE batch_seq = ?", (batch_seq,))
            c.records -= n
            c.bytes -= size + n * RECORD_OVERHEAD_BYTES
            freed += size + n * RECORD_OVERHEAD_BYTES
            c.kept_manifest_bytes += manifest_size + BATCH_OVERHEAD_BYTES
            c.evicted_total += n
            if runs and runs[-1][-1][0] == batch_seq - 1:
                runs[-1].append((batch_seq, first, last, n))
            else:
                runs.append([(batch_seq, first, last, n)])
        if not runs:
            if not c.over_budget_warned:
                log.warning(
                    "spool needs %d bytes (budget %d, minimum free space %d) but holds"
                    " nothing evictable (refused or in-flight batches only); keeping everything",
                    need_bytes,
                    self._budget,
                    self._min_free,
                )
                c.over_budget_warned = True
            return runs
        c.over_budget_warned = False
        conn.execute("UPDATE meta SET v = ? WHERE k = 'evicted_total'", (str(c.evicted_total),))
        self._refresh_batches(conn)
        return runs

    def _write_eviction_gaps(
        self, conn: sqlite3.Connection, runs: list[list[tuple[int, int, int, int]]], reason: str
    ) -> None:
        """One signed ``evicted`` gap per run, saying which limit made room."""
        c = self._c
        why = {
            "budget": f"disk budget of {self._budget} bytes exceeded",
            "disk-space": f"free space on the spool's filesystem below {self._min_free} bytes",
            "disk-full": "the spool's filesystem was full",
        }[reason]
        for run in runs:
            lost_from, lost_to = run[0][1], run[-1][2]
            count = sum(r[3] for r in run)
            gap = self._sealer.evicted_gap(
                c.next_seq,
                lost_from,
                lost_to,
                count,
                f"{why}: records of batches {run[0][0]}..{run[-1][0]} dropped before they"
                " were anchored",
            )
            self._put_record(conn, gap)
            c.gaps_total += 1
            log.warning(
                "spool (%s): evicted records %d..%d (%d records), gap record seq %d",
                reason,
                lost_from,
                lost_to,
                count,
                gap.seq,
            )

    def _do_head(self, conn: sqlite3.Connection, mark_in_flight: bool) -> OutgoingBatch | None:
        row = conn.execute(
            f"SELECT {_OUT_COLS} FROM batches ORDER BY batch_seq LIMIT 1"  # noqa: S608
        ).fetchone()
        if row is None:
            return None
        return self._outgoing(conn, row, mark_in_flight)

    def _do_next(
        self, conn: sqlite3.Connection, live_since_ms: int, mark_in_flight: bool
    ) -> OutgoingBatch | None:
        def first(where: str, order: str) -> Any:
            return conn.execute(
                f"SELECT {_OUT_COLS} FROM batches WHERE {where}"  # noqa: S608
                f" ORDER BY batch_seq {order} LIMIT 1"
            ).fetchone()

        if self._c.refused:
            held = first("state = 'refused' AND refusal_status IN (401, 403)", "ASC")
            if held is not None:
                return self._outgoing(conn, held, False)
        row = first("state = 'pending'", "DESC")
        if row is not None and row[3] < live_since_ms:
            row = first("state = 'pending'", "ASC")  # no live batch: backfill, oldest first
        if row is None:
            refused = first("state = 'refused'", "ASC") if self._c.refused else None
            return None if refused is None else self._outgoing(conn, refused, False)
        return self._outgoing(conn, row, mark_in_flight)

    def _outgoing(self, conn: sqlite3.Connection, row: Any, mark_in_flight: bool) -> OutgoingBatch:
        batch_seq, first, last, closed_ms, manifest_json, evicted, state = row[:7]
        refusal = Refusal(row[7], row[8], row[9], row[10]) if state == "refused" else None
        bodies: tuple[bytes, ...] = ()
        if not evicted:
            bodies = tuple(
                r[0]
                for r in conn.execute(
                    "SELECT body FROM records WHERE seq BETWEEN ? AND ? ORDER BY seq",
                    (first, last),
                )
            )
            if len(bodies) != last - first + 1:
                raise SpoolError(
                    f"batch {batch_seq}: records {first}..{last} are incomplete in the spool",
                    code="spool-corrupt",
                )
        if mark_in_flight:
            self._c.in_flight = batch_seq
        return OutgoingBatch(
            manifest=manifest_from_json(manifest_json),
            manifest_json=bytes(manifest_json),
            records=bodies,
            evicted=bool(evicted),
            closed_ms=closed_ms,
            refusal=refusal,
        )

    def _do_release(self, conn: sqlite3.Connection) -> None:
        self._c.in_flight = None

    def _do_confirm(self, conn: sqlite3.Connection, batch_seq: int, receipt_json: bytes) -> None:
        c = self._c
        row = conn.execute(
            "SELECT first_seq, last_seq, manifest FROM batches WHERE batch_seq = ?", (batch_seq,)
        ).fetchone()
        if row is None:
            raise SpoolError(f"batch {batch_seq} is not in the spool", code="unknown-batch")
        first, last, manifest_json = row
        n, size = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM records"
            " WHERE seq BETWEEN ? AND ?",
            (first, last),
        ).fetchone()
        now = _now_ms()
        conn.execute("DELETE FROM records WHERE seq BETWEEN ? AND ?", (first, last))
        conn.execute("DELETE FROM batches WHERE batch_seq = ?", (batch_seq,))
        conn.execute(
            "INSERT OR REPLACE INTO receipts (batch_seq, received_ms, manifest, receipt)"
            " VALUES (?, ?, ?, ?)",
            (batch_seq, now, manifest_json, receipt_json),
        )
        d = self._disk
        low = d.last_write_full or (d.free_bytes is not None and d.free_bytes < self._min_free)
        kept = _RECEIPTS_KEPT_LOW_SPACE if low else _RECEIPTS_KEPT
        conn.execute("DELETE FROM receipts WHERE batch_seq <= ?", (batch_seq - kept,))
        conn.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('last_receipt_ms', ?)", (str(now),)
        )
        c.records -= n
        c.bytes -= size + n * RECORD_OVERHEAD_BYTES + len(manifest_json) + BATCH_OVERHEAD_BYTES
        c.last_receipt_ms = now
        if c.in_flight == batch_seq:
            c.in_flight = None
        self._refresh_batches(conn)
        self._notify(self.batches_changed)

    def _do_refuse(
        self, conn: sqlite3.Connection, batch_seq: int, status: int, code: str, detail: str
    ) -> None:
        conn.execute(
            "UPDATE batches SET state = 'refused', refusal_status = ?, refusal_code = ?,"
            " refusal_detail = ?, refused_ms = ? WHERE batch_seq = ?",
            (status, code, detail[:2000], _now_ms(), batch_seq),
        )
        if self._c.in_flight == batch_seq:
            self._c.in_flight = None
        self._refresh_batches(conn)

    def _do_retry_refused(self, conn: sqlite3.Connection) -> int:
        n = conn.execute("UPDATE batches SET state = 'pending' WHERE state = 'refused'").rowcount
        self._refresh_batches(conn)
        self._notify(self.batches_changed)
        return int(n)

    def _do_ping(self, conn: sqlite3.Connection) -> None:
        pass  # BEGIN IMMEDIATE / COMMIT around it is the check

    def _do_mark_clean(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE meta SET v = '0' WHERE k = 'running'")

    # --- counters -------------------------------------------------------------

    def _refresh_unbatched_head(self, conn: sqlite3.Connection) -> None:
        c = self._c
        row = conn.execute(
            "SELECT stored_ms FROM records WHERE seq > ? ORDER BY seq LIMIT 1",
            (c.sealed_through,),
        ).fetchone()
        c.first_unbatched_stored_ms = row[0] if row else None

    def _refresh_batches(self, conn: sqlite3.Connection, *, with_bytes: bool = False) -> None:
        c = self._c
        n, refused, head_closed, manifest_bytes, kept = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(state = 'refused'), 0), MIN(closed_ms),"
            " COALESCE(SUM(LENGTH(manifest)), 0),"
            " COALESCE(SUM(CASE WHEN evicted = 1 THEN LENGTH(manifest) + ? END), 0)"
            " FROM batches",
            (BATCH_OVERHEAD_BYTES,),
        ).fetchone()
        if with_bytes:
            c.bytes += manifest_bytes + n * BATCH_OVERHEAD_BYTES
        c.kept_manifest_bytes = kept
        c.batches, c.refused, c.head_closed_ms = n, refused, head_closed

    def _publish(self) -> None:
        c = self._c
        oldest = [m for m in (c.head_closed_ms, c.first_unbatched_stored_ms) if m is not None]
        self._stats = SpoolStats(
            records=c.records,
            bytes=c.bytes,
            unbatched=c.unbatched,
            batches=c.batches,
            refused_batches=c.refused,
            evicted_records_total=c.evicted_total,
            gaps_written_total=c.gaps_total,
            next_seq=c.next_seq,
            oldest_unsent_ms=min(oldest) if oldest else None,
            last_receipt_ms=c.last_receipt_ms,
            **self._disk_stats(),
        )

    def _disk_stats(self) -> dict[str, Any]:
        d, c = self._disk, self._c
        low = d.free_bytes is not None and d.free_bytes < self._min_free
        return {
            "disk_free_bytes": d.free_bytes,
            "min_free_bytes": self._min_free,
            "disk_full": d.last_write_full or low,
            "disk_errors_total": d.errors_total,
            "last_disk_error": d.last_error,
            "last_disk_error_ms": d.last_error_ms,
            "refused_records_total": d.refused_total,
            "evicted_by_reason": tuple(
                zip(
                    EVICTION_REASONS,
                    (c.evicted_budget, c.evicted_disk_space, c.evicted_disk_full),
                    strict=True,
                )
            ),
        }


def _is_disk_full(e: BaseException) -> bool:
    """SQLITE_FULL, "database or disk is full", or ENOSPC/EDQUOT from our own file I/O."""
    if isinstance(e, SpoolError):
        return e.code == "disk-full"
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF == _SQLITE_FULL or code == _SQLITE_IOERR_SHMSIZE):
            return True
        return "disk is full" in str(e)
    return isinstance(e, OSError) and e.errno in _NO_SPACE_ERRNOS


def _fence_error(sessions: set[str]) -> SpoolError:
    return SpoolError(
        f"an earlier submit of MQTT session {', '.join(sorted(sessions))} failed;"
        " the source must reconnect first",
        code="session-fenced",
    )


def _copy_counters(c: _Counters) -> _Counters:
    return _Counters(**{k: getattr(c, k) for k in c.__dataclass_fields__})


def _as_spool_error(e: BaseException) -> SpoolError:
    if isinstance(e, SpoolError):
        return e
    if _is_disk_full(e):
        return SpoolError(f"no space left for the spool: {e}", code="disk-full")
    if isinstance(e, sqlite3.Error):
        return SpoolError(f"SQLite: {e}", code="sqlite-error")
    return SpoolError(f"{type(e).__name__}: {e}", code="spool-failed")


def read_spool_report(path: Path) -> SpoolReport:
    """Read-only view of a spool file for ``coldtrail-gateway status`` (daemon may run)."""
    if not path.exists():
        raise SpoolError(f"no spool at {path}", code="spool-missing")
    conn = _connect(path, read_only=True)
    try:
        meta = dict(conn.execute("SELECT k, v FROM meta").fetchall())
        sealed = int(meta.get("sealed_through", "0"))
        n, size, first_unbatched = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0),"
            " (SELECT MIN(stored_ms) FROM records WHERE seq > ?) FROM records",
            (sealed,),
        ).fetchone()
        unbatched = conn.execute(
            "SELECT COUNT(*) FROM records WHERE seq > ?", (sealed,)
        ).fetchone()[0]
        batches, head_closed, manifest_bytes = conn.execute(
            "SELECT COUNT(*), MIN(closed_ms), COALESCE(SUM(LENGTH(manifest)), 0) FROM batches"
        ).fetchone()
        refusals = tuple(
            (r[0], Refusal(r[1], r[2], r[3], r[4]))
            for r in conn.execute(
                "SELECT batch_seq, refusal_status, refusal_code, refusal_detail, refused_ms"
                " FROM batches WHERE state = 'refused' ORDER BY batch_seq"
            )
        )
        last = conn.execute("SELECT MAX(batch_seq) FROM receipts").fetchone()[0]
    finally:
        conn.close()
    oldest = [m for m in (head_closed, first_unbatched) if m is not None]
    last_receipt = meta.get("last_receipt_ms")
    stats = SpoolStats(
        records=n,
        bytes=size + n * RECORD_OVERHEAD_BYTES + manifest_bytes + batches * BATCH_OVERHEAD_BYTES,
        unbatched=unbatched,
        batches=batches,
        refused_batches=len(refusals),
        evicted_records_total=int(meta.get("evicted_total", "0")),
        next_seq=int(meta.get("next_seq", "1")),
        oldest_unsent_ms=min(oldest) if oldest else None,
        last_receipt_ms=int(last_receipt) if last_receipt else None,
    )
    return SpoolReport(
        gw=meta.get("gw", "?"),
        stats=stats,
        refusals=refusals,
        last_receipt_batch=last,
        previous_run_clean=meta.get("running") != "1",
    )


def clear_refusals(path: Path) -> int:
    """Put refused batches back in line (a person fixed the cause); safe while running."""
    if not path.exists():
        raise SpoolError(f"no spool at {path}", code="spool-missing")
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        n = conn.execute("UPDATE batches SET state = 'pending' WHERE state = 'refused'").rowcount
        conn.execute("COMMIT")
    finally:
        conn.close()
    return int(n)
