"""Sources: turn untrusted device bytes into observations for the gateway core.

Each source is a small object with a ``name``, plain counters the core can export
(``counters``) and ``async run(sink)`` that reads forever, reconnecting with
backoff, and returns only when cancelled. Parsers are pure modules with no I/O,
so every bad-input class is unit-tested without a device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backoff import BackoffPolicy, SourceCounters
from .mqtt import MqttSource, MqttSourceConfig
from .mqtt_adapters import ADAPTERS, TopicRoute
from .serial_sensor import SerialSensorConfig, SerialSensorSource

if TYPE_CHECKING:
    from .scanner import SerialScannerConfig, SerialScannerSource

__all__ = [
    "ADAPTERS",
    "BackoffPolicy",
    "MqttSource",
    "MqttSourceConfig",
    "SerialScannerConfig",
    "SerialScannerSource",
    "SerialSensorConfig",
    "SerialSensorSource",
    "SourceCounters",
    "TopicRoute",
]


def __getattr__(name: str) -> Any:
    # The scanner pulls in biip (about 20 MB of RSS); a gateway without a scanner
    # never imports it.
    if name in ("SerialScannerConfig", "SerialScannerSource"):
        from . import scanner

        return getattr(scanner, name)
    raise AttributeError(name)
