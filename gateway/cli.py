"""`coldtrail-gateway`: init, run, status, retry.

``init`` creates the gateway's Ed25519 key (mode 0600, atomic) and prints what
the anchor operator needs to enroll the gateway — never the private key.
``status`` is for a person at the box: it reads the spool file directly (works
when the daemon is down) and adds the live view from the daemon's loopback
``/status`` when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from proofs.errors import ProofsError
from proofs.keys import SigningKey
from proofs.keystore import load_signing_key, save_signing_key

from .config import GatewayConfig, load_config
from .errors import GatewayError
from .metrics import METRICS_HOST
from .spool import SpoolReport, clear_refusals, read_spool_report

__all__ = ["main"]


def _enrollment(gw: str, key: SigningKey) -> dict[str, str]:
    return {
        "gateway_id": gw,
        "public_key": key.public_key.to_base64(),
        "key_id": key.key_id,
        "algorithm": "ed25519",
    }


def _cmd_init(args: argparse.Namespace) -> int:
    if args.config:
        config = load_config(args.config)
        gw, key_file = config.gateway_id, config.gateway_key_file
    else:
        if not args.gateway_id or not args.key_file:
            print("init: give --config FILE, or --gateway-id and --key-file", file=sys.stderr)
            return 2
        gw, key_file = args.gateway_id, Path(args.key_file)
    if key_file.exists():
        key = load_signing_key(key_file)
        print(f"key file {key_file} already exists; it was not changed", file=sys.stderr)
    else:
        key = SigningKey.generate()
        save_signing_key(key, key_file)
        print(f"created {key_file} (mode 0600)", file=sys.stderr)
    info = _enrollment(gw, key)
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        print("Give the anchor operator these lines to enroll this gateway:")
        for name, value in info.items():
            print(f"  {name}: {value}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .daemon import configure_logging, run_gateway

    configure_logging(args.log_level)
    config = load_config(args.config)
    asyncio.run(run_gateway(config))
    return 0


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    age = max(0.0, time.time() - ms / 1000)
    stamp = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{stamp} ({_duration(age)} ago)"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _live_status(config: GatewayConfig) -> dict[str, Any] | None:
    if not config.metrics_port:
        return None
    url = f"http://{METRICS_HOST}:{config.metrics_port}/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            data = json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _print_status(config: GatewayConfig, report: SpoolReport, live: dict[str, Any] | None) -> None:
    s = report.stats
    print(f"gateway        {report.gw}")
    daemon = f"running (pid {live.get('pid')})" if live else "not reachable"
    print(f"daemon         {daemon}")
    pct = 100.0 * s.bytes / config.spool_budget_bytes
    print(f"spool          {s.records} records, {s.bytes} bytes ({pct:.1f} % of budget)")
    print(f"               {s.unbatched} not yet batched, {s.batches} batches waiting")
    oldest = "nothing" if s.oldest_unsent_ms is None else _when(s.oldest_unsent_ms)
    print(f"oldest unsent  {oldest}")
    print(f"last receipt   {_when(s.last_receipt_ms)}")
    print(f"evicted        {s.evicted_records_total} records dropped unsent (ever)")
    _print_disk(config, live)
    if live:
        up = live.get("uplink", {})
        print(f"uplink         {up.get('state')}")
        if up.get("members", 1) > 1:
            index = up.get("member_index", 0)
            place = "the home member" if index == 0 else f"member {index + 1}, failed over"
            print(
                f"  anchor       {up.get('member')} ({place}; {up.get('members')} listed,"
                f" {up.get('failovers')} failovers, {up.get('failbacks')} failbacks)"
            )
        if up.get("last_error"):
            print(f"  last error   {up.get('last_error')}")
        for name, src in sorted(live.get("sources", {}).items()):
            extra = f" - {src['last_error']}" if src.get("last_error") else ""
            print(
                f"source         {name}: {src.get('state')}, {src.get('restarts')} restarts{extra}"
            )
    if report.refusals:
        print("REFUSED        the anchor refused these batches; they are kept in the spool:")
        for batch_seq, r in report.refusals:
            print(f"  batch {batch_seq}: HTTP {r.status} {r.code}: {r.detail}")
        print("  fix the cause (enrollment, token, key), then run: coldtrail-gateway retry")
    else:
        print("refusals       none")


def _free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _print_disk(config: GatewayConfig, live: dict[str, Any] | None) -> None:
    """The filesystem under the spool (docs/adr/0213): measured here, so it shows when the
    daemon is down too; the daemon adds what its writes met."""
    free = _free_bytes(config.spool_file.parent)
    minimum = config.spool_min_free_bytes
    shown = "unknown" if free is None else f"{free} bytes free"
    low = free is not None and free < minimum
    spool = (live or {}).get("spool", {})
    state = "FULL" if low or spool.get("disk_full") else "ok"
    print(f"disk           {state}: {shown} (spool.min_free_bytes {minimum})")
    if spool.get("last_disk_error"):
        at = _when(spool.get("last_disk_error_ms"))
        print(f"  last error   {spool['last_disk_error']} at {at}")
    if spool.get("refused_records_total"):
        print(f"  refused      {spool['refused_records_total']} records (named by disk-full gaps)")
    by_reason = spool.get("evicted_by_reason") or {}
    if any(by_reason.values()):
        parts = ", ".join(f"{n} by {reason}" for reason, n in sorted(by_reason.items()))
        print(f"  evicted      since start: {parts}")


def _cmd_status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    report = read_spool_report(config.spool_file)
    live = _live_status(config)
    if args.json:
        out = {
            "gw": report.gw,
            "spool": {k: getattr(report.stats, k) for k in report.stats.__slots__},
            "disk": {
                "free_bytes": _free_bytes(config.spool_file.parent),
                "min_free_bytes": config.spool_min_free_bytes,
            },
            "refusals": [
                {"batch_seq": b, "status": r.status, "code": r.code, "detail": r.detail}
                for b, r in report.refusals
            ],
            "live": live,
        }
        print(json.dumps(out, sort_keys=True, indent=2))
    else:
        _print_status(config, report, live)
    return 1 if report.refusals else 0


def _cmd_retry(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    n = clear_refusals(config.spool_file)
    print(f"{n} refused batches will be sent again")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coldtrail-gateway", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create the gateway key and print its enrollment data")
    init.add_argument("--config", help="gateway TOML (gateway.id and gateway.key_file)")
    init.add_argument("--gateway-id")
    init.add_argument("--key-file")
    init.add_argument("--json", action="store_true", help="one JSON object on stdout")
    run = sub.add_parser("run", help="run the gateway daemon")
    run.add_argument("--config", required=True)
    run.add_argument("--log-level", default="INFO")
    status = sub.add_parser("status", help="spool, uplink, refusals and sources at a glance")
    status.add_argument("--config", required=True)
    status.add_argument("--json", action="store_true")
    retry = sub.add_parser("retry", help="send refused batches again after fixing the cause")
    retry.add_argument("--config", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {"init": _cmd_init, "run": _cmd_run, "status": _cmd_status, "retry": _cmd_retry}
    try:
        return handlers[args.command](args)
    except (GatewayError, ProofsError) as e:
        print(f"coldtrail-gateway {args.command}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a port in use, a read-only state directory, a full disk
        print(f"coldtrail-gateway {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
