"""A gateway's files for tests: key, token, registry and a TOML config pointing at an anchor."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.config import GatewayConfig, load_config
from gateway.registry import write_registry
from proofs.keys import PublicKey, SigningKey
from proofs.keystore import save_signing_key


@dataclass(frozen=True)
class GatewaySetup:
    config_path: Path
    config: GatewayConfig
    key: SigningKey
    state_dir: Path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class AnchorEndpoint(Protocol):
    """What a gateway needs to know about an anchor (the stand-in or the real one)."""

    url: str
    token: str
    vkey: str

    def enroll(self, gw: str, public_key: PublicKey) -> None: ...


def write_gateway_setup(
    tmp: Path,
    anchor: AnchorEndpoint | Sequence[AnchorEndpoint],
    *,
    gw: str = "truck-07",
    key: SigningKey | None = None,
    **tables: dict[str, Any],
) -> GatewaySetup:
    """One anchor as ``[uplink] url``/``anchor_vkey``; a sequence of member nodes (one
    token for all) as ``[[uplink.anchors]]``, the first one home."""
    listed = isinstance(anchor, Sequence)
    members = list(anchor) if isinstance(anchor, Sequence) else [anchor]
    home = members[0]
    state = tmp / "state"
    state.mkdir(parents=True, exist_ok=True)
    key = key or SigningKey.generate()
    save_signing_key(key, state / "gateway.key")
    for member in members:
        assert member.token == home.token, "the members share the gateway's one token"
        member.enroll(gw, key.public_key)
    token = state / "anchor.token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, home.token.encode() + b"\n")
    os.close(fd)
    write_registry(
        state / "registry.json",
        [{"id": "probe-1", "asset": "truck-07/reefer", "calibration": {"temperature": -0.5}}],
        [{"id": "dock-scanner", "read_point": "dock-1", "step": "loading"}],
    )
    config: dict[str, dict[str, Any]] = {
        "gateway": {"id": gw, "state_dir": str(state)},
        "spool": {},
        "batch": {"max_records": 50, "max_age_s": 0.2},
        "uplink": {
            "url": home.url,
            "token_file": "anchor.token",
            "anchor_vkey": home.vkey,
            "timeout_s": 5.0,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
            "backfill_batches_per_s": 200.0,
        },
        "metrics": {"port": 0},
    }
    if listed:
        del config["uplink"]["url"], config["uplink"]["anchor_vkey"]
    for table, values in tables.items():
        config.setdefault(table, {}).update(values)
    lines: list[str] = []
    for table, values in config.items():
        lines.append(f"[{table}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
        lines.append("")
    for member in members if listed else []:
        lines.append("[[uplink.anchors]]")
        lines.append(f"url = {_toml_value(member.url)}")
        lines.append(f"anchor_vkey = {_toml_value(member.vkey)}")
        lines.append("")
    path = tmp / "gateway.toml"
    path.write_text("\n".join(lines))
    return GatewaySetup(path, load_config(path, environ={}), key, state)


async def start_gateway(
    setup: GatewaySetup,
    log: Path,
    env: Mapping[str, str | None] | None = None,
    log_level: str | None = None,
) -> asyncio.subprocess.Process:
    """The real daemon (``python -m gateway run``) as a subprocess, stderr to ``log``.

    ``env`` entries override the inherited environment; a ``None`` value removes one.
    """
    child_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            child_env.pop(key, None)
        else:
            child_env[key] = value
    args = ["-m", "gateway", "run", "--config", str(setup.config_path)]
    if log_level:
        args += ["--log-level", log_level]
    with log.open("ab") as err:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.DEVNULL, stderr=err, env=child_env
        )
