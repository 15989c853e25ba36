"""Build the configured ``[[sources]]`` from ``gateway.sources``.

TOML options map one to one onto the fields of each source's frozen config
(``SerialSensorConfig``, ``SerialScannerConfig``, ``MqttSourceConfig``); the
few values TOML cannot spell directly are converted here: ``routes`` tables,
a ``backoff`` table, and ``password_file`` (a secret does not belong in the
config file, which may be world-readable).
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import SourceSpec
from .errors import ConfigError
from .observations import Source
from .registry import RegistryFile
from .sources import (
    BackoffPolicy,
    MqttSource,
    MqttSourceConfig,
    SerialSensorConfig,
    SerialSensorSource,
    TopicRoute,
)

__all__ = ["SOURCE_KINDS", "create_source"]


def _secret(path_text: str, what: str) -> str:
    path = Path(path_text)
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e}", code="secret-missing") from e
    if mode & stat.S_IRWXO:
        raise ConfigError(f"{what}: {path} is readable by others; chmod 600 it", code="secret-mode")
    return value


def _common(spec: SourceSpec) -> dict[str, Any]:
    options = dict(spec.options)
    if "backoff" in options:
        backoff = options["backoff"]
        if not isinstance(backoff, Mapping):
            raise ConfigError(f"source {spec.name}: 'backoff' must be a table")
        options["backoff"] = BackoffPolicy(**backoff)
    return {"name": spec.name, **options}


def _mqtt(spec: SourceSpec) -> Source:
    options = _common(spec)
    routes = options.pop("routes", None)
    if not isinstance(routes, list) or not routes:
        raise ConfigError(f"mqtt source {spec.name}: needs [[sources.routes]] entries")
    built = []
    for r in routes:
        if not isinstance(r, Mapping):
            raise ConfigError(f"mqtt source {spec.name}: every route is a table")
        r = dict(r)
        if "quantities" in r:
            r["quantities"] = frozenset(r["quantities"])
        built.append(TopicRoute(**r))
    options["routes"] = tuple(built)
    if "password_file" in options:
        options["password"] = _secret(str(options.pop("password_file")), f"mqtt source {spec.name}")
    if "protocol" in options:
        options["protocol"] = str(options["protocol"])
    return MqttSource(MqttSourceConfig(**options))


def _serial_sensor(spec: SourceSpec) -> Source:
    return SerialSensorSource(SerialSensorConfig(**_common(spec)))


def _serial_scanner(spec: SourceSpec) -> Source:
    from .sources.scanner import SerialScannerConfig, SerialScannerSource  # biip: only if used

    return SerialScannerSource(SerialScannerConfig(**_common(spec)))


SOURCE_KINDS: Mapping[str, Callable[[SourceSpec], Source]] = {
    "mqtt": _mqtt,
    "serial-sensor": _serial_sensor,
    "serial-scanner": _serial_scanner,
}


def create_source(spec: SourceSpec, registry: RegistryFile) -> Source:
    """One source from its ``[[sources]]`` entry; a bad entry is a startup refusal."""
    build = SOURCE_KINDS.get(spec.kind)
    if build is None:
        raise ConfigError(
            f"source {spec.name}: kind must be one of {', '.join(sorted(SOURCE_KINDS))}",
            code="unknown-source-kind",
        )
    try:
        return build(spec)
    except (TypeError, ValueError) as e:
        # Unknown option names arrive as TypeError from the dataclass constructor.
        raise ConfigError(f"source {spec.name} ({spec.kind}): {e}", code="bad-source") from e
