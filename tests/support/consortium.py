"""A real consortium for tests: three member nodes, each its own ``coldtrail-anchor serve``
process with its own SQLite ledger, keys and ``nats-server``, ordering on one R3 stream.

Set up the way an operator does (docs/consortium.md): ``init`` on each member,
``compose-policy`` from the keys they printed, the policy file copied to every member,
``serve``, then each organisation's registry made on its own member's command line
(published on the stream, applied by all). Everything runs on free loopback ports and is
stopped by PID.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.anchor_process import ANCHOR, call
from support.batches import GatewaySim
from support.nats import NatsCluster
from support.procs import free_port, stop_process, wait_for_port

ORIGIN = "coldtrail.example/log"
MEMBERS = ("packer", "carrier", "warehouse")


@dataclass
class Member:
    name: str
    root: Path
    port: int
    nats_url: str
    log_vkey: str = ""
    cosigner_vkey: str = ""
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    gateway: GatewaySim = field(default_factory=GatewaySim)

    @property
    def config(self) -> Path:
        return self.root / "anchor.toml"

    @property
    def log(self) -> Path:
        return self.root / "anchor.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ANCHOR, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def post(self, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
        reply = call(self.port, "/v1/batches", body=body, token=token or self.token)
        try:
            return reply.status, reply.json()
        except ValueError:
            return reply.status, reply.body

    def get(self, path: str) -> tuple[int, Any]:
        reply = call(self.port, path)
        try:
            return reply.status, reply.json()
        except ValueError:
            return reply.status, reply.body

    def text(self, path: str) -> tuple[int, str]:
        reply = call(self.port, path)
        return reply.status, reply.body.decode("utf-8", "replace")


class Consortium:
    """``with Consortium(tmp) as c:`` three members up, each with one organisation,
    one asset, one enrolled gateway and its gateway token."""

    def __init__(
        self,
        workdir: Path | None = None,
        quorum: int = 2,
        member_config: dict[str, dict[str, Any]] | None = None,
        **config: Any,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="coldtrail-consortium-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.quorum = quorum
        self.extra_config = config
        self.member_config = member_config or {}  # one member's own settings (its store)
        self.nats = NatsCluster()
        self.members: list[Member] = []
        self.policy_text = ""

    def __enter__(self) -> Consortium:
        self.nats.__enter__()
        try:
            self._setup()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _setup(self) -> None:
        urls = self.nats.urls
        for i, name in enumerate(MEMBERS):
            root = self.workdir / name
            root.mkdir(parents=True, exist_ok=True)
            m = Member(name, root, free_port(), urls[i])
            m.gateway = GatewaySim(gw=f"{name}-gw-1", asset=f"{name}-asset-1")
            # Its own server first: each organisation runs one (nats-py tries them in order).
            others = [u for u in urls if u != urls[i]]
            settings: dict[str, Any] = {
                "data_dir": str(root),
                "listen_host": "127.0.0.1",
                "listen_port": m.port,
                "log_origin": ORIGIN,
                "member_name": f"{name}.example/witness",
                "consortium_policy": "policy.txt",
                "nats_urls": ",".join([urls[i], *others]),
                "checkpoint_interval_s": 5.0,
                "finality_timeout_s": 20.0,
                "public_rate_per_s": 100000.0,
                "public_burst_requests": 100000,
                **self.extra_config,
                **self.member_config.get(name, {}),
            }
            m.config.write_text(
                "[anchor]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())
            )
            out = m.cli("init")
            assert out.returncode == 0, out.stderr
            for line in out.stdout.splitlines():
                if line.startswith("log vkey:"):
                    m.log_vkey = line.split()[-1]
                elif line.startswith("cosigner vkey:"):
                    m.cosigner_vkey = line.split()[-1]
            self.members.append(m)
        args = []
        for m in self.members:
            args += ["--member", m.name, m.log_vkey, m.cosigner_vkey, m.url]
        out = self.members[0].cli("compose-policy", "--quorum", str(self.quorum), *args)
        assert out.returncode == 0, out.stderr
        self.policy_text = out.stdout
        (self.workdir / "policy.txt").write_text(self.policy_text)
        for m in self.members:
            (m.root / "policy.txt").write_text(self.policy_text)
        for m in self.members:
            self.start(m)
        for m in self.members:
            self.register(m)

    def register(self, m: Member) -> None:
        org, asset = f"{m.name}-org", m.gateway.asset
        assert asset is not None
        for args in (
            ("org", "add", org, "--name", f"The {m.name}"),
            ("asset", "add", "--org", org, "--id", asset),
            ("read-point", "add", "--org", org, "--id", f"{m.name}-dock-1"),
            ("gateway", "enroll", "--org", org, "--id", m.gateway.gw,
             "--public-key", m.gateway.public_key_b64, "--asset", asset,
             "--read-point", f"{m.name}-dock-1"),
        ):  # fmt: skip
            out = m.cli(*args)
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        out = m.cli("token", "create", "--org", org, "--role", "gateway")
        assert out.returncode == 0, out.stderr
        m.token = out.stdout.strip()

    def start(self, m: Member) -> None:
        with m.log.open("ab") as log:
            m.proc = subprocess.Popen(
                [*ANCHOR, "--config", str(m.config), "serve"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for_port(m.port, timeout_s=60, proc=m.proc)

    def kill(self, m: Member) -> None:
        """kill -9 of a member node."""
        assert m.proc is not None
        m.proc.kill()
        m.proc.wait(10)
        m.proc = None

    def wait_same_tree(self, members: list[Member] | None = None, timeout_s: float = 60) -> int:
        """Until every (running) member has applied the stream to the same tree; its size."""
        members = members or [m for m in self.members if m.proc is not None]
        deadline = time.monotonic() + timeout_s
        last: list[Any] = []
        while time.monotonic() < deadline:
            last = [m.text("/tlog/checkpoint") for m in members]
            bodies = [body.split("\n")[:3] for status, body in last if status == 200]
            if len(bodies) == len(members) and all(b == bodies[0] for b in bodies):
                return int(bodies[0][1])
            time.sleep(0.3)
        raise AssertionError(f"the members' trees differ: {last}")

    def __exit__(self, *exc: object) -> None:
        for m in self.members:
            if m.proc is not None:
                stop_process(m.proc)
                m.proc = None
        self.nats.__exit__(None, None, None)
        if self._tmp is not None:
            self._tmp.cleanup()


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return f'"{v}"'
