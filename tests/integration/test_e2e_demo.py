"""End-to-end acceptance: the bounded demo as `make demo DURATION=N` runs it.

One real run (mosquitto, the anchor, three gateways, ptys, MQTT sensors) backs
these tests: it must exit 0 after its own verification; its bundle verifies with
the real `coldtrail-verify` pinned to the anchor's keys; changing any single
value of that bundle makes the verifier exit 1; and afterwards none of the
processes it started is alive. A second run is stopped with Ctrl-C (SIGINT)
mid-journey and must leave nothing behind either.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from proofs import verify_cli
from support.bundle_flips import flipped, scalars, set_at

pytestmark = pytest.mark.integration

SIM = str(Path(sys.executable).with_name("coldtrail-sim"))
VERIFY = str(Path(sys.executable).with_name("coldtrail-verify"))
DURATION_S = 16


@dataclass(frozen=True)
class DemoRun:
    workdir: Path
    returncode: int
    output: str
    log_vkey: str
    cosigner_vkeys: list[str]
    pids: list[int]


def _start_demo(
    workdir: Path, duration: float, out: Path, seed: int = 7
) -> subprocess.Popen[bytes]:
    with out.open("wb") as f:
        return subprocess.Popen(
            [
                SIM,
                "demo",
                "--duration",
                str(duration),
                "--workdir",
                str(workdir),
                "--seed",
                str(seed),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as from a terminal: the demo's children are its business
        )


def _pids(workdir: Path) -> list[int]:
    rows = json.loads((workdir / "processes.json").read_text())
    return [int(r["pid"]) for r in rows]


def _alive_mentioning(needle: str) -> list[str]:
    """Live processes whose command line mentions ``needle`` (our workdir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if needle in cmd and state != "Z":
                found.append(f"{entry.name}: {cmd}")
    return found


def _assert_nothing_left(workdir: Path, pids: list[int]) -> None:
    assert pids, "the demo recorded no processes"
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            assert str(workdir).encode() not in cmd or state == "Z", f"pid {pid} still runs"
    assert not _alive_mentioning(str(workdir))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    base = tmp_path_factory.mktemp("e2e-demo")
    workdir = base / "demo"
    out = base / "demo.out"
    proc = _start_demo(workdir, DURATION_S, out)
    try:
        code = proc.wait(timeout=DURATION_S + 150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    output = out.read_text()
    # The bundle comes from the warehouse's member node, signed with its own log key.
    log_vkey = re.search(r"northside-cold .*log key (\S+)", output)
    assert log_vkey, output
    toml = (workdir / "member-northside-cold" / "anchor.toml").read_text()
    assert "127.0.0.1" in toml
    bundle = json.loads((workdir / "bundle.json").read_text())
    return DemoRun(
        workdir, code, output, log_vkey.group(1), list(bundle["log"]["cosigners"]), _pids(workdir)
    )


def test_bounded_demo_runs_the_journey_and_verifies(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.output[-4000:]
    for step in ("PACKED", "LOADED", "DOOR OPEN", "UNLOADED", "RECEIVED"):
        assert step in demo.output
    assert "VALID:" in demo.output and "(pinned log key)" in demo.output
    # The demo prints and runs the safe command: pinned to the consortium's policy.
    policy = demo.workdir / "policy.txt"
    assert f"$ coldtrail-verify {demo.workdir / 'bundle.json'} --policy {policy}" in demo.output
    assert "quorum members: met" in demo.output and "NOT ATTESTED" not in demo.output
    # Three member nodes, and checkpoints that became final with their cosigners named.
    assert re.search(r"checkpoint #\d+ \(\d+ batches\) FINAL, cosigned by \S+, \S+", demo.output)
    # The journey as the anchor tells it: packed, trucked (out of range), received.
    assert "Out of its profile [fail]" in demo.output
    # MKT, the excursions' true durations (the journey is compressed: seconds) and the
    # disposition the profile's rule gave, naming the carrier that held the lot.
    assert re.search(r"MKT\s+\d+\.\d\d °C", demo.output), demo.output
    lasting = re.search(r"excursion\(s\) lasting ((?:\d+ (?:s|min), )*\d+ (?:s|min))", demo.output)
    assert lasting and any(int(d.split()[0]) > 0 for d in lasting.group(1).split(", ")), lasting
    assert re.search(r"out of range\s+[1-9]\d* (s|min) in all", demo.output), demo.output
    assert re.search(r"disposition\s+quarantine \(.*custodian polar-haulage\)", demo.output)
    # The carrier's calibration certificate stands behind the truck's readings, and a
    # copy of the file is checked against the bundle.
    assert "calibration certificate of truck-07's logger attached" in demo.output
    assert "DOCUMENT OK:" in demo.output and "for gateway truck-07" in demo.output
    assert not re.search(r"calibration-\w+\] truck-07", demo.output)
    # A consumer's claim about the door-open excursion goes to the carrier, its receipt
    # verifies offline, and the carrier's scorecard counts it.
    assert re.search(r"routed to\s+polar-haulage: truck-07 \(polar-haulage\) held", demo.output)
    assert "VALID claim receipt: event 1 (received)" in demo.output
    assert "Scorecard of Polar Haulage" in demo.output
    assert re.search(r"claims\s+1 \(0 resolved\)", demo.output), demo.output
    holders = re.findall(r"^\s+\d\d:\d\d:\d\d-\S+\s+(\S+)", demo.output, re.M)
    assert holders == ["line-4", "truck-07", "cold-room-3"], demo.output
    url = re.search(r"Consumer page: (http://127\.0\.0\.1:\d+/01/\d{14}/10/\S+)", demo.output)
    assert url, demo.output
    for key in (demo.workdir / "gw-truck-07" / "state" / "gateway.key",
                demo.workdir / "gw-truck-07" / "state" / "anchor.token"):  # fmt: skip
        assert key.stat().st_mode & 0o777 == 0o600


def test_the_bundle_verifies_with_the_real_console_script(demo: DemoRun) -> None:
    argv = [VERIFY, str(demo.workdir / "bundle.json"), "--log-key", demo.log_vkey]
    for c in demo.cosigner_vkeys:
        argv += ["--cosigner", c]
    result = subprocess.run(
        [*argv, "--quorum", "1"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("VALID:") and "pinned log key" in result.stdout
    # A different log key (a forger's) is refused: the pin means something.
    other = demo.log_vkey[:-8] + (
        "AAAAAAAA" if not demo.log_vkey.endswith("AAAAAAAA") else "BBBBBBBB"
    )
    forged = subprocess.run(
        [VERIFY, str(demo.workdir / "bundle.json"), "--log-key", other],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert forged.returncode in (1, 2), forged.stdout


def _flips_accepted(original: dict[str, Any], pins: list[str], target: Path) -> list[str]:
    """Each scalar changed on its own; the paths of changes the verifier did not refuse."""
    sink = io.StringIO()
    target.write_text(json.dumps(original))
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        assert verify_cli.main([str(target), *pins]) == 0
    accepted: list[str] = []
    for path, value in scalars(original):
        doc = json.loads(json.dumps(original))
        set_at(doc, path, flipped(value))
        target.write_text(json.dumps(doc))
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = verify_cli.main([str(target), *pins])
        sink.seek(0)
        sink.truncate()
        if code != 1:
            accepted.append("/".join(map(str, path)))
    return accepted


def test_flipping_any_value_of_the_bundle_makes_the_verifier_exit_1(
    demo: DemoRun, tmp_path: Path
) -> None:
    original = json.loads((demo.workdir / "bundle.json").read_text())
    leaves = list(scalars(original))
    assert len(leaves) > 200, "the demo bundle is suspiciously small"
    # As a consumer without the anchor's keys checks it: every value counts.
    unpinned = _flips_accepted(original, [], tmp_path / "flipped.json")
    assert not unpinned, f"{len(unpinned)} of {len(leaves)} changes went unnoticed: {unpinned}"
    # Pinned to the anchor's keys, as the demo and an auditor check it: a bundle that
    # names other keys than the pinned ones is refused too, so again every value counts.
    pins = ["--log-key", demo.log_vkey]
    for c in demo.cosigner_vkeys:
        pins += ["--cosigner", c]
    pinned = _flips_accepted(original, pins, tmp_path / "flipped.json")
    assert not pinned, f"{len(pinned)} of {len(leaves)} changes went unnoticed: {pinned}"


def test_the_bounded_demo_leaves_no_process_behind(demo: DemoRun) -> None:
    # mosquitto, three nats-servers, three member nodes, three gateways
    assert len(demo.pids) == 10
    _assert_nothing_left(demo.workdir, demo.pids)
    assert "all 10 processes stopped" in demo.output


def test_ctrl_c_mid_journey_stops_every_process(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    out = tmp_path / "demo.out"
    proc = _start_demo(workdir, 120, out, seed=3)
    try:
        for _ in range(600):  # until the journey is under way: every process runs
            if "PACKED" in out.read_text() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert "PACKED" in out.read_text(), out.read_text()
        pids = _pids(workdir)
        assert len(pids) == 10
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C at the terminal delivers
        assert proc.wait(timeout=60) == 130, out.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    _assert_nothing_left(workdir, pids)
    assert "all 10 processes stopped" in out.read_text()
