"""Typed gateway configuration, read once at the entry point.

The TOML file has one table per concern (``[gateway]``, ``[spool]``,
``[batch]``, ``[uplink]``, ``[metrics]``, ``[clock]``) plus ``[[sources]]``.
Each key maps mechanically to a field named ``<table>_<key>`` of
:class:`GatewayConfig`, and each field can be overridden by the environment
variable ``COLDTRAIL_<TABLE>_<KEY>`` (e.g. ``COLDTRAIL_SPOOL_BUDGET_BYTES``),
so an operator can find any setting from any of the three names.

The anchoring service is one member node (``[uplink] url`` + ``anchor_vkey``) or
several (``[[uplink.anchors]]`` tables, each ``url`` + ``anchor_vkey``; in the
environment ``COLDTRAIL_UPLINK_ANCHORS`` as whitespace-separated ``url vkey``
pairs). Either way :attr:`GatewayConfig.uplink_anchors` lists them, the home
member first (docs/adr/0214).

Nothing here touches the spool: changing any value never resets stored data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import tomllib
import types
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from proofs.errors import FormatError
from proofs.note import ALG_ED25519, NoteVerifier

from .errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "MAX_ANCHOR_MEMBERS",
    "AnchorMember",
    "GatewayConfig",
    "SourceSpec",
    "load_config",
]

ENV_PREFIX = "COLDTRAIL_"
# Each member costs a timeout when it is down; a longer list only lengthens a failed round.
MAX_ANCHOR_MEMBERS = 16
# docs/ingest-contract.md: the anchor refuses more than 10 000 records or 8 MiB per batch.
_CONTRACT_MAX_RECORDS = 10_000
_CONTRACT_MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One ``[[sources]]`` entry: its kind, a unique name and kind-specific options."""

    kind: str
    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AnchorMember:
    """One member node of the anchoring service: where to post batches, and the log
    verifier key its own receipts and checkpoints are signed with."""

    url: str
    anchor_vkey: str

    def __post_init__(self) -> None:
        _check_anchor_url(self.url)
        _check(bool(self.anchor_vkey), "anchor_vkey is required")
        try:
            verifier = NoteVerifier.from_vkey(self.anchor_vkey)
        except FormatError as e:
            raise ConfigError(f"anchor_vkey: {e.message}", code="bad-config") from e
        _check(verifier.alg == ALG_ED25519, "anchor_vkey must be an Ed25519 (0x01) key")

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier.from_vkey(self.anchor_vkey)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    gateway_id: str
    # The one-member form; code reads uplink_anchors, which then holds that member.
    uplink_url: str = ""
    uplink_anchor_vkey: str = ""
    gateway_state_dir: Path = Path("/var/lib/coldtrail-gateway")
    gateway_key_file: Path = Path("gateway.key")  # relative paths are under state_dir
    gateway_registry_file: Path = Path("registry.json")
    spool_file: Path = Path("spool.sqlite3")
    spool_budget_bytes: int = 256 * 1024 * 1024
    # Free space the spool keeps on its filesystem (docs/adr/0213): below it, it evicts.
    spool_min_free_bytes: int = 64 * 1024 * 1024
    spool_reserve_bytes: int = 4 * 1024 * 1024  # released when the disk is full anyway
    spool_commit_max_records: int = 5000
    batch_max_records: int = 1000
    batch_max_bytes: int = 4 * 1024 * 1024
    batch_max_age_s: float = 10.0
    uplink_token_file: Path | None = None
    uplink_ca_file: Path | None = None
    uplink_timeout_s: float = 30.0
    uplink_backoff_initial_s: float = 1.0
    uplink_backoff_max_s: float = 300.0
    uplink_backfill_batches_per_s: float = 5.0
    uplink_live_window_s: float = 60.0
    # Member nodes, the home member first (docs/adr/0214).
    uplink_anchors: tuple[AnchorMember, ...] = ()
    # After a failover, the home member is asked first again this long after it failed.
    uplink_failback_s: float = 60.0
    metrics_port: int = 9108  # 0 turns the endpoint off; it always binds 127.0.0.1
    clock_jump_threshold_s: float = 2.0
    sources: tuple[SourceSpec, ...] = ()

    def __post_init__(self) -> None:
        _check(bool(self.gateway_id), "gateway.id is required")
        for name in ("gateway_key_file", "gateway_registry_file", "spool_file"):
            value = getattr(self, name)
            if not value.is_absolute():
                object.__setattr__(self, name, self.gateway_state_dir / value)
        if self.uplink_token_file is not None and not self.uplink_token_file.is_absolute():
            object.__setattr__(
                self, "uplink_token_file", self.gateway_state_dir / self.uplink_token_file
            )
        _check(self.spool_budget_bytes >= 64 * 1024, "spool.budget_bytes must be at least 65536")
        _check(self.spool_min_free_bytes >= 0, "spool.min_free_bytes must not be negative")
        _check(self.spool_reserve_bytes >= 0, "spool.reserve_bytes must not be negative")
        _check(self.spool_commit_max_records >= 1, "spool.commit_max_records must be >= 1")
        _check(
            1 <= self.batch_max_records <= _CONTRACT_MAX_RECORDS,
            f"batch.max_records must be 1..{_CONTRACT_MAX_RECORDS} (the anchor's limit)",
        )
        _check(
            4096 <= self.batch_max_bytes <= _CONTRACT_MAX_BODY_BYTES // 2,
            "batch.max_bytes must be 4096..4194304 (half the anchor's body limit)",
        )
        _check(self.batch_max_age_s > 0, "batch.max_age_s must be positive")
        _check(self.uplink_timeout_s > 0, "uplink.timeout_s must be positive")
        _check(
            0 < self.uplink_backoff_initial_s <= self.uplink_backoff_max_s,
            "uplink.backoff_initial_s must be positive and at most uplink.backoff_max_s",
        )
        _check(self.uplink_backfill_batches_per_s > 0, "uplink.backfill_batches_per_s > 0")
        _check(self.uplink_live_window_s >= 0, "uplink.live_window_s must not be negative")
        _check(self.uplink_failback_s >= 0, "uplink.failback_s must not be negative")
        _check(0 <= self.metrics_port <= 65535, "metrics.port must be 0..65535")
        _check(self.clock_jump_threshold_s > 0, "clock.jump_threshold_s must be positive")
        object.__setattr__(self, "uplink_anchors", self._anchor_members())
        names = [s.name for s in self.sources]
        _check(len(names) == len(set(names)), "every [[sources]] entry needs a unique name")

    def _anchor_members(self) -> tuple[AnchorMember, ...]:
        listed = self.uplink_anchors
        if self.uplink_url or self.uplink_anchor_vkey:
            # A list equal to the one anchor: this config rebuilt from itself (replace()).
            if listed and [(m.url, m.anchor_vkey) for m in listed] != [
                (self.uplink_url, self.uplink_anchor_vkey)
            ]:
                raise ConfigError(
                    "uplink.url/uplink.anchor_vkey and [[uplink.anchors]] are both set"
                    " (the environment's COLDTRAIL_UPLINK_URL counts too): use one form",
                    code="uplink-form-conflict",
                )
            return (_member(self.uplink_url, self.uplink_anchor_vkey, "uplink."),)
        if not listed:
            raise ConfigError(
                "uplink.url and uplink.anchor_vkey, or [[uplink.anchors]], are required",
                code="missing-key",
            )
        if len(listed) > MAX_ANCHOR_MEMBERS:
            raise ConfigError(
                f"[[uplink.anchors]] lists {len(listed)} member nodes; at most"
                f" {MAX_ANCHOR_MEMBERS} are allowed",
                code="too-many-anchors",
            )
        origin = listed[0].verifier.name
        for i, member in enumerate(listed):
            verifier = member.verifier
            for j, earlier in enumerate(listed[:i]):
                same_url = _url_key(earlier.url) == _url_key(member.url)
                if same_url or earlier.verifier.public_key == verifier.public_key:
                    what = "url" if same_url else "anchor_vkey"
                    raise ConfigError(
                        f"uplink.anchors[{i}] has the same {what} as uplink.anchors[{j}]:"
                        " list each member node once, with its own log key",
                        code="duplicate-anchor",
                    )
            if verifier.name != origin:
                # The members sign one consortium log, and a receipt names its origin.
                raise ConfigError(
                    f"uplink.anchors[{i}].anchor_vkey is for log {verifier.name!r} but"
                    f" uplink.anchors[0]'s is for {origin!r}: all members sign one log",
                    code="anchor-origin-mismatch",
                )
        return tuple(listed)


def _member(url: str, vkey: str, where: str) -> AnchorMember:
    try:
        return AnchorMember(url, vkey)
    except ConfigError as e:
        raise ConfigError(f"{where}{e.message}", code=e.code) from e


def _url_key(url: str) -> tuple[str, str, int | None, str]:
    """What makes two member URLs the same node: scheme, host, port and path."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, parts.hostname or "", port, parts.path.rstrip("/")


def _check(ok: bool, sentence: str) -> None:
    if not ok:
        raise ConfigError(sentence, code="bad-config")


def _check_anchor_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    _check(parts.scheme in ("https", "http") and bool(parts.hostname), "url must be a URL")
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError as e:
        raise ConfigError(f"url has a bad port: {e}", code="bad-config") from e
    if parts.scheme == "http":
        # Plain HTTP would hand the bearer token to anyone on the path; only loopback
        # (tests, a local TLS-terminating proxy) is allowed to skip TLS.
        host = parts.hostname or ""
        loopback = host == "localhost"
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(host).is_loopback
        _check(loopback, "url must be https:// (plain http is allowed on loopback only)")


def _convert(name: str, kind: Any, raw: Any, origin: str) -> Any:
    try:
        if kind is int:
            if isinstance(raw, bool):
                raise ValueError("a boolean is not an integer")
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError("a boolean is not a number")
            return float(raw)
        if kind is Path or kind == (Path | None):
            if raw in ("", None):
                if kind is Path:
                    raise ValueError("a path is required")
                return None
            return Path(str(raw))
        if kind is str:
            if not isinstance(raw, str):
                raise ValueError("expected a string")
            return raw
        if kind == tuple[AnchorMember, ...]:
            try:
                return _anchors(raw)
            except ConfigError as e:
                raise ConfigError(f"{origin}: {e.message}", code=e.code) from e
    except ValueError as e:
        raise ConfigError(f"{origin}: {name}: {e}") from e
    raise ConfigError(f"{origin}: {name} has an unsupported type")  # pragma: no cover


def _anchors(raw: Any) -> tuple[AnchorMember, ...]:
    """``[[uplink.anchors]]`` tables, or the environment's ``url vkey url vkey ...``."""
    if isinstance(raw, str):
        words = raw.split()
        if not words or len(words) % 2:
            raise ValueError("expected whitespace-separated 'url anchor_vkey' pairs")
        raw = [{"url": u, "anchor_vkey": k} for u, k in zip(words[::2], words[1::2], strict=True)]
    if not isinstance(raw, list) or not raw:
        raise ValueError("[[uplink.anchors]] must be a non-empty array of tables")
    members = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ValueError(f"uplink.anchors[{i}] must be a table")
        unknown = sorted(set(entry) - {"url", "anchor_vkey"})
        if unknown:
            raise ConfigError(f"unknown key uplink.anchors[{i}].{unknown[0]}", code="unknown-key")
        url, vkey = entry.get("url", ""), entry.get("anchor_vkey", "")
        if not isinstance(url, str) or not isinstance(vkey, str):
            raise ValueError(f"uplink.anchors[{i}]: url and anchor_vkey are strings")
        members.append(_member(url, vkey, f"uplink.anchors[{i}]."))
    return tuple(members)


def _sources(raw: Any, gateway_id: str) -> tuple[SourceSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("[[sources]] must be an array of tables")
    specs = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
            raise ConfigError(f"sources[{i}] needs a 'kind'")
        options = {k: v for k, v in entry.items() if k not in ("kind", "name")}
        name = entry.get("name", f"{entry['kind']}-{i}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"sources[{i}].name must be a non-empty string")
        if entry["kind"] == "mqtt" and "client_id" not in options:
            # The broker keeps a session per client id: two gateways must never share
            # one, so the default names the gateway, not only the source.
            options["client_id"] = f"coldtrail-{gateway_id}-{name}"
        specs.append(SourceSpec(entry["kind"], name, types.MappingProxyType(options)))
    return tuple(specs)


def config_from_mapping(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None, origin: str = "config"
) -> GatewayConfig:
    """Build a config from parsed TOML tables plus ``COLDTRAIL_*`` overrides."""
    environ = os.environ if environ is None else environ
    hints = get_type_hints(GatewayConfig)
    fields = {f.name for f in dataclasses.fields(GatewayConfig)} - {"sources"}
    values: dict[str, Any] = {}
    for table, content in data.items():
        if table == "sources":
            continue
        if not isinstance(content, dict):
            raise ConfigError(f"{origin}: [{table}] must be a table")
        for key, raw in content.items():
            name = f"{table}_{key}"
            if name not in fields:
                raise ConfigError(f"{origin}: unknown key {table}.{key}", code="unknown-key")
            values[name] = _convert(f"{table}.{key}", hints[name], raw, origin)
    for name in sorted(fields):
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            values[name] = _convert(name, hints[name], environ[env_name], env_name)
    # One anchor (url + anchor_vkey) or a list of member nodes; both: GatewayConfig says so.
    required = ["gateway_id"]
    if "uplink_anchors" not in values:
        required += ["uplink_url", "uplink_anchor_vkey"]
    missing = [n for n in required if n not in values]
    if missing:
        keys = ", ".join(m.replace("_", ".", 1) for m in missing)
        raise ConfigError(f"{origin}: missing required keys: {keys}", code="missing-key")
    return GatewayConfig(**values, sources=_sources(data.get("sources"), values["gateway_id"]))


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read the TOML file at ``path`` once; environment overrides win over the file."""
    target = Path(path)
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"no config file at {target}", code="config-missing") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{target} is not valid TOML: {e}", code="bad-toml") from e
    return config_from_mapping(data, environ, origin=str(target))
