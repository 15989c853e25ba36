"""`coldtrail-sim demo`: the whole system, as a newcomer runs it with `make demo`.

Real processes, on 127.0.0.1 only: a mosquitto of its own, an anchoring node
(SQLite ledger) and three gateways, each set up with the project's own CLIs the
way an operator would (``coldtrail-anchor init / org add / gateway enroll /
token create``, ``coldtrail-gateway init / run``). The simulated devices are
real too: a serial logger and four barcode scanners on pseudo-terminals, and
MQTT sensors in three payload formats.

The lot's journey, scaled to ``--duration`` seconds:

====  ==============================================================
 8 %  packed at line 4 (packing-line gateway, case labels GS1-128)
22 %  loaded on truck 07 at dock 1 (cases and pallet SSCC)
45 %  the truck's door opens on the road: a temperature excursion
78 %  unloaded at cold room 3 (cold-room gateway's dock scanner)
86 %  received at cold room 3 (GS1 Digital Link QR codes)
====  ==============================================================

Then it waits for every gateway's last receipt, prints the lot's provenance
from the anchor's JSON API, writes the proof bundle, verifies it with
``coldtrail-verify --policy`` pinned to the consortium policy (``coldtrail-anchor
policy``: log key, members, quorum) and prints the consumer-page
URL. With ``--duration 0`` the journey takes two minutes and the anchor keeps
serving the page until Ctrl-C; otherwise it exits with the verifier's status.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from proofs.coldchain import duration_words

from . import gs1
from .frames import encode_frame
from .mqtt_publisher import Publisher
from .payloads import FORMATS, Sample
from .processes import (
    AnchorNode,
    GatewayNode,
    ProcessGroup,
    compose_consortium,
    free_port,
    get_json,
    mosquitto,
    nats_cluster,
    tool,
)
from .pty_device import PtyDevice
from .thermal import ThermalModel

__all__ = ["DEFAULT_DURATION_S", "DemoPlan", "run_demo"]

DEFAULT_DURATION_S = 120.0
MARKER = ".coldtrail-demo"  # the demo only ever wipes a workdir it made itself
SENSOR_PERIOD_S = 1.0
PROGRESS_EVERY_S = 4.0
BATCH_MAX_AGE_S = 2.0  # the demo's one departure from the defaults (10 s): livelier progress


# --- the plan: everything a seed decides ----------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoPlan:
    seed: int
    duration_s: float
    gtin: str
    lot: str
    expiry: str
    sscc: str
    cases: int
    door_open_at: float  # fraction of the journey
    door_open_samples: int

    @classmethod
    def from_seed(cls, seed: int, duration_s: float, today: dt.date) -> DemoPlan:
        rng = random.Random(seed)
        return cls(
            seed=seed,
            duration_s=duration_s,
            gtin=gs1.gtin14(1, f"{rng.randrange(100000):05d}"),
            lot=f"L{today:%y%m%d}{rng.choice('ABCDEFGH')}",
            expiry=f"{today + dt.timedelta(days=21):%y%m%d}",
            sscc=gs1.sscc(rng.randrange(10**8, 10**9)),
            cases=rng.randint(3, 6),
            door_open_at=0.42 + rng.random() * 0.08,
            door_open_samples=max(4, round(0.12 * duration_s / SENSOR_PERIOD_S)),
        )

    def serial(self, case: int) -> str:
        return f"{case + 1:06d}"

    def case_label(self, case: int) -> str:
        """GS1-128 case label: fixed-length AIs first, lot and serial last."""
        return gs1.element_string(
            [("01", self.gtin), ("17", self.expiry), ("10", self.lot), ("21", self.serial(case))]
        )

    def packing_label(self, case: int) -> str:
        return gs1.element_string(
            [
                ("01", self.gtin),
                ("17", self.expiry),
                ("4331", gs1.pack_temperature(8.0)),
                ("4333", gs1.pack_temperature(2.0)),
                ("10", self.lot),
            ]
        )

    def pallet_label(self) -> str:
        return gs1.element_string(
            [("00", self.sscc), ("02", self.gtin), ("37", str(self.cases)), ("10", self.lot)]
        )

    @property
    def digital_link_path(self) -> str:
        return f"/01/{self.gtin}/10/{urllib.parse.quote(self.lot, safe='')}"


# --- the devices ------------------------------------------------------------------------


@dataclass
class MqttSensor:
    fmt: str
    device: str
    model: ThermalModel
    seq: int = 0

    def messages(self, now_ms: int) -> list[tuple[str, bytes]]:
        temp, hum = self.model.step()
        self.seq += 1
        return FORMATS[self.fmt](self.device, Sample(temp, hum, self.seq, now_ms))


@dataclass
class SerialLogger:
    device: PtyDevice
    models: dict[str, ThermalModel]
    seq: int = 0

    def tick(self, now_ms: int) -> None:
        self.seq += 1
        for sensor, model in self.models.items():
            temp, hum = model.step()
            self.device.write(encode_frame(sensor, self.seq, temp, hum, now_ms))


@dataclass
class Devices:
    logger: SerialLogger
    scanners: dict[str, PtyDevice]
    mqtt: list[MqttSensor]
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def truck_models(self) -> list[ThermalModel]:
        return [*self.logger.models.values(), *(m.model for m in self.mqtt if m.fmt == "ruuvi")]

    def scan(self, scanner: str, symbology: str, data: str) -> None:
        self.scanners[scanner].write((symbology + data).encode() + b"\r\n")


# --- the deployment ---------------------------------------------------------------------


ORGS = {
    "acme-foods": "Acme Foods (packing plant)",
    "polar-haulage": "Polar Haulage (carrier)",
    "northside-cold": "Northside Cold Stores (warehouse)",
}


def _gateways(workdir: Path, tty: Path, broker_port: int) -> list[GatewayNode]:
    def mqtt(name: str, routes: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": "mqtt",
            "name": name,
            "host": "127.0.0.1",
            "port": broker_port,
            "routes": routes,
        }

    def scanner(name: str) -> dict[str, Any]:
        return {"kind": "serial-scanner", "name": name, "port": str(tty / name)}

    common = {"batch": {"max_age_s": BATCH_MAX_AGE_S}}
    line = GatewayNode(
        "line-4",
        "acme-foods",
        "line-4",
        workdir / "gw-line-4",
        sensors=[{"id": "z2m-packhall-1", "asset": "line-4"}],
        scanners=[
            {"id": "line-4-scanner", "read_point": "line-4", "step": "packing", "asset": "line-4"},
        ],
        sources=[
            scanner("line-4-scanner"),
            mqtt(
                "packhall-broker",
                [{"pattern": "zigbee2mqtt/+", "adapter": "zigbee2mqtt", "sensor": "z2m-{1}"}],
            ),
        ],
        settings=dict(common),
        metrics_port=free_port(),
    )
    truck = GatewayNode(
        "truck-07",
        "polar-haulage",
        "truck-07",
        workdir / "gw-truck-07",
        sensors=[
            {
                "id": "truck-07-return-air",
                "asset": "truck-07",
                "calibration": {"temperature": -0.2},
            },
            {"id": "truck-07-cargo", "asset": "truck-07"},
            {"id": "ruuvi-cargo-tag", "asset": "truck-07"},
        ],
        # The driver's handheld loads the pallet at line 4's dock 1: the truck's own
        # gateway takes custody (a gateway may only name its organisation's places).
        scanners=[
            {
                "id": "dock-1-scanner",
                "read_point": "truck-07-door",
                "step": "loading",
                "asset": "truck-07",
            },
        ],
        sources=[
            scanner("dock-1-scanner"),
            {
                "kind": "serial-sensor",
                "name": "reefer-logger",
                "port": str(tty / "reefer-logger"),
                "sensor_ids": {"TH-01": "truck-07-return-air", "TH-02": "truck-07-cargo"},
            },
            mqtt(
                "truck-broker",
                [{"pattern": "ruuvi/+/+", "adapter": "ruuvi", "sensor": "ruuvi-{2}"}],
            ),
        ],
        settings=dict(common),
        metrics_port=free_port(),
    )
    room = GatewayNode(
        "cold-room-3",
        "northside-cold",
        "cold-room-3",
        workdir / "gw-cold-room-3",
        sensors=[
            {"id": "tasmota-coldroom3-probe", "asset": "cold-room-3"},
            {"id": "shelly-coldroom3-door", "asset": "cold-room-3"},
        ],
        scanners=[
            {
                "id": "dock-3-scanner",
                "read_point": "dock-3",
                "step": "unloading",
                "asset": "cold-room-3",
            },
            {
                "id": "receiving-scanner",
                "read_point": "cold-room-3",
                "step": "receiving",
                "asset": "cold-room-3",
            },
        ],
        sources=[
            scanner("dock-3-scanner"),
            scanner("receiving-scanner"),
            mqtt(
                "coldroom-broker",
                [
                    {
                        "pattern": "tele/+/SENSOR",
                        "adapter": "tasmota",
                        "sensor": "tasmota-{1}",
                        "device_zone": "Europe/Berlin",
                    },
                    {
                        "pattern": "shellies/+/sensor/+",
                        "adapter": "shelly-gen1",
                        "sensor": "shelly-{1}",
                        "unit": "CEL",
                    },
                ],
            ),
        ],
        settings=dict(common),
        metrics_port=free_port(),
    )
    return [line, truck, room]


@contextlib.contextmanager
def _devices(tty: Path, rng: random.Random) -> Iterator[Devices]:
    tty.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:

        def pty(name: str) -> PtyDevice:
            return stack.enter_context(PtyDevice(tty / name))

        logger = SerialLogger(
            pty("reefer-logger"),
            {
                "TH-01": ThermalModel(rng, setpoint_c=3.5),
                "TH-02": ThermalModel(rng, setpoint_c=4.5),
            },
        )
        scanners = {
            n: pty(n)
            for n in ("line-4-scanner", "dock-1-scanner", "dock-3-scanner", "receiving-scanner")
        }
        mqtt = [
            MqttSensor("zigbee2mqtt", "packhall-1", ThermalModel(rng, setpoint_c=6.0)),
            MqttSensor("ruuvi", "cargo-tag", ThermalModel(rng, setpoint_c=4.0)),
            MqttSensor("tasmota", "coldroom3-probe", ThermalModel(rng, setpoint_c=3.0)),
            MqttSensor("shelly-gen1", "coldroom3-door", ThermalModel(rng, setpoint_c=3.5)),
        ]
        yield Devices(logger, scanners, mqtt)


# --- output ---------------------------------------------------------------------------------


class Narrator:
    """Plain lines a person can follow (no curses): time since start, who, what."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def say(self, who: str, what: str) -> None:
        elapsed = time.monotonic() - self.t0
        print(f"[{elapsed:5.1f}s] {who:<12} {what}", file=self.out, flush=True)

    def raw(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)


def _clock(ms: int | None) -> str:
    if ms is None:
        return "now"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%H:%M:%S")


def _gateway_line(node: GatewayNode) -> str:
    st = node.status()
    if st is None:
        return "not answering yet"
    m = node.metrics()
    spool, up = st["spool"], st["uplink"]
    sources = st.get("sources", {})
    running = sum(1 for s in sources.values() if s.get("state") == "running")
    return (
        f"read {m.get('coldtrail_observations_in_total', 0):.0f}"
        f", signed {m.get('coldtrail_records_spooled_total', 0):.0f}"
        f", anchored {m.get('coldtrail_records_anchored_total', 0):.0f}"
        f" in {m.get('coldtrail_batches_anchored_total', 0):.0f} batches"
        f", spool {spool['records']}"
        f", uplink {up.get('state', '?')}"
        f", sources {running}/{len(sources)} up"
    )


def _consortium(
    workdir: Path, group: ProcessGroup, nats_urls: list[str], n: Narrator
) -> dict[str, AnchorNode]:
    """Three member nodes, one per organisation, each with its own SQLite ledger and
    keys and its own nats-server first in its list; set up as their operators would:
    ``init`` each, ``compose-policy`` from the keys they print (2 of 3 make a
    checkpoint final), the same policy file installed on each, ``serve`` each."""
    members: dict[str, AnchorNode] = {}
    for i, org in enumerate(ORGS):
        urls = [nats_urls[i], *(u for j, u in enumerate(nats_urls) if j != i)]
        m = AnchorNode(workdir / f"member-{org}", free_port(), nats_urls=urls,
                       member=f"{org}.demo.coldtrail.local/witness")  # fmt: skip
        m.init()
        members[org] = m
        n.say(org, f"coldtrail-anchor init: member key, SQLite ledger; log key {m.log_vkey}")
    compose_consortium(members, quorum=2)
    (workdir / "policy.txt").write_text(members["acme-foods"].policy_path.read_text())
    n.say(
        "consortium", f"policy: 2 of {len(members)} members cosign a checkpoint before it is final"
    )
    for org, m in members.items():
        m.serve(group)
        n.say(org, f"member node serving on {m.url} (explorer {m.url}/explorer)")
    return members


def _finality_lines(member: AnchorNode, seen: dict[str, int]) -> list[str]:
    """One line per checkpoint that became final since the last call (the newest few):
    its size and which members cosigned it, as this member's view shows."""
    try:
        view = get_json(f"{member.url}/v1/consortium?limit=20")
    except (OSError, urllib.error.URLError, ValueError):
        return ["not answering"]
    assert isinstance(view, dict)
    last = seen.get("height", -1)
    fresh = [cp for cp in view["checkpoints"] if cp["final"] and cp["height"] > last]
    if not fresh:
        top = view["checkpoints"][0] if view["checkpoints"] else None
        return [] if top is None else [f"checkpoint #{top['height']} waits for cosignatures"]
    seen["height"] = fresh[0]["height"]
    lines = []
    for cp in reversed(fresh[:3]):
        names = ", ".join(c["member"] for c in cp["cosigners"])
        lines.append(
            f"checkpoint #{cp['height']} ({cp['size']} batches) FINAL, cosigned by {names}"
        )
    if len(fresh) > 3:
        lines.insert(0, f"{len(fresh) - 3} more checkpoints became final")
    return lines


def _minutes(ms: Any) -> str:
    """A duration as the verdict says it: seconds below a minute (the demo's journey is
    compressed), whole minutes above."""
    return duration_words(int(ms)) if isinstance(ms, int | float) else "?"


def _summary(n: Narrator, answer: dict[str, Any], plan: DemoPlan) -> None:
    v = answer.get("verdict", {})
    profile = v.get("profile", {})
    product = answer.get("product") or {}
    name = product.get("name") or f"GTIN {plan.gtin}"
    n.raw(f"Provenance of {name}, lot {plan.lot} (the anchor's JSON API):")
    n.raw(f"  verdict        {v.get('label')} [{v.get('status')}]")
    n.raw(
        f"  profile        {profile.get('name')} v{profile.get('version')}:"
        f" {profile.get('low_c')}..{profile.get('high_c')} °C, rules {v.get('rules')}"
    )
    mkt = v.get("mkt_c")
    n.raw(f"  MKT            {mkt:.2f} °C (worst window)" if isinstance(mkt, float) else "  MKT  -")
    n.raw(f"  out of range   {_minutes(v.get('time_out_of_range_ms'))} in all")
    for reason in v.get("reasons", []):
        n.raw(f"                 - [{reason.get('code')}] {reason.get('message')}")
    d = answer.get("disposition")
    if d:
        who = f", custodian {d['custodian']}" if d.get("custodian") else ""
        n.raw(f"  disposition    {d['disposition']} ({d['rule'] or d['reason']}{who})")
    else:
        n.raw("  disposition    not decided yet")
    n.raw("  custody (UTC)")
    for i in answer.get("timeline", []):
        opened = i.get("opened_by", {})
        temps = [s for s in i.get("stats", []) if s.get("q") == "temperature"]
        t = temps[0] if temps else {}
        temp = (
            f"{t.get('min')}..{t.get('max')} °C over {t.get('count')} readings"
            if t
            else "no readings"
        )
        exc = [e for s in i.get("sensors", []) for e in s.get("excursions", [])]
        lasting = ", ".join(_minutes(e["duration_ms"]) for e in exc)
        extra = (
            f", {len(exc)} excursion(s) lasting {lasting}, peak {max(e['peak_c'] for e in exc)} °C"
            if exc
            else ""
        )
        n.raw(
            f"    {_clock(i.get('from'))}-{_clock(i.get('to')):<8} {i.get('holder'):<12}"
            f" {opened.get('step')} at {opened.get('rp')}: {temp}{extra}"
        )
        events: dict[tuple[str, str], int] = {}
        for e in i.get("events", []):
            key = (str(e.get("step")), str(e.get("rp")))
            events[key] = events.get(key, 0) + 1
        for (step, rp), count in events.items():
            n.raw(f"      + {count} more {step} scan(s) at {rp}")
    gaps = answer.get("gaps", [])
    reasons = sorted({g["reason"] for g in gaps})
    n.raw(f"  gap records    {len(gaps)}{' (' + ', '.join(reasons) + ')' if reasons else ''}")
    kinds = sorted({a["kind"] for a in answer.get("clock_anomalies", [])})
    n.raw(
        f"  clock          {answer.get('clock_anomaly_count', 0)} anomalies"
        f"{' (' + ', '.join(kinds) + ')' if kinds else ''}"
    )
    n.raw(f"  proven records {answer.get('proven_records')} (in the bundle)")
    for d in answer.get("documents", []):
        n.raw(
            f"  document       {d.get('label')} {d.get('name')} for {d.get('subject_kind')}"
            f" {d.get('subject')}, issued by {d.get('issuer')}: {d.get('status')}"
        )


# --- the run ------------------------------------------------------------------------------


class Stop(Exception):
    """Ctrl-C or SIGTERM while the journey runs."""


def _prepare_workdir(workdir: Path) -> None:
    if workdir.exists():
        leftovers = {p.name for p in workdir.iterdir()}
        if leftovers and MARKER not in leftovers and not leftovers <= {"bundle.json"}:
            raise SystemExit(
                f"coldtrail-sim demo: {workdir} holds files the demo did not make;"
                " choose another --workdir"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by coldtrail-sim demo; removed and rebuilt on every run\n")


class Journey:
    """The scripted events and the sensor clock, paced in real time."""

    def __init__(
        self,
        plan: DemoPlan,
        devices: Devices,
        publisher: Publisher,
        narrator: Narrator,
        stop: threading.Event,
        progress: Callable[[], None],
    ) -> None:
        self.plan, self.devices, self.pub, self.n = plan, devices, publisher, narrator
        self.stop, self.progress = stop, progress

    def _events(self) -> list[tuple[float, Callable[[], None]]]:
        p = self.plan
        return [
            (0.08, self.pack),
            (0.22, self.load),
            (p.door_open_at, self.door),
            (0.78, self.unload),
            (0.86, self.receive),
        ]

    def pack(self) -> None:
        for case in range(self.plan.cases):
            self.devices.scan("line-4-scanner", "]C1", self.plan.packing_label(case))
        self.devices.scan("line-4-scanner", "]C1", self.plan.pallet_label())
        self.n.say(
            "scenario",
            f"PACKED: {self.plan.cases} cases of lot {self.plan.lot} (GTIN {self.plan.gtin})"
            f" scanned at line-4, palletised as SSCC {self.plan.sscc}",
        )

    def load(self) -> None:
        for case in range(self.plan.cases):
            self.devices.scan("dock-1-scanner", "]C1", self.plan.case_label(case))
        self.devices.scan("dock-1-scanner", "]C1", "00" + self.plan.sscc)
        self.n.say("scenario", "LOADED: the pallet is scanned onto truck-07 at dock-1; driving")

    def door(self) -> None:
        for model in self.devices.truck_models():
            model.open_door(self.plan.door_open_samples)
        self.n.say(
            "scenario",
            f"DOOR OPEN: truck-07's cargo door opens on the road for about"
            f" {self.plan.door_open_samples * SENSOR_PERIOD_S:.0f} s: temperatures climb",
        )

    def unload(self) -> None:
        # One case label (a spot check) and the pallet: the anchor reads a second
        # unloading scan of the lot at the holder it was handed to as leaving it again.
        self.devices.scan("dock-3-scanner", "]C1", self.plan.case_label(0))
        self.devices.scan("dock-3-scanner", "]C1", "00" + self.plan.sscc)
        self.n.say(
            "scenario",
            "UNLOADED: the pallet and a case are scanned off truck-07 at cold-room-3's dock",
        )

    def receive(self) -> None:
        p = self.plan
        for case in range(p.cases):
            link = gs1.digital_link(p.gtin, p.lot, p.serial(case), p.expiry)
            self.devices.scan("receiving-scanner", "]Q1", link)
        self.n.say("scenario", "RECEIVED: each case's QR code (GS1 Digital Link) is scanned in")

    def sensors(self) -> None:
        now_ms = int(time.time() * 1000)
        self.devices.logger.tick(now_ms)
        for sensor in self.devices.mqtt:
            for topic, payload in sensor.messages(now_ms):
                self.pub.publish(topic, payload)

    def run(self) -> None:
        start = time.monotonic()
        events = sorted(self._events(), key=lambda e: e[0])
        next_sensor = start
        next_progress = start + PROGRESS_EVERY_S
        end = start + self.plan.duration_s
        while True:
            now = time.monotonic()
            if now >= end:
                return
            while events and now >= start + events[0][0] * self.plan.duration_s:
                events.pop(0)[1]()
            if now >= next_sensor:
                self.sensors()
                next_sensor += SENSOR_PERIOD_S
            if now >= next_progress:
                self.progress()
                next_progress += PROGRESS_EVERY_S
            wake = min(next_sensor, next_progress, end)
            if events:
                wake = min(wake, start + events[0][0] * self.plan.duration_s)
            if self.stop.wait(max(0.0, wake - time.monotonic())):
                raise Stop


def run_demo(
    workdir: Path,
    duration_s: float,
    seed: int = 1,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
) -> int:
    """The whole demo; returns the exit status (the verifier's when bounded)."""
    bounded = duration_s > 0
    plan = DemoPlan.from_seed(seed, duration_s if bounded else DEFAULT_DURATION_S, dt.date.today())
    stop = stop or threading.Event()
    n = Narrator(out)
    workdir = workdir.resolve()
    _prepare_workdir(workdir)
    group = ProcessGroup(pid_file=workdir / "processes.json")
    rng = random.Random(seed)
    n.raw(
        f"coldtrail demo: seed {seed}, journey of {plan.duration_s:.0f} s, files in {workdir}\n"
        "  every process listens on 127.0.0.1 only; logs: */*.log; PIDs: processes.json"
    )
    try:
        with (
            mosquitto(workdir / "mosquitto", group) as broker_port,
            nats_cluster(workdir / "nats", group, list(ORGS)) as nats_urls,
        ):
            n.say("mosquitto", f"MQTT broker on 127.0.0.1:{broker_port}")
            n.say("nats", f"three clustered nats-servers, one per organisation: {nats_urls}")
            members = _consortium(workdir, group, nats_urls, n)
            anchor = members["northside-cold"]  # any member answers for the whole log
            gateways = _gateways(workdir, workdir / "tty", broker_port)
            tokens = {}
            for org, name in ORGS.items():
                members[org].add_org(org, name)  # on its own member: a signed stream entry
                tokens[org] = members[org].token(org)
            # The brand owner's master data: what the page names, and the profile that
            # judges the lot (controlled cold: 2-8 °C, MKT <= 8 °C over any 24 h).
            members["acme-foods"].cli(
                "product", "set", "--gtin", plan.gtin, "--org", "acme-foods",
                "--name", "Acme chilled oat yoghurt, plain", "--pack", "case of 12 x 500 g",
                "--description", "Oat-based yoghurt alternative, chilled", "--unit", "CS",
                "--profile", "controlled-cold",
            )  # fmt: skip
            n.say("acme-foods", f"product {plan.gtin} registered: judged as controlled cold")
            for node in gateways:
                # Its own member first; the others when that one is down (ADR 0214).
                node.other_members = [m for org, m in members.items() if org != node.org]
                node.init_and_enroll(members[node.org], tokens[node.org])
                n.say(
                    node.gw,
                    f"coldtrail-gateway init; enrolled for {node.org} at its member"
                    f" {members[node.org].url} on asset {node.asset}"
                    f" (key {node.public_key[:12]}…, token 0600)",
                )
            _attach_calibration(members["polar-haulage"], workdir, plan, n)
            with (
                _devices(workdir / "tty", rng) as devices,
                Publisher.connected(
                    "127.0.0.1", broker_port, "coldtrail-demo-devices"
                ) as publisher,
            ):
                for node in gateways:
                    node.run(group)
                _wait_sources_up(gateways, stop)
                n.say(
                    "devices",
                    "serial logger and 4 scanners on ptys; Zigbee2MQTT, Ruuvi, Tasmota and"
                    " Shelly sensors on MQTT",
                )

                seen: dict[str, int] = {}

                def progress() -> None:
                    for node in gateways:
                        n.say(node.gw, _gateway_line(node))
                    for line in _finality_lines(anchor, seen):
                        n.say("consortium", line)

                Journey(plan, devices, publisher, n, stop, progress).run()
                n.say("scenario", "journey over; waiting for every gateway's last receipt")
                deadline = time.monotonic() + 60 + 3 * BATCH_MAX_AGE_S
                while not all(g.drained() for g in gateways):
                    if time.monotonic() > deadline:
                        n.say("demo", "gateways did not drain within a minute; see */gateway.log")
                        return 1
                    if stop.wait(0.5):
                        raise Stop
                progress()
                for node in gateways:
                    assert node.child is not None
                    code = node.child.stop()
                    n.say(node.gw, f"stopped (SIGTERM, exit {code})")
            result = _conclude(n, anchor, plan, workdir)
            if bounded or result != 0:
                return result
            n.raw("\nThe anchor keeps serving the page and the explorer; Ctrl-C ends the demo.")
            stop.wait()
            return 0
    except Stop:
        n.raw("\nstopped; shutting everything down")
        return 130
    finally:
        group.stop_all()
        n.say("demo", f"all {len(group.children)} processes stopped")


def _post_claim(url: str, text: str, contact: str) -> dict[str, Any]:
    """File a claim as the consumer page's form does (multipart/form-data)."""
    boundary = "coldtrail-demo-claim"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for name, value in (("text", text), ("contact", contact))
        )
        + f"--{boundary}--\r\n".encode()
    )
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the demo files claims on its own loopback anchor only: {url}")
    req = urllib.request.Request(  # noqa: S310 - checked above
        url,
        data=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback URL
        return dict(json.load(resp))


def _claim_and_scorecard(
    n: Narrator, anchor: AnchorNode, plan: DemoPlan, workdir: Path, policy_path: Path
) -> int:
    """A consumer complains about the door-open excursion; the claim goes to the carrier,
    its receipt is verified offline; then the carrier's scorecard. 0 if all verified."""
    n.raw("")
    url = f"{anchor.url}/v1/lots/{plan.gtin}/{urllib.parse.quote(plan.lot)}/claims"
    text = "The cases were warm when the shop unpacked them; the yoghurt had swollen lids."
    try:
        claim = _post_claim(url, text, "shop-17@example.org")
    except (OSError, ValueError) as e:
        n.say("consumer", f"claim not filed: {e}")
        return 1
    n.say(
        "consumer",
        f"claim filed from the consumer page: {anchor.url}/claims/{claim['id']}",
    )
    n.raw(f"  routed to      {claim['routed_to']}: {claim['route_reason']}")
    n.raw(f"  first answer   due by {_clock(claim['answer_due'])} UTC (state {claim['state']})")
    receipt = get_json(f"{anchor.url}{claim['receipt_url']}", timeout_s=30)
    receipt_path = workdir / "claim-receipt.json"
    receipt_path.write_text(json.dumps(receipt, indent=1) + "\n")
    argv = [*tool("coldtrail-verify", "proofs.verify_cli"), str(receipt_path)]
    argv += ["--log-key", str(receipt["log_vkey"])]
    n.raw(f"$ coldtrail-verify {receipt_path} --log-key <the log key from {policy_path.name}>")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        n.raw(f"  {line}")
    org = str(claim["routed_to"])
    card = get_json(f"{anchor.url}/v1/scorecards/{org}", timeout_s=60)
    figures = card.get("figures", {}).get("orgs", {}).get(org)
    n.raw(f"\nScorecard of {card.get('org', {}).get('name', org)} (GET /v1/scorecards/{org}):")
    if figures is None:
        n.raw("  no shipment of its is in a final checkpoint yet")
    else:
        rate = figures.get("excursion_rate")
        completeness = figures.get("completeness")
        median = figures.get("median_receipt_ms")
        n.raw(f"  shipments      {figures.get('shipments')}")
        n.raw(f"  excursion rate {rate * 100:.0f} %" if rate is not None else "  excursion rate -")
        n.raw(f"  degree-minutes {figures.get('degree_minutes_per_shipment')} °C·min per shipment")
        n.raw(
            f"  completeness   {completeness * 100:.1f} %"
            if completeness is not None
            else "  completeness   -"
        )
        n.raw(
            f"  reading→anchor median {_minutes(median)}"
            if median is not None
            else "  reading→anchor -"
        )
        n.raw(
            f"  claims         {figures.get('claims')} ({figures.get('claims_resolved')} resolved)"
        )
    n.raw(f"  recompute it:  coldtrail-verify scorecard <(curl {anchor.url}/v1/scorecards/{org})")
    return done.returncode


def _attach_calibration(member: AnchorNode, workdir: Path, plan: DemoPlan, n: Narrator) -> None:
    """The carrier attaches its truck logger's calibration certificate: the digest and
    the entry go on the ledger (a signed stream entry), the file stays on its member."""
    cert = workdir / "calibration-truck-07.pdf"
    year = dt.date.today().year
    cert.write_bytes(
        b"%PDF-1.4\n% Calibration certificate PH-2026-0117 (demo)\n"
        b"% Instrument: truck-07 data logger, probes cargo-front and cargo-rear\n"
        b"% Points: -20.0, 0.0, +8.0 C; deviation <= 0.2 K; uncertainty 0.1 K (k=2)\n"
        b"% Laboratory: Nordic Calibration Services, accredited ISO/IEC 17025\n"
        + b"%" * 2048
        + b"\n%%EOF\n"
    )
    args = ["document", "add", str(cert), "--type", "calibration", "--subject",
            "gateway:truck-07", "--org", "polar-haulage", "--issuer",
            "Nordic Calibration Services", "--valid-from", f"{year - 1}-01-01",
            "--valid-until", f"{year + 1}-12-31", "--name", "PH-2026-0117.pdf"]  # fmt: skip
    deadline = time.monotonic() + 30  # the enrolment reaches the member's store first
    while True:
        result = member.cli(*args, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if result.returncode != 0:
        n.say("polar-haulage", f"calibration certificate not attached: {result.stderr.strip()}")
        return
    digest = result.stdout.rsplit("sha256 ", 1)[-1].strip()
    n.say(
        "polar-haulage",
        f"calibration certificate of truck-07's logger attached: sha256 {digest[:16]}…,"
        f" file {cert.name} (check a copy with coldtrail-verify --document)",
    )


def _wait_sources_up(gateways: list[GatewayNode], stop: threading.Event) -> None:
    """Until every gateway answers and runs all its sources, and a moment more: a
    serial port opened after a scan was sent drops it (pyserial flushes the input
    buffer on open), exactly like a scanner that beeps before the gateway is up."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [g.status() for g in gateways]
        if all(
            st is not None and all(s.get("state") == "running" for s in st["sources"].values())
            for st in states
        ):
            break
        if stop.wait(0.2):
            raise Stop
    if stop.wait(1.5):
        raise Stop


def _conclude(n: Narrator, anchor: AnchorNode, plan: DemoPlan, workdir: Path) -> int:
    query = urllib.parse.urlencode({"gtin": plan.gtin, "lot": plan.lot})
    answer = get_json(f"{anchor.url}/v1/provenance?{query}", timeout_s=30)
    n.raw("")
    _summary(n, answer, plan)
    bundle_path = workdir / "bundle.json"
    bundle = get_json(f"{anchor.url}/v1/provenance/bundle?{query}", timeout_s=30)
    bundle_path.write_text(json.dumps(bundle, indent=1) + "\n")
    n.raw(f"\nProof bundle written to {bundle_path}")
    # The safe way to verify: pinned to the consortium's published policy (log key,
    # members, quorum), never to keys or a quorum the bundle brings along.
    policy_path = workdir / "policy.txt"
    policy_path.write_text(anchor.cli("policy").stdout)
    n.raw(f"Consortium policy (coldtrail-anchor compose-policy) written to {policy_path}")
    argv = [*tool("coldtrail-verify", "proofs.verify_cli"), str(bundle_path)]
    argv += ["--policy", str(policy_path)]
    cert = workdir / "calibration-truck-07.pdf"
    shown = f"$ coldtrail-verify {bundle_path} --policy {policy_path}"
    if cert.exists():
        argv += ["--document", str(cert)]
        shown += f" --document {cert}"
    n.raw(shown)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        n.raw(f"  {line}")
    claim_code = _claim_and_scorecard(n, anchor, plan, workdir, policy_path)
    n.raw(f"\nConsumer page: {anchor.url}{plan.digital_link_path}")
    n.raw(f"Explorer:      {anchor.url}/explorer")
    n.raw(f"Consortium:    {anchor.url}/v1/consortium")
    return result.returncode or claim_code
