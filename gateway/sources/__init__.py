"""Sources: turn untrusted device bytes into observations for the gateway core.

Each source is a small object with a ``name``, plain counters the core can export
(``counters``) and ``async run(sink)`` that reads forever, reconnecting with
backoff, and returns only when cancelled. Parsers are pure modules with no I/O,
so every bad-input class is unit-tested without a device.
"""

from __future__ import annotations

from .backoff import BackoffPolicy, SourceCounters
from .mqtt import MqttSource, MqttSourceConfig
from .mqtt_adapters import ADAPTERS, TopicRoute
from .scanner import SerialScannerConfig, SerialScannerSource
from .serial_sensor import SerialSensorConfig, SerialSensorSource

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
