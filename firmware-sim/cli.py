"""`coldtrail-sim`: simulated loggers, scanners and MQTT sensors.

    coldtrail-sim logger  --link /tmp/ttyCT0 --rate 2 --count 100 --noise 0.05
    coldtrail-sim scanner --link /tmp/ttyCT1 --cases 6 --suffix tab
    coldtrail-sim mqtt    --host 127.0.0.1 --port 1883 --formats all --duration 60
    coldtrail-sim scenario --dir /tmp/ct --host 127.0.0.1 --port 1883
    coldtrail-sim demo --duration 30 --workdir var/demo

Each pty device prints ``<device> <pty path>`` on stdout as soon as it exists.
The same ``--seed`` and ``--start`` replay the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from .faults import FaultPlan
from .frames import LINE_ENDINGS
from .mqtt_publisher import Publisher
from .payloads import FORMATS
from .pty_device import PtyDevice
from .scenario import DEFAULT_START_MS, custody_scans, logger_stream, mqtt_stream

__all__ = ["main"]

SUFFIXES = {**LINE_ENDINGS, "tab": b"\t"}
T = TypeVar("T")
_FOREVER = 10**12


def _start_ms(text: str) -> int:
    if text == "now":
        return int(time.time() * 1000)
    if text == "default":
        return DEFAULT_START_MS
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("--start needs an offset, e.g. 2026-11-21T08:00:00Z")
    return int(moment.timestamp() * 1000)


def _rate(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("--rate must not be negative")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--count", type=int, default=None, help="samples per device, then stop")
    p.add_argument("--duration", type=float, default=None, help="seconds, then stop")
    p.add_argument(
        "--rate",
        type=_rate,
        default=1.0,
        help="frames, scans or MQTT messages per second; 0 = flat out",
    )
    p.add_argument(
        "--start",
        type=_start_ms,
        default=DEFAULT_START_MS,
        help="device clock start: ISO 8601 with offset, 'now' or 'default'",
    )
    for name, what in (
        ("noise", "bit flips inside frames / misreads"),
        ("garbage", "bursts of random bytes between frames"),
        ("dropout", "samples never sent"),
        ("clock-jump", "device clock jumps by hours"),
        ("epoch-reset", "device clock reads 1970"),
        ("excursion", "door-open temperature excursions"),
    ):
        p.add_argument(
            f"--{name}",
            type=float,
            default=0.0,
            metavar="P",
            help=f"probability per sample of {what}",
        )


def _faults(args: argparse.Namespace) -> FaultPlan:
    return FaultPlan(
        noise=args.noise,
        garbage=args.garbage,
        dropout=args.dropout,
        clock_jump=args.clock_jump,
        epoch_reset=args.epoch_reset,
        excursion=args.excursion,
    )


def _paced(
    items: Iterable[T],
    args: argparse.Namespace,
    write: Callable[[T], None],
    stop: threading.Event,
) -> int:
    """Write items at ``--rate`` until exhausted, ``--duration`` or ``stop``."""
    deadline = time.monotonic() + args.duration if args.duration else None
    period = 1.0 / args.rate if args.rate else 0.0
    sent = 0
    for item in items:
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            break
        write(item)
        sent += 1
        if period:
            stop.wait(period)
    return sent


def run_logger(args: argparse.Namespace, stop: threading.Event) -> int:
    count = args.count if args.count is not None else _FOREVER
    stream = logger_stream(
        args.seed,
        count,
        tuple(args.sensors.split(",")),
        _faults(args),
        args.start,
        period_ms=int(1000 / args.rate) if args.rate else 1000,
        ending=LINE_ENDINGS[args.ending],
        with_clock=not args.no_clock,
    )
    with PtyDevice(args.link) as dev:
        print(f"logger {args.link or dev.path}", flush=True)
        _paced(
            (e.data for e in stream),
            args,
            lambda b: dev.write(b, args.split, 0.005 if args.split else 0.0),
            stop,
        )
        stop.wait(args.linger)
    return 0


def run_scanner(args: argparse.Namespace, stop: threading.Event) -> int:
    scans = custody_scans(args.seed, args.cases, SUFFIXES[args.suffix], _faults(args))
    if args.count is not None:
        scans = scans[: args.count]
    with PtyDevice(args.link) as dev:
        print(f"scanner {args.link or dev.path}", flush=True)
        _paced((s.data for s in scans), args, dev.write, stop)
        stop.wait(args.linger)
    return 0


def run_mqtt(args: argparse.Namespace, stop: threading.Event) -> int:
    formats = tuple(FORMATS) if args.formats == "all" else tuple(args.formats.split(","))
    count = args.count if args.count is not None else _FOREVER
    stream = mqtt_stream(
        args.seed,
        count,
        formats,
        args.devices,
        _faults(args),
        args.start,
        period_ms=int(1000 / args.rate) if args.rate else 1000,
    )
    with Publisher.connected(args.host, args.port, f"coldtrail-sim-{args.seed}") as pub:
        print(f"mqtt {args.host}:{args.port} {','.join(formats)}", flush=True)
        _paced(stream, args, lambda e: pub.publish(e.topic, e.payload), stop)
    return 0


def run_scenario(args: argparse.Namespace, stop: threading.Event) -> int:
    """Logger and scanner ptys (links in --dir) and, with --host, MQTT sensors."""
    args.dir.mkdir(parents=True, exist_ok=True)
    jobs: list[Callable[[], int]] = []
    logger_args = argparse.Namespace(
        **vars(args),
        link=args.dir / "ttyCT0",
        sensors="TH-01,TH-02",
        ending="crlf",
        split=0,
        no_clock=False,
    )
    scanner_args = argparse.Namespace(**vars(args), link=args.dir / "ttyCT1", suffix="crlf")
    jobs.append(lambda: run_logger(logger_args, stop))
    jobs.append(lambda: run_scanner(scanner_args, stop))
    if args.host:
        mqtt_args = argparse.Namespace(**vars(args), formats="all", devices=1)
        jobs.append(lambda: run_mqtt(mqtt_args, stop))
    # Not daemons: on SIGTERM/Ctrl-C they see ``stop`` and clean up their ptys and links.
    threads = [threading.Thread(target=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


def run_demo_command(args: argparse.Namespace, stop: threading.Event) -> int:
    from .demo import run_demo

    return run_demo(args.workdir, args.duration, args.seed, stop=stop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coldtrail-sim", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("logger", help="temperature/humidity logger on a pty")
    _add_common(p)
    p.add_argument("--link", type=Path, default=None, help="symlink to create for the pty")
    p.add_argument("--sensors", default="TH-01", help="comma-separated sensor ids")
    p.add_argument("--ending", choices=sorted(LINE_ENDINGS), default="crlf")
    p.add_argument("--split", type=int, default=0, help="write frames in pieces of N bytes")
    p.add_argument("--no-clock", action="store_true", help="device has no RTC (empty time)")
    p.add_argument("--linger", type=float, default=2.0, help="keep the line open this long")
    p.set_defaults(func=run_logger)

    p = sub.add_parser("scanner", help="GS1 barcode scanner on a pty (custody scenario)")
    _add_common(p)
    p.add_argument("--link", type=Path, default=None)
    p.add_argument("--cases", type=int, default=4, help="cases in the lot")
    p.add_argument("--suffix", choices=sorted(SUFFIXES), default="crlf")
    p.add_argument("--linger", type=float, default=2.0)
    p.set_defaults(func=run_scanner)

    p = sub.add_parser("mqtt", help="MQTT sensors in every payload format")
    _add_common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--formats", default="all", help=f"'all' or some of {','.join(FORMATS)}")
    p.add_argument("--devices", type=int, default=1, help="devices per format")
    p.set_defaults(func=run_mqtt)

    p = sub.add_parser("scenario", help="all devices at once, for the demo")
    _add_common(p)
    p.add_argument("--dir", type=Path, required=True, help="where to put ttyCT0 and ttyCT1")
    p.add_argument("--host", default="", help="MQTT broker host (no MQTT when empty)")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--linger", type=float, default=2.0)
    p.set_defaults(func=run_scenario)

    p = sub.add_parser(
        "demo", help="the whole system: anchor, three gateways, devices, a lot's journey"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds of journey, then verify and exit; 0 = two minutes, then serve until Ctrl-C",
    )
    p.add_argument("--workdir", type=Path, default=Path("var/demo"), help="rebuilt on every run")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.set_defaults(func=run_demo_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    if argv is None and threading.current_thread() is threading.main_thread():
        # SIGTERM (systemd, a test stopping us by PID) ends the run cleanly, so the
        # pty symlinks are removed instead of left dangling.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        if args.command == "demo":
            # Ctrl-C too: the demo stops its processes itself, in order, by PID.
            signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        return int(args.func(args, stop))
    except KeyboardInterrupt:
        stop.set()
        return 130
    except (OSError, ValueError) as e:
        print(f"coldtrail-sim: {e}", file=sys.stderr)
        return 1
