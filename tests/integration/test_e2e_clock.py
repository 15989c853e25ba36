"""Clock drill: gateways whose wall clock jumps back, or starts at 1970, still produce
records whose clock evidence makes that visible in the anchor's provenance answer.

Real processes: `coldtrail-anchor serve` and two gateway daemons reading a serial
logger and a barcode scanner on ptys. Their wall clocks are moved with
tests/support/clock_shift_gateway.py (only the wall clock: CLOCK_BOOTTIME and the
boot id stay the kernel's, as after `date -s` or with a flat RTC battery).
"""

from __future__ import annotations

import contextlib
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware_sim import gs1
from firmware_sim.frames import encode_frame
from firmware_sim.processes import AnchorNode, GatewayNode, ProcessGroup, free_port, get_json
from firmware_sim.pty_device import PtyDevice

pytestmark = pytest.mark.integration

HELPER = Path(__file__).resolve().parents[1] / "support" / "clock_shift_gateway.py"
GTIN = gs1.gtin14(1, "24680")
JUMP_BACK_MS = 2 * 3600 * 1000


def _node(tmp: Path, gw: str, asset: str, step: str) -> GatewayNode:
    tty = tmp / "tty"
    return GatewayNode(
        gw,
        "acme",
        asset,
        tmp / gw,
        sensors=[{"id": f"{gw}-probe", "asset": asset}],
        scanners=[{"id": f"{gw}-scanner", "read_point": asset, "step": step, "asset": asset}],
        sources=[
            {"kind": "serial-scanner", "name": f"{gw}-scanner", "port": str(tty / f"{gw}-scan")},
            {
                "kind": "serial-sensor",
                "name": f"{gw}-logger",
                "port": str(tty / f"{gw}-log"),
                "sensor_ids": {"TH-01": f"{gw}-probe"},
            },
        ],
        settings={"batch": {"max_age_s": 0.3}, "uplink": {"backoff_initial_s": 0.05}},
        metrics_port=free_port(),
    )


def _provenance(anchor: AnchorNode, lot: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"gtin": GTIN, "lot": lot})
    answer = get_json(f"{anchor.url}/v1/provenance?{query}", timeout_s=30)
    assert isinstance(answer, dict)
    return answer


@contextlib.contextmanager
def _ptys(tmp: Path, names: list[str]) -> Iterator[dict[str, PtyDevice]]:
    (tmp / "tty").mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(PtyDevice(tmp / "tty" / n)) for n in names}


def test_a_clock_that_jumps_back_or_starts_in_1970_shows_in_the_provenance(
    tmp_path: Path,
) -> None:
    group = ProcessGroup()
    jumpy = _node(tmp_path, "jumpy-gw", "truck-09", "loading")
    flat = _node(tmp_path, "rtc-less-gw", "cold-room-9", "receiving")
    offsets = {jumpy.gw: tmp_path / "jumpy.offset", flat.gw: tmp_path / "flat.offset"}
    offsets[jumpy.gw].write_text("0")
    # A Pi without network and without an RTC: its clock starts near 1970-01-02.
    offsets[flat.gw].write_text(str(86_400_000 - int(time.time() * 1000)))
    names = [f"{g}-{k}" for g in (jumpy.gw, flat.gw) for k in ("scan", "log")]
    try:
        with _ptys(tmp_path, names) as tty:
            anchor = AnchorNode(tmp_path / "anchor", free_port(), checkpoint_interval_s=0.5)
            anchor.init()
            anchor.add_org("acme", "Acme Foods")
            token = anchor.token("acme")
            anchor.serve(group)
            for node in (jumpy, flat):
                node.init_and_enroll(anchor, token)
                offset = ["--offset-file", str(offsets[node.gw])]
                argv = [sys.executable, str(HELPER), *offset, "run", "--config",
                        str(node.config_path), "--log-level", "WARNING"]  # fmt: skip
                node.run(group, argv=argv)

            seq = 0

            def read_for(seconds: float) -> None:
                nonlocal seq
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    seq += 1
                    for gw in (jumpy.gw, flat.gw):
                        tty[f"{gw}-log"].write(encode_frame("TH-01", seq, 4.0, 80.0, None))
                    time.sleep(0.2)

            def scan(gw: str, lot: str) -> None:
                tty[f"{gw}-scan"].write(
                    b"]C1" + gs1.element_string([("01", GTIN), ("10", lot)]).encode() + b"\r\n"
                )

            read_for(1.0)  # the daemons open their ports (they retry until they can)
            scan(jumpy.gw, "JUMP-1")
            scan(flat.gw, "FLAT-1")
            read_for(2.0)
            offsets[jumpy.gw].write_text(str(-JUMP_BACK_MS))  # the wall clock steps back 2 h
            read_for(1.5)
            scan(jumpy.gw, "JUMP-1")  # the lot is scanned again after the jump
            read_for(1.5)
            deadline = time.monotonic() + 60
            # Input stops here: with frames still arriving every 0.2 s a spool is never
            # empty at the moment it is looked at, however fast the uplink.
            while not (jumpy.drained() and flat.drained()):
                assert time.monotonic() < deadline, (jumpy.status(), flat.status())
                time.sleep(0.2)

            jumped = _provenance(anchor, "JUMP-1")
            flat_answer = _provenance(anchor, "FLAT-1")
    finally:
        group.stop_all()

    kinds = {(a["kind"], a["gw"]) for a in jumped["clock_anomalies"]}
    assert ("clock-jump", jumpy.gw) in kinds, jumped["clock_anomalies"]
    jump = next(a for a in jumped["clock_anomalies"] if a["kind"] == "clock-jump")
    assert "-7200 s" in jump["detail"] or "-7199 s" in jump["detail"], jump
    assert jumped["verdict"]["status"] == "indeterminate", jumped["verdict"]
    clock = [r for r in jumped["verdict"]["reasons"] if r["code"] == "clock-evidence"]
    assert clock and "clock jump" in clock[0]["message"], jumped["verdict"]["reasons"]

    flat_kinds = {(a["kind"], a["gw"]) for a in flat_answer["clock_anomalies"]}
    assert ("implausible-wall-clock", flat.gw) in flat_kinds, flat_answer["clock_anomalies"]
    assert all(a["t"] < 946_684_800_000 for a in flat_answer["clock_anomalies"]
               if a["kind"] == "implausible-wall-clock")  # fmt: skip
    assert flat_answer["verdict"]["status"] != "pass", flat_answer["verdict"]
