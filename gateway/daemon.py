"""The gateway process: sources -> signer -> spool -> batcher -> uplink.

One asyncio loop; one task per source (each supervised: a source that fails is
recorded as a signed ``source-down`` gap and restarted with backoff, and never
stops the others), plus the batcher, the uplink, the metrics endpoint and the
systemd watchdog. SIGTERM stops the sources first, so nothing is acknowledged
after the spool starts to close, then marks the spool cleanly closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from proofs.keystore import load_signing_key

from .batcher import Batcher, BatchPolicy
from .clock import SystemClock
from .config import GatewayConfig, SourceSpec
from .errors import ConfigError, SpoolError
from .intake import SpoolSink
from .metrics import METRICS_HOST, GatewayMetrics, create_metrics_app
from .observations import Source
from .registry import RegistryFile
from .sdnotify import Notifier
from .signer import GATEWAY_SRC, Signer
from .silence import SilenceWatch
from .spool import Spool
from .uplink import AnchorLink, AnchorTransport, Backoff, HttpAnchorTransport, Uplink

__all__ = ["SourceFactory", "configure_logging", "read_token", "run_gateway"]

log = logging.getLogger(__name__)

SourceFactory = Callable[[SourceSpec, RegistryFile], Source]
_SOURCE_BACKOFF = Backoff(initial_s=1.0, max_s=60.0)


def read_token(path: Path | None) -> str:
    if path is None:
        raise ConfigError("uplink.token_file is required (the anchor's bearer token)")
    try:
        st = path.stat()
        token = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"cannot read uplink.token_file {path}: {e}", code="token-missing") from e
    if st.st_mode & stat.S_IRWXO:
        raise ConfigError(
            f"token file {path} is readable by others; run: chmod 600 {path}",
            code="token-permissions",
        )
    if not token:
        raise ConfigError(f"token file {path} is empty", code="token-missing")
    return token


def _default_source_factory() -> SourceFactory:
    # Imported late: a gateway with no configured sources never loads serial/MQTT code.
    from .source_factory import create_source

    return create_source


class _SourceState:
    def __init__(self, source: Source) -> None:
        self.name = source.name
        self.source = source
        self.state = "starting"
        self.restarts = 0
        self.last_error = ""

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "state": self.state,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }
        # What the source itself counts (gateway/sources/*: frames, reconnects, MQTT
        # acks, duplicates dropped, read pauses), for a person at the box.
        counters = getattr(self.source, "counters", None)
        if counters is not None:
            doc["frames_ok"] = counters.frames_ok
            doc["frames_bad"] = dict(counters.frames_bad)
            doc["reconnects"] = counters.reconnects
            doc["connected"] = counters.connected
        for name in ("acked", "duplicates_dropped", "read_pauses", "queued_high_water"):
            if hasattr(self.source, name):
                doc[name] = getattr(self.source, name)
        return doc


async def _supervise(
    source: Source, sink: SpoolSink, state: _SourceState, metrics: GatewayMetrics
) -> None:
    rng = random.SystemRandom()
    failures = 0
    while True:
        state.state = "running"
        started = time.monotonic()
        try:
            await source.run(sink)
            reason = "returned"
            detail = f"source {source.name} stopped on its own"
        except asyncio.CancelledError:
            state.state = "stopped"
            raise
        except Exception as e:
            reason = type(e).__name__
            detail = f"source {source.name} failed: {e}"
            log.exception("source %s failed", source.name)
        state.state = "down"
        state.last_error = detail
        state.restarts += 1
        metrics.source_errors.labels(source.name, reason).inc()
        with contextlib.suppress(Exception):
            await sink.record_gap(source.name, "source-down", detail, count=0)
        failures = 1 if time.monotonic() - started > 60 else failures + 1
        await asyncio.sleep(_SOURCE_BACKOFF.delay_s(failures, rng))


async def _watch_silence(watch: SilenceWatch, sink: SpoolSink, every_s: float = 5.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        for src, silent_s, limit_s in watch.overdue():
            log.warning("sensor %s silent for %.0f s", src, silent_s)
            try:
                await sink.record_gap(
                    src,
                    "silent-sensor",
                    f"no reading for {silent_s:.0f} s (the registry expects one within"
                    f" {limit_s:g} s)",
                    count=0,
                )
            except SpoolError as e:  # a full disk: counted and named by a disk-full gap
                log.error("silent-sensor gap for %s not stored: %s", src, e)


async def _watchdog(notifier: Notifier, spool: Spool) -> None:
    """Ping only while the event loop *and* the spool's writer thread make progress:
    a hung SD card or a wedged commit then gets the gateway restarted by systemd."""
    assert notifier.watchdog_interval_s is not None
    while True:
        await spool.ping()
        notifier.watchdog()
        await asyncio.sleep(notifier.watchdog_interval_s)


async def run_gateway(
    config: GatewayConfig,
    *,
    extra_sources: Sequence[Source] = (),
    source_factory: SourceFactory | None = None,
    transports: Sequence[AnchorTransport] | None = None,
    notifier: Notifier | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). Raises on a startup refusal."""
    key = load_signing_key(config.gateway_key_file)
    token = read_token(config.uplink_token_file) if transports is None else ""
    registry = RegistryFile(config.gateway_registry_file)
    signer = Signer(
        config.gateway_id,
        key,
        SystemClock(),
        registry.get,
        clock_jump_threshold_s=config.clock_jump_threshold_s,
    )
    sources: list[Source] = []
    if config.sources:
        factory = source_factory or _default_source_factory()
        sources = [factory(spec, registry) for spec in config.sources]
    sources.extend(extra_sources)

    notifier = notifier or Notifier.from_env()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)

    spool = await Spool.open(
        config.spool_file,
        signer,
        budget_bytes=config.spool_budget_bytes,
        batch_max_records=config.batch_max_records,
        batch_max_bytes=config.batch_max_bytes,
        commit_max_records=config.spool_commit_max_records,
        min_free_bytes=config.spool_min_free_bytes,
        reserve_bytes=config.spool_reserve_bytes,
    )
    clean = False
    try:
        metrics = GatewayMetrics(lambda: spool.stats)
        silence = SilenceWatch(registry.get)
        sink = SpoolSink(signer, spool, metrics, silence)
        if not spool.previous_run_clean:
            try:
                await sink.record_gap(
                    GATEWAY_SRC,
                    "restart",
                    "previous run ended without a clean shutdown (power cut, kill or crash);"
                    " unacknowledged device data may be missing",
                    count=0,
                )
            except SpoolError as e:
                # A full disk must not turn into a crash loop (docs/adr/0213): the refused
                # gap is counted and named by the disk-full gap of the next commit.
                log.error("restart gap not stored: %s", e)
        async with contextlib.AsyncExitStack() as stack:
            if transports is None:
                transports = [
                    await stack.enter_async_context(
                        HttpAnchorTransport(
                            member.url,
                            token,
                            ca_file=config.uplink_ca_file,
                            timeout_s=config.uplink_timeout_s,
                        )
                    )
                    for member in config.uplink_anchors
                ]
            uplink = Uplink(
                spool,
                [
                    AnchorLink(member.url, transport, member.anchor_vkey)
                    for member, transport in zip(config.uplink_anchors, transports, strict=True)
                ],
                backoff=Backoff(config.uplink_backoff_initial_s, config.uplink_backoff_max_s),
                backfill_batches_per_s=config.uplink_backfill_batches_per_s,
                live_window_s=config.uplink_live_window_s,
                failback_s=config.uplink_failback_s,
                metrics=metrics,
            )
            batcher = Batcher(
                spool,
                BatchPolicy(config.batch_max_records, config.batch_max_age_s),
                link_up=lambda: uplink.link_up,
            )
            states = {s.name: _SourceState(s) for s in sources}

            def status() -> dict[str, Any]:
                st = spool.stats
                return {
                    "gw": config.gateway_id,
                    "key_id": key.key_id,
                    "pid": os.getpid(),
                    "spool": {
                        "records": st.records,
                        "bytes": st.bytes,
                        "budget_bytes": config.spool_budget_bytes,
                        "min_free_bytes": st.min_free_bytes,
                        "disk_free_bytes": st.disk_free_bytes,
                        "disk_full": st.disk_full,
                        "disk_errors_total": st.disk_errors_total,
                        "last_disk_error": st.last_disk_error,
                        "last_disk_error_ms": st.last_disk_error_ms,
                        "refused_records_total": st.refused_records_total,
                        "evicted_records_total": st.evicted_records_total,
                        "evicted_by_reason": dict(st.evicted_by_reason),
                        "unbatched": st.unbatched,
                        "batches": st.batches,
                        "refused_batches": st.refused_batches,
                        "oldest_unsent_ms": st.oldest_unsent_ms,
                        "last_receipt_ms": st.last_receipt_ms,
                        "next_seq": st.next_seq,
                    },
                    "uplink": uplink.status.to_dict(),
                    "sources": {name: s.to_dict() for name, s in states.items()},
                }

            if config.metrics_port:
                runner = web.AppRunner(create_metrics_app(metrics, status), access_log=None)
                await runner.setup()
                stack.push_async_callback(runner.cleanup)
                await web.TCPSite(runner, METRICS_HOST, config.metrics_port).start()

            source_tasks = [
                asyncio.create_task(_supervise(s, sink, states[s.name], metrics), name=s.name)
                for s in sources
            ]
            core_tasks: list[asyncio.Task[Any]] = [
                asyncio.create_task(batcher.run(), name="batcher"),
                asyncio.create_task(uplink.run(), name="uplink"),
                asyncio.create_task(_watch_silence(silence, sink), name="silence"),
            ]
            if notifier.watchdog_interval_s:
                core_tasks.append(asyncio.create_task(_watchdog(notifier, spool), name="watchdog"))
            notifier.ready(f"gateway {config.gateway_id}: {len(sources)} sources")
            log.info(
                "gateway %s running: key %s, %d sources, spool %s",
                config.gateway_id,
                key.key_id,
                len(sources),
                config.spool_file,
            )
            stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait())
            watched: list[asyncio.Task[Any]] = [stopper, *core_tasks]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            crashed = [t for t in done if t is not stopper]
            notifier.stopping()
            # Sources first: once they are gone nothing new is acknowledged.
            for t in source_tasks:
                t.cancel()
            await asyncio.gather(*source_tasks, return_exceptions=True)
            for t in [*core_tasks, stopper]:
                t.cancel()
            await asyncio.gather(*core_tasks, stopper, return_exceptions=True)
            for t in crashed:
                error = None if t.cancelled() else t.exception()
                if error is not None:
                    raise error
        clean = True
    finally:
        await spool.close(clean=clean)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",  # journald adds the time
    )
