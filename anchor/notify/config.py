"""Who is told where: ``notify_file`` (TOML, relative to data_dir), e.g.::

retry_base_s = 2.0        # first retry after about this long, doubling
retry_cap_s = 600.0       # never waiting longer than this between attempts
max_attempts = 12         # then the row is "failed" (visible in /v1/notifications)

[[webhook]]
org = "polar-haulage"
url = "https://hooks.polar.example/coldtrail"
secret_file = "keys/polar-haulage.webhook"   # mode 0600; the HMAC key, never logged

[mqtt]
host = "127.0.0.1"
port = 8883
topic_prefix = "coldtrail"  # messages go to <prefix>/<org>/<kind>
tls = true                 # verifies the broker (ca_file, else the system's CAs)
ca_file = ""
orgs = ["polar-haulage", "acme-foods"]   # who gets MQTT messages
"""

from __future__ import annotations

import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anchor.errors import ConfigError

__all__ = ["MqttTarget", "NotifyConfig", "Webhook", "load_notify"]


@dataclass(frozen=True, slots=True)
class Webhook:
    org: str
    url: str
    secret: bytes = field(repr=False)  # never printed or logged


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    topic_prefix: str
    tls: bool
    ca_file: str
    orgs: frozenset[str]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    webhooks: tuple[Webhook, ...] = ()
    mqtt: MqttTarget | None = None
    retry_base_s: float = 2.0
    retry_cap_s: float = 600.0
    max_attempts: int = 12
    timeout_s: float = 10.0

    def channels(self, org: str) -> list[str]:
        """The channels ``org`` is told on."""
        found = ["webhook"] if any(w.org == org for w in self.webhooks) else []
        if self.mqtt is not None and org in self.mqtt.orgs:
            found.append("mqtt")
        return found

    def webhook(self, org: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.org == org), None)


def _secret(path: Path, where: str) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read the secret file {path}: {e.strerror}") from e
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{where}: the secret file {path} is readable by others (mode"
            f" {stat.S_IMODE(mode):o}); chmod 600 it"
        )
    if len(data) < 16:
        raise ConfigError(f"{where}: the secret in {path} is shorter than 16 bytes")
    return data


def load_notify(path: Path | None, base: Path) -> NotifyConfig:
    """The subscriptions in ``path`` (relative paths inside it are under ``base``);
    no file: nobody is told (the outbox stays empty)."""
    if path is None:
        return NotifyConfig()
    try:
        doc: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read notify_file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"notify_file {path} is not valid TOML: {e}") from e
    unknown = set(doc) - {"webhook", "mqtt", "retry_base_s", "retry_cap_s", "max_attempts",
                          "timeout_s"}  # fmt: skip
    if unknown:
        raise ConfigError(f"notify_file {path}: unknown keys {', '.join(sorted(unknown))}")
    hooks = []
    for i, w in enumerate(doc.get("webhook", [])):
        where = f"notify_file {path} webhook #{i + 1}"
        if not isinstance(w, dict) or not all(isinstance(w.get(k), str) for k in
                                              ("org", "url", "secret_file")):  # fmt: skip
            raise ConfigError(f"{where}: give org, url and secret_file")
        if not w["url"].startswith(("https://", "http://")):
            raise ConfigError(f"{where}: the url must be http(s)")
        secret_path = Path(w["secret_file"])
        secret_path = secret_path if secret_path.is_absolute() else base / secret_path
        hooks.append(Webhook(w["org"], w["url"], _secret(secret_path, where)))
    if len({h.org for h in hooks}) != len(hooks):
        raise ConfigError(f"notify_file {path}: one webhook per organisation")
    mqtt = None
    m = doc.get("mqtt")
    if m is not None:
        if not isinstance(m, dict) or not isinstance(m.get("host"), str):
            raise ConfigError(f"notify_file {path} [mqtt]: give host")
        orgs = m.get("orgs", [])
        if not isinstance(orgs, list) or not all(isinstance(o, str) for o in orgs):
            raise ConfigError(f"notify_file {path} [mqtt]: orgs is a list of organisation ids")
        mqtt = MqttTarget(
            m["host"], int(m.get("port", 1883)), str(m.get("topic_prefix", "coldtrail")),
            bool(m.get("tls", False)), str(m.get("ca_file", "")), frozenset(orgs),
        )  # fmt: skip
    try:
        return NotifyConfig(
            tuple(hooks), mqtt, float(doc.get("retry_base_s", 2.0)),
            float(doc.get("retry_cap_s", 600.0)), int(doc.get("max_attempts", 12)),
            float(doc.get("timeout_s", 10.0)),
        )  # fmt: skip
    except (TypeError, ValueError) as e:
        raise ConfigError(f"notify_file {path}: {e}") from e
