"""Typed configuration of the anchoring service, read once at the entry point.

TOML (``config/anchor.example.toml`` documents every key) is parsed here and
nowhere else; ``COLDTRAIL_ANCHOR_<KEY>`` environment variables override single
keys (``COLDTRAIL_ANCHOR_LISTEN_PORT=8443``). Paths that are relative are
resolved against ``data_dir`` so one directory holds the whole node.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from anchor.errors import ConfigError
from proofs.coldchain import STANDARD_PROFILES, Profile
from proofs.errors import FormatError, ProofsError
from proofs.note import ALG_ED25519, NoteVerifier

__all__ = ["ENV_PREFIX", "AnchorConfig", "load_config"]

ENV_PREFIX = "COLDTRAIL_ANCHOR_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


@dataclass(frozen=True, slots=True)
class AnchorConfig:
    data_dir: Path = Path("var/anchor")
    # The ledger database; relative paths are under data_dir.
    db_path: Path = Path("ledger.sqlite3")
    # Empty: the embedded SQLite file at db_path. A postgresql:// URL: that database
    # (docs/postgresql.md); db_path is then unused.
    store: str = ""
    node_key_path: Path = Path("keys/node.key")
    cosigner_key_path: Path = Path("keys/member.key")
    # Registered documents' files, content-addressed (anchor.ledger.documents).
    documents_path: Path = Path("documents")
    # C2SP origin line of the log and the note key name of the log key.
    log_origin: str = "coldtrail.example/log"
    # Key name of this node's consortium member cosigner (tlog-cosignature/v1).
    member_name: str = "coldtrail.example/member"
    # Cosignatures a checkpoint needs to be final (a consortium of one: 1).
    quorum: int = 1
    listen_host: str = "127.0.0.1"
    listen_port: int = 8750
    ingest_max_body_bytes: int = 8 * 1024 * 1024
    ingest_max_records: int = 10_000
    # Batches may arrive out of batch_seq order (live first after an outage); one more
    # than this many ahead of the gateway's highest stored batch is refused.
    ingest_max_batch_lookahead: int = 1_000_000
    # Background checkpoint when the log grew without one (receipts sign on demand).
    checkpoint_interval_s: float = 60.0
    # Concurrent ingests that arrive while a commit is in flight share the next one.
    commit_group_max_batches: int = 64
    # Batches with at least this many records are verified in worker processes.
    verify_parallel_min_records: int = 500
    verify_workers: int = 2
    log_level: str = "INFO"
    # The cold-chain profile (docs/verdicts.md) that judges lots of products without a
    # registered one (`coldtrail-anchor product set --profile`): controlled-cold,
    # controlled-room, frozen, or a profile JSON file.
    default_profile: str = "controlled-cold"
    # Per-product profiles from this file instead of the registry: "GTIN14=PROFILE" items
    # separated by commas, e.g. "09501101530003=frozen,09506000134352=/etc/x.json".
    profile_by_gtin: str = ""
    # A verdict always says which of its loggers have no calibration certificate valid
    # over their readings (`coldtrail-anchor document add --type calibration`); true makes
    # such a verdict indeterminate instead of only saying so.
    require_calibration: bool = False
    # Who is told of dispositions and claims, and where (webhooks, MQTT): a TOML file,
    # relative to data_dir (docs/notifications.md). Empty: nobody is told.
    notify_file: str = ""
    # Consumer claims (docs/claims.md): deadlines for the first answer and the
    # resolution, and how many claims one lot / one client address may file.
    claims_answer_days: int = 3
    claims_resolve_days: int = 30
    claims_per_lot_per_day: int = 20
    claims_per_client_per_hour: int = 5
    # How often the lots that new batches can change get their disposition re-decided
    # (anchor.provenance.dispositions); 0 turns automatic dispositions off.
    dispositions_interval_s: float = 2.0
    # Lot answers take whole hours that cannot change them from the ledger's reading
    # rollups (docs/adr/0316); false reads every reading: the same answers, slower.
    provenance_rollups: bool = True
    # The logs this node cosigns as a C2SP tlog-witness (POST /witness/add-checkpoint):
    # their verifier keys ("origin+hexid+base64"), separated by commas.
    witness_logs: str = ""
    # A consortium member (docs/consortium.md): the consortium's C2SP tlog-policy file
    # (relative to data_dir). Empty: a consortium of one, no NATS.
    consortium_policy: str = ""
    # The ordering stream's NATS servers (comma-separated nats:// URLs), its name and
    # subject, and how many servers keep each entry.
    nats_urls: str = ""
    stream_name: str = "COLDTRAIL"
    stream_subject: str = "coldtrail.log"
    stream_replicas: int = 3
    # How long a gateway's request waits for its batch's checkpoint to become final
    # before it is told to send the batch again (a coded 503).
    finality_timeout_s: float = 20.0
    # POSTed a JSON alert when this member sees two checkpoints of one size (split view).
    split_view_webhook: str = ""
    # Public reads (provenance, pages, explorer, log proofs; docs/anchor.md "Limits"):
    # per client, a token bucket of public_rate_per_s with bursts of public_burst_requests;
    # they run on public_workers threads of their own with at most public_queue_max waiting.
    # Over either bound: 429 with Retry-After: public_retry_after_s.
    public_rate_per_s: float = 5.0
    public_burst_requests: int = 20
    public_workers: int = 2
    public_queue_max: int = 32
    public_retry_after_s: int = 1
    public_clients_max: int = 10_000
    # Answers and rendered pages cached per (request, ledger version).
    public_cache_max_entries: int = 256
    public_cache_max_bytes: int = 64 * 1024 * 1024
    # Reverse proxies whose X-Forwarded-For is believed: comma-separated addresses or
    # CIDR networks. Empty (the default): the peer address is the client, always.
    trusted_proxies: str = ""

    def __post_init__(self) -> None:
        for name in ("log_origin", "member_name"):
            value = getattr(self, name)
            if not _NAME.fullmatch(value) or "+" in value:
                raise ConfigError(f"{name} must be 1-128 of letters, digits and ._/- ({value!r})")
        if self.store and not self.store.strip().lower().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ConfigError(
                "store must be empty (the SQLite file at db_path) or a postgresql:// URL"
            )
        if self.log_origin == self.member_name:
            raise ConfigError("log_origin and member_name must differ (C2SP key names)")
        if self.quorum < 0 or self.quorum > 1:
            raise ConfigError(
                "quorum must be 0 or 1 for a consortium of one; a consortium's quorum is its"
                " policy's (consortium_policy)"
            )
        if self.consortium_policy and not self.nats_urls.strip():
            raise ConfigError("a consortium member needs nats_urls (its ordering stream)")
        if not 1 <= self.stream_replicas <= 5 or self.finality_timeout_s <= 0:
            raise ConfigError("stream_replicas must be 1-5 and finality_timeout_s positive")
        if not 0 < self.listen_port < 65536 and self.listen_port != 0:
            raise ConfigError("listen_port must be 0-65535")
        if self.ingest_max_body_bytes < 1024:
            raise ConfigError("ingest_max_body_bytes must be at least 1024")
        if self.ingest_max_records < 1:
            raise ConfigError("ingest_max_records must be at least 1")
        if self.ingest_max_batch_lookahead < 1:
            raise ConfigError("ingest_max_batch_lookahead must be at least 1")
        if self.checkpoint_interval_s <= 0:
            raise ConfigError("checkpoint_interval_s must be positive")
        if self.commit_group_max_batches < 1:
            raise ConfigError("commit_group_max_batches must be at least 1")
        if self.verify_workers < 1 or self.verify_parallel_min_records < 1:
            raise ConfigError("verify_workers and verify_parallel_min_records must be >= 1")
        self.witness_verifiers()  # refuses a bad key at start, not at the first request
        self.profiles()  # refuse a bad profile at start-up, not at the first query
        if not self.public_rate_per_s > 0 or self.public_burst_requests < 1:
            raise ConfigError("public_rate_per_s must be positive, public_burst_requests >= 1")
        if self.public_workers < 1 or self.public_queue_max < 0:
            raise ConfigError("public_workers must be >= 1 and public_queue_max >= 0")
        if self.public_retry_after_s < 1 or self.public_clients_max < 1:
            raise ConfigError("public_retry_after_s and public_clients_max must be >= 1")
        if self.public_cache_max_entries < 0 or self.public_cache_max_bytes < 0:
            raise ConfigError("public_cache_max_entries and public_cache_max_bytes must be >= 0")
        self.trusted_proxy_networks()

    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """Parse ``trusted_proxies`` (addresses or CIDR networks, comma-separated)."""
        out: list[IPv4Network | IPv6Network] = []
        for item in filter(None, (x.strip() for x in self.trusted_proxies.split(","))):
            try:
                out.append(ip_network(item, strict=False))
            except ValueError as e:
                raise ConfigError(f"trusted_proxies item {item!r} is not an address") from e
        return tuple(out)

    def witness_verifiers(self) -> list[NoteVerifier]:
        """Parse ``witness_logs``: the logs' Ed25519 verifier keys."""
        out = []
        for item in filter(None, (x.strip() for x in self.witness_logs.split(","))):
            try:
                v = NoteVerifier.from_vkey(item)
            except ProofsError as e:
                raise ConfigError(f"witness_logs: {item!r} is not a verifier key: {e}") from e
            if v.alg != ALG_ED25519:
                raise ConfigError(f"witness_logs: {v.name} is not a log (Ed25519) key")
            out.append(v)
        return out

    def profiles(self) -> tuple[Profile, dict[str, Profile]]:
        """The default profile and the per-GTIN ones of ``profile_by_gtin``."""

        def load(text: str, where: str) -> Profile:
            if text in STANDARD_PROFILES:
                return STANDARD_PROFILES[text]
            path = self.resolve(Path(text))
            try:
                return Profile.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as e:
                raise ConfigError(
                    f"{where}: {text!r} is not {', '.join(STANDARD_PROFILES)} or a readable"
                    f" profile JSON file ({e})"
                ) from e
            except FormatError as e:
                raise ConfigError(f"{where}: {text}: {e.message} [{e.code}]") from e

        default = load(self.default_profile, "default_profile")
        out: dict[str, Profile] = {}
        for item in filter(None, (x.strip() for x in self.profile_by_gtin.split(","))):
            gtin, sep, name = item.partition("=")
            if not sep or not re.fullmatch(r"\d{14}", gtin):
                raise ConfigError(f"profile_by_gtin item {item!r} is not GTIN14=PROFILE")
            out[gtin] = load(name, f"profile_by_gtin {gtin}")
        return default, out

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.data_dir / path

    @property
    def policy_file(self) -> Path | None:
        return self.resolve(Path(self.consortium_policy)) if self.consortium_policy else None

    def nats_url_list(self) -> list[str]:
        return [u.strip() for u in self.nats_urls.split(",") if u.strip()]

    @property
    def notify_path(self) -> Path | None:
        return self.resolve(Path(self.notify_file)) if self.notify_file else None

    @property
    def documents_dir(self) -> Path:
        return self.resolve(self.documents_path)

    @property
    def db_file(self) -> Path:
        return self.resolve(self.db_path)

    @property
    def node_key_file(self) -> Path:
        return self.resolve(self.node_key_path)

    @property
    def cosigner_key_file(self) -> Path:
        return self.resolve(self.cosigner_key_path)


def _coerce(name: str, kind: Any, value: Any) -> Any:
    try:
        if kind is Path:
            if not isinstance(value, str | Path):
                raise TypeError
            return Path(value)
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in {"1", "true", "yes", "on"}
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind is int:
            if isinstance(value, bool):
                raise TypeError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key {name!r}: {value!r} is not a {kind.__name__}") from e
    raise ConfigError(f"config key {name!r} has an unsupported type")


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> AnchorConfig:
    """Read TOML (optional), then ``COLDTRAIL_ANCHOR_*`` overrides, then keyword overrides."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from e
        # Accept a flat file or one [anchor] table.
        raw = dict(doc.get("anchor", doc))
    hints = typing.get_type_hints(AnchorConfig)
    known = {f.name for f in fields(AnchorConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
    for name in known:
        env_value = env.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            raw[name] = env_value
    raw.update(overrides)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        kind = hints[name]
        if isinstance(kind, types.UnionType):  # pragma: no cover - no optional keys yet
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        values[name] = _coerce(name, kind, value)
    if path is not None and "data_dir" in values and not values["data_dir"].is_absolute():
        values["data_dir"] = (Path(path).resolve().parent / values["data_dir"]).resolve()
    return dataclasses.replace(AnchorConfig(), **values)
